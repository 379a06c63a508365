//! The columns in use of a Parquet file, decoded into rows of f64 (features, then the target)
//! a batch at a time with the parquet crate's column readers: memory is one batch and a page
//! per column, whatever the size of a row group.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, mpsc};

use ::parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use ::parquet::data_type::DataType;
use ::parquet::errors::ParquetError;
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::schema::types::SchemaDescriptor;

use super::super::chunk::{Chunk, StreamInfo};
use super::super::{Layout, Table, TableOptions, Xxh64, bytes_text, open_regular};
use crate::error::{Error, Result};

/// The cells of one batch: 512 Ki f64 (4 MiB), as many rows as fit.
const BATCH_CELLS: usize = 1 << 19;

/// How a column's values become f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Kind {
    Bool,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

/// The kind of the top-level column `column` of `schema`, with its leaf's index, or why it is
/// not a column of numbers.
pub(super) fn numeric_column(
    schema: &SchemaDescriptor,
    column: usize,
) -> std::result::Result<(Kind, usize), String> {
    let field = &schema.root_schema().get_fields()[column];
    let name = field.name();
    let leaf = (0..schema.num_columns()).find(|&leaf| schema.get_column_root_idx(leaf) == column);
    let leaf = match leaf {
        Some(leaf) if field.is_primitive() && schema.column(leaf).max_rep_level() == 0 => leaf,
        _ => {
            return Err(format!(
                "column `{name}` is nested (a list, map or struct), not numbers"
            ));
        }
    };
    let descr = schema.column(leaf);
    let logical = descr.logical_type_ref();
    let integer = matches!(logical, None | Some(LogicalType::Integer { .. }))
        && matches!(
            descr.converted_type(),
            ConvertedType::NONE
                | ConvertedType::INT_8
                | ConvertedType::INT_16
                | ConvertedType::INT_32
                | ConvertedType::INT_64
                | ConvertedType::UINT_8
                | ConvertedType::UINT_16
                | ConvertedType::UINT_32
                | ConvertedType::UINT_64
        );
    let unsigned = matches!(
        logical,
        Some(LogicalType::Integer {
            is_signed: false,
            ..
        })
    ) || matches!(
        descr.converted_type(),
        ConvertedType::UINT_32 | ConvertedType::UINT_64
    );
    let kind = match descr.physical_type() {
        PhysicalType::BOOLEAN => Some(Kind::Bool),
        PhysicalType::INT32 if integer => Some(if unsigned { Kind::U32 } else { Kind::I32 }),
        PhysicalType::INT64 if integer => Some(if unsigned { Kind::U64 } else { Kind::I64 }),
        PhysicalType::FLOAT if logical.is_none() => Some(Kind::F32),
        PhysicalType::DOUBLE if logical.is_none() => Some(Kind::F64),
        _ => None,
    };
    kind.map(|kind| (kind, leaf)).ok_or_else(|| {
        let what = match logical {
            // `Decimal { scale: 2, precision: 9 }` -> `DECIMAL`
            Some(logical) => format!("{logical:?}")
                .split([' ', '('])
                .next()
                .unwrap_or_default()
                .to_uppercase(),
            None if descr.converted_type() != ConvertedType::NONE => {
                descr.converted_type().to_string()
            }
            None => descr.physical_type().to_string(),
        };
        format!(
            "column `{name}` holds {what} values, not numbers (burnfit reads Parquet columns of \
             int32, int64, float, double and boolean)"
        )
    })
}

/// Runs `f`, turning a panic in it into `fail`'s error. The parquet crate panics on some
/// damaged files instead of returning an error (a dictionary index out of range in its RLE
/// decoder, found by overwriting bytes of a file); its message and backtrace are kept off
/// stderr, so a damaged file is one line like any other bad input. Other threads' panics print
/// as before.
pub(super) fn guarded<R, E>(
    fail: impl FnOnce(String) -> E,
    f: impl FnOnce() -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    use std::cell::Cell;
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let quiet = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(quiet));
    result.unwrap_or_else(|_| {
        Err(fail(
            "cannot be read as Parquet (its data is damaged: the parquet reader failed on it)"
                .into(),
        ))
    })
}

