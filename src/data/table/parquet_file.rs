//! Parquet data files (`--data file.parquet`): which files are Parquet, and the readers every
//! data command uses for them in place of the CSV ones ([`super::Table::read`],
//! [`super::stream::stream`], `predict --data`).
//!
//! Reading Parquet takes the cargo feature `parquet` (off by default: the parquet crate turns
//! on features of crates burn depends on, and a change of features under burn rebuilds burn).
//! A build without it refuses a Parquet file with one line that says how to get a build that
//! reads it ([`not_built`]).
//!
//! What is read: the columns in use must be top-level int32, int64 (signed or unsigned), float,
//! double or boolean (true 1, false 0) columns; text, decimals, dates, times and nested columns
//! are refused by name. A null is what an empty cell is in a CSV file: an error naming the row
//! and column, or a dropped row with `--drop-invalid-rows`; so are NaN, ±inf and values beyond
//! f32's range. Rows are numbered from 1 in messages. The content hash is the file's bytes',
//! as for CSV.

use std::path::Path;

use crate::error::Error;

#[cfg(feature = "parquet")]
mod predict;
#[cfg(feature = "parquet")]
mod reader;

#[cfg(feature = "parquet")]
pub(crate) use predict::predict_rows;
#[cfg(feature = "parquet")]
pub(super) use reader::{read_table, stream};

/// Parquet's magic number, the first and last four bytes of every Parquet file.
const MAGIC: &[u8; 4] = b"PAR1";

/// Whether `path` is read as Parquet: its name ends in `.parquet` or `.parq` (any case), or
/// the file starts and ends with Parquet's magic number (a Parquet file by another name would
/// otherwise fail as a CSV file whose header is not text).
pub fn is_parquet(path: &Path) -> bool {
    let named = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("parq"));
    named || has_magic(path)
}

fn has_magic(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    // Only regular files: opening a FIFO could block, and the CSV reader names the problem.
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() < 8 {
        return false;
    }
    let (mut head, mut tail) = ([0u8; 4], [0u8; 4]);
    std::fs::File::open(path)
        .and_then(|f| {
            f.read_exact_at(&mut head, 0)?;
            f.read_exact_at(&mut tail, meta.len() - 4)
        })
        .is_ok_and(|()| &head == MAGIC && &tail == MAGIC)
}

/// The error for a Parquet file in a build without the `parquet` feature.
pub fn not_built(path: &Path) -> Error {
    Error::Data {
        path: path.to_owned(),
        message: "is a Parquet file, and this build of burnfit cannot read Parquet: build it with \
                  the `parquet` feature (`cargo install --path . --features parquet`, or \
                  `cargo build --release --features parquet`), or convert the file to CSV"
            .into(),
    }
}

/// [`super::Table::read`] for a Parquet file, in a build that cannot read one.
#[cfg(not(feature = "parquet"))]
pub(super) fn read_table(
    path: &Path,
    _: &super::TableOptions,
) -> crate::error::Result<super::Table> {
    Err(not_built(path))
}

/// [`super::stream::stream`] for a Parquet file, in a build that cannot read one.
#[cfg(not(feature = "parquet"))]
pub(super) fn stream<T: Send>(
    path: &Path,
    _: &super::TableOptions,
    _: impl Fn(super::chunk::Chunk) -> T + Sync,
    _: impl FnMut(usize, T),
) -> crate::error::Result<super::chunk::StreamInfo> {
    Err(not_built(path))
}

/// `predict --data` for a Parquet file, in a build that cannot read one.
#[cfg(not(feature = "parquet"))]
pub(crate) fn predict_rows(
    path: &Path,
    _: &[String],
    _: u8,
    _: crate::data::predictions::PredictionsFormat,
    _: impl Fn(&[f64]) -> f64,
    _: &mut dyn std::io::Write,
) -> std::result::Result<usize, crate::data::predictions::PredictFailure> {
    Err(not_built(path).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_files_are_known_by_name_or_magic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_parquet(Path::new("missing.parquet")));
        assert!(is_parquet(Path::new("x.PARQ")));
        assert!(!is_parquet(Path::new("missing.csv")));
        let renamed = dir.path().join("data.csv");
        std::fs::write(&renamed, b"PAR1 and more PAR1").unwrap();
        assert!(is_parquet(&renamed));
        // A CSV file whose first column is named PAR1... stays CSV.
        std::fs::write(&renamed, b"PAR1x,y\n1,2\n").unwrap();
        assert!(!is_parquet(&renamed));
        std::fs::write(&renamed, b"x,y\n1,2\n").unwrap();
        assert!(!is_parquet(&renamed));
        assert!(!is_parquet(dir.path()));
    }

    #[cfg(not(feature = "parquet"))]
    #[test]
    fn parquet_without_the_feature_is_one_line_naming_the_feature() {
        let options = super::super::TableOptions::new("y");
        let err = super::super::Table::read(Path::new("d.parquet"), &options).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("data file d.parquet: is a Parquet file")
                && text.contains("--features parquet")
                && !text.contains('\n'),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);
    }
}