/// A Parquet error as a one-line message.
pub(super) fn damaged(error: ParquetError) -> String {
    let text = error.to_string().replace('\n', " ");
    if let Some(codec) = text.split("Disabled feature at compile time: ").nth(1) {
        return format!(
            "is compressed with {}, which burnfit does not read (it reads uncompressed, snappy, \
             gzip, zstd and lz4 Parquet files)",
            codec.trim()
        );
    }
    format!("cannot be read as Parquet ({})", text.trim())
}

/// The top-level column names of `schema`, refusing one named twice as CSV does.
pub(super) fn column_names(schema: &SchemaDescriptor) -> std::result::Result<Vec<String>, String> {
    let columns: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let mut seen = std::collections::HashMap::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        if let Some(j) = seen.insert(name.as_str(), i) {
            return Err(format!(
                "column `{name}` appears twice in the schema (columns {} and {})",
                j + 1,
                i + 1
            ));
        }
    }
    Ok(columns)
}

/// A value checked as a CSV cell is: finite, within f32's range.
pub(super) fn checked(value: f64) -> std::result::Result<f64, String> {
    if !value.is_finite() {
        Err(format!("{value} is not a finite number"))
    } else if value.abs() > f64::from(f32::MAX) {
        Err(format!("{value:e} is out of f32 range (about ±3.4e38)"))
    } else {
        Ok(value)
    }
}

/// A column in use.
struct Used {
    /// Its top-level index, for messages.
    column: usize,
    /// Its leaf's index, for the column readers.
    leaf: usize,
    /// Where it goes in a row: features `0..d`, the target `d`.
    slot: usize,
    /// Its maximum definition level: a value is null below it (0: a required column).
    max_def: i16,
    kind: Kind,
}

/// A Parquet file opened for its table: the schema checked against the options.
struct Rows {
    reader: SerializedFileReader<File>,
    columns: Vec<String>,
    feature_names: Vec<String>,
    /// The columns in use, in file order (so a row's first bad cell is the first in the file).
    used: Vec<Used>,
    /// The rows the footer counts.
    rows: u64,
}

/// One batch of rows.
struct Batch {
    /// The valid rows, row-major: features, then the target.
    rows: Vec<f64>,
    /// Rows skipped for an invalid cell (only with `drop_invalid_rows`).
    dropped: usize,
    /// The first skipped row's message.
    first_invalid: Option<String>,
}

impl Rows {
    fn open(path: &Path, options: &TableOptions) -> std::result::Result<Rows, String> {
        guarded(|e| e, || Self::open_unguarded(path, options))
    }

    fn open_unguarded(path: &Path, options: &TableOptions) -> std::result::Result<Rows, String> {
        let file = open_regular(path)?;
        let reader = SerializedFileReader::new(file).map_err(damaged)?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let columns = column_names(&schema)?;
        let layout = Layout::new(&columns, options)?;
        let mut used = Vec::new();
        for (column, slot) in layout.slots.iter().enumerate() {
            if let Some(slot) = *slot {
                let (kind, leaf) = numeric_column(&schema, column)?;
                used.push(Used {
                    column,
                    leaf,
                    slot,
                    max_def: schema.column(leaf).max_def_level(),
                    kind,
                });
            }
        }
        let rows = u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        Ok(Rows {
            reader,
            columns,
            feature_names: layout.feature_names,
            used,
            rows,
        })
    }

    fn width(&self) -> usize {
        self.feature_names.len() + 1
    }

    /// `each` on every batch, in file order; stops at the first error (a bad cell without
    /// `drop_invalid_rows`, a damaged file).
    fn for_each_batch(
        &self,
        drop_invalid_rows: bool,
        each: impl FnMut(Batch),
    ) -> std::result::Result<(), String> {
        guarded(
            |e| e,
            || self.for_each_batch_unguarded(drop_invalid_rows, each),
        )
    }

    fn for_each_batch_unguarded(
        &self,
        drop_invalid_rows: bool,
        mut each: impl FnMut(Batch),
    ) -> std::result::Result<(), String> {
        let width = self.width();
        let batch_rows = (BATCH_CELLS / width).clamp(256, 65_536);
        let mut cells = Vec::new();
        let mut invalid: Vec<Option<(usize, String)>> = Vec::new();
        let mut values = Vec::new();
        let mut defs = Vec::new();
        let mut row_base = 0u64;
        for group in 0..self.reader.num_row_groups() {
            let group = self.reader.get_row_group(group).map_err(damaged)?;
            let group_rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
            let mut readers = self
                .used
                .iter()
                .map(|c| group.get_column_reader(c.leaf).map(|r| (c, r)))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(damaged)?;
            let mut done = 0;
            while done < group_rows {
                let n = (group_rows - done).min(batch_rows);
                cells.clear();
                cells.resize(n * width, 0.0);
                invalid.clear();
                invalid.resize(n, None);
                for (used, reader) in &mut readers {
                    values.clear();
                    defs.clear();
                    let got = read_values(reader, used.kind, n, &mut defs, &mut values)
                        .map_err(damaged)?;
                    let nullable = used.max_def > 0;
                    let present = if nullable { defs.len() } else { values.len() };
                    if got != n || present != n {
                        return Err(format!(
                            "cannot be read as Parquet (column `{}` ends at row {} of a row group of {group_rows})",
                            self.columns[used.column],
                            done + got.min(present)
                        ));
                    }
                    let mut next = values.iter();
                    for i in 0..n {
                        let value = if nullable && defs[i] < used.max_def {
                            Err("the cell is null".to_string())
                        } else {
                            next.next()
                                .ok_or_else(|| "the cell is null".to_string())
                                .and_then(|&v| checked(v))
                        };
                        match value {
                            Ok(v) => cells[i * width + used.slot] = v,
                            Err(problem) => {
                                invalid[i].get_or_insert((used.column, problem));
                            }
                        }
                    }
                }
                let mut batch = Batch {
                    rows: Vec::with_capacity(n * width),
                    dropped: 0,
                    first_invalid: None,
                };
                for (i, bad) in invalid.iter_mut().enumerate() {
                    let Some((column, problem)) = bad.take() else {
                        batch
                            .rows
                            .extend_from_slice(&cells[i * width..(i + 1) * width]);
                        continue;
                    };
                    let row = row_base + done as u64 + i as u64 + 1;
                    let message =
                        format!("row {row}, column `{}`: {problem}", self.columns[column]);
                    if !drop_invalid_rows {
                        return Err(format!(
                            "{message} (use --drop-invalid-rows to skip such rows)"
                        ));
                    }
                    batch.dropped += 1;
                    batch.first_invalid.get_or_insert(message);
                }
                each(batch);
                done += n;
            }
            row_base += group_rows as u64;
        }
        Ok(())
    }
}

/// Reads the next `n` records of a column: its definition levels into `defs` (for a nullable
/// column) and its non-null values, as f64, into `values`; returns the records read.
fn read_values(
    reader: &mut ColumnReader,
    kind: Kind,
    n: usize,
    defs: &mut Vec<i16>,
    values: &mut Vec<f64>,
) -> std::result::Result<usize, ParquetError> {
    fn typed<T: DataType>(
        reader: &mut ColumnReaderImpl<T>,
        n: usize,
        defs: &mut Vec<i16>,
        values: &mut Vec<f64>,
        convert: impl Fn(&T::T) -> f64,
    ) -> std::result::Result<usize, ParquetError> {
        let mut raw = Vec::with_capacity(n);
        let (records, _, _) = reader.read_records(n, Some(defs), None, &mut raw)?;
        values.extend(raw.iter().map(convert));
        Ok(records)
    }
    let wrong = || ParquetError::General(format!("a column is not of type {kind:?}"));
    match (reader, kind) {
        (ColumnReader::BoolColumnReader(r), Kind::Bool) => {
            typed(r, n, defs, values, |&v| if v { 1.0 } else { 0.0 })
        }
        (ColumnReader::Int32ColumnReader(r), Kind::I32) => typed(r, n, defs, values, |&v| v.into()),
        (ColumnReader::Int32ColumnReader(r), Kind::U32) => {
            typed(r, n, defs, values, |&v| (v as u32).into())
        }
        (ColumnReader::Int64ColumnReader(r), Kind::I64) => typed(r, n, defs, values, |&v| v as f64),
        (ColumnReader::Int64ColumnReader(r), Kind::U64) => {
            typed(r, n, defs, values, |&v| v as u64 as f64)
        }
        (ColumnReader::FloatColumnReader(r), Kind::F32) => typed(r, n, defs, values, |&v| v.into()),
        (ColumnReader::DoubleColumnReader(r), Kind::F64) => {
            let (records, _, _) = r.read_records(n, Some(defs), None, values)?;
            Ok(records)
        }
        _ => Err(wrong()),
    }
}

/// [`content_hash`](super::super::content_hash) of the file at `path` and its size, read in
/// 1 MiB blocks.
fn hash_file(path: &Path) -> std::result::Result<(u64, u64), String> {
    use std::io::Read;
    let mut file = open_regular(path)?;
    let mut hasher = Xxh64::new(0);
    let mut block = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        match file.read(&mut block) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&block[..n]);
                bytes += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((hasher.finish(), bytes))
}

/// The message when no row is left: none in the file, or every one dropped.
fn no_rows(dropped: usize, first_invalid: Option<String>) -> String {
    match first_invalid {
        None => "has no data rows".into(),
        Some(first) => format!(
            "all {dropped} data rows have an invalid cell, so none is left (the first: {first})"
        ),
    }
}

/// [`Table::read`] for a Parquet file: the schema first (a wrong column name or type costs no
/// pass over the data), the memory check on the footer's row count, then the rows.
pub(crate) fn read_table(path: &Path, options: &TableOptions) -> Result<Table> {
    let fail = |message: String| Error::Data {
        path: path.to_path_buf(),
        message,
    };
    let file = Rows::open(path, options).map_err(fail)?;
    let d = file.feature_names.len();
    let rows = usize::try_from(file.rows).unwrap_or(usize::MAX);
    // The same check as for CSV: the table, and room for one working copy of it.
    let needed = rows.saturating_mul(d + 1).saturating_mul(16) as u64;
    if let Some(available) = crate::memory::available()
        && needed > available
    {
        return Err(fail(format!(
            "its table needs {} ({rows} rows × {} columns as f64, and a working copy), more than the {} of memory available",
            bytes_text(needed),
            d + 1,
            bytes_text(available)
        )));
    }
    let (content_hash, bytes) = hash_file(path).map_err(fail)?;
    let mut x = Vec::with_capacity(rows.saturating_mul(d));
    let mut y = Vec::with_capacity(rows);
    let (mut dropped_rows, mut first_invalid) = (0, None);
    file.for_each_batch(options.drop_invalid_rows, |batch| {
        for row in batch.rows.chunks_exact(d + 1) {
            x.extend_from_slice(&row[..d]);
            y.push(row[d]);
        }
        dropped_rows += batch.dropped;
        if first_invalid.is_none() {
            first_invalid = batch.first_invalid;
        }
    })
    .map_err(fail)?;
    // A stop signal during the decode ends the read here (the decoder has no way out sooner).
    crate::signals::stop_reading(path)?;
    if y.is_empty() {
        return Err(fail(no_rows(dropped_rows, first_invalid)));
    }
    if y.len() < y.capacity() / 2 {
        x.shrink_to_fit();
        y.shrink_to_fit();
    }
    Ok(Table {
        file_name: path.display().to_string(),
        columns: file.columns,
        feature_names: file.feature_names,
        target_name: options.target.clone(),
        x,
        y,
        dropped_rows,
        content_hash,
        bytes,
    })
}

/// [`super::super::stream::stream`] for a Parquet file: one thread hashes the file, one decodes
/// it a batch at a time (a chunk is a batch), the others run `work` on the chunks, and
/// `consume` sees the results in file order. Memory is a few batches.
pub(crate) fn stream<T: Send>(
    path: &Path,
    options: &TableOptions,
    work: impl Fn(Chunk) -> T + Sync,
    mut consume: impl FnMut(usize, T),
) -> Result<StreamInfo> {
    let fail = |message: String| Error::Data {
        path: path.to_path_buf(),
        message,
    };
    let file = Rows::open(path, options).map_err(fail)?;
    let d = file.feature_names.len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut chunk_rows = Vec::new();
    let (batch_tx, batch_rx) = mpsc::sync_channel::<(usize, Vec<f64>)>(threads);
    let batch_rx = Mutex::new(batch_rx);
    let (decoded, hashed) = std::thread::scope(|s| {
        let hasher = s.spawn(|| hash_file(path));
        let (result_tx, result_rx) = mpsc::channel::<(usize, u64, T)>();
        let file = &file;
        let decoder = s.spawn(move || {
            let (mut dropped, mut first_invalid, mut index) = (0, None, 0);
            file.for_each_batch(options.drop_invalid_rows, |batch| {
                dropped += batch.dropped;
                if first_invalid.is_none() {
                    first_invalid = batch.first_invalid;
                }
                // The workers only stop when this channel closes.
                let _ = batch_tx.send((index, batch.rows));
                index += 1;
            })
            .map(|()| (dropped, first_invalid))
        });
        for _ in 0..threads {
            let result_tx = result_tx.clone();
            let (batch_rx, work) = (&batch_rx, &work);
            s.spawn(move || {
                loop {
                    let next = batch_rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|rx| rx.recv().map_err(|_| ()));
                    let Ok((index, rows)) = next else { break };
                    let value = work(Chunk {
                        index,
                        d,
                        rows: &rows,
                    });
                    let _ = result_tx.send((index, (rows.len() / (d + 1)) as u64, value));
                }
            });
        }
        drop(result_tx);
        let mut pending = BTreeMap::new();
        for (index, rows, value) in result_rx {
            pending.insert(index, (rows, value));
            while let Some((rows, value)) = pending.remove(&chunk_rows.len()) {
                consume(chunk_rows.len(), value);
                chunk_rows.push(rows);
            }
        }
        (
            decoder.join().expect("the decoder thread does not panic"),
            hasher.join().expect("the hashing thread does not panic"),
        )
    });
    let (dropped_rows, first_invalid) = decoded.map_err(fail)?;
    let (content_hash, bytes) = hashed.map_err(fail)?;
    if chunk_rows.iter().sum::<u64>() == 0 {
        return Err(fail(no_rows(dropped_rows, first_invalid)));
    }
    Ok(StreamInfo {
        columns: file.columns,
        feature_names: file.feature_names,
        target_name: options.target.clone(),
        content_hash,
        bytes,
        chunk_rows,
        dropped_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_values_are_checked_as_csv_cells_are() {
        assert_eq!(checked(-2.5), Ok(-2.5));
        assert_eq!(checked(f64::from(f32::MAX)), Ok(f64::from(f32::MAX)));
        assert_eq!(checked(f64::NAN).unwrap_err(), "NaN is not a finite number");
        assert_eq!(
            checked(f64::NEG_INFINITY).unwrap_err(),
            "-inf is not a finite number"
        );
        assert_eq!(
            checked(1e39).unwrap_err(),
            "1e39 is out of f32 range (about ±3.4e38)"
        );
    }

    #[test]
    fn parquet_errors_are_one_line_and_name_a_missing_codec() {
        let codec = ParquetError::General("Disabled feature at compile time: brotli".into());
        assert_eq!(
            damaged(codec),
            "is compressed with brotli, which burnfit does not read (it reads uncompressed, \
             snappy, gzip, zstd and lz4 Parquet files)"
        );
        let other = ParquetError::General("bad\nfooter".into());
        assert_eq!(
            damaged(other),
            "cannot be read as Parquet (Parquet error: bad footer)"
        );
        let panicked = guarded(
            |e| e,
            || -> std::result::Result<(), String> { panic!("inside") },
        );
        assert_eq!(
            panicked.unwrap_err(),
            "cannot be read as Parquet (its data is damaged: the parquet reader failed on it)"
        );
    }
}
