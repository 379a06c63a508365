//! A CSV table trained on out of core: its rows in a [`RowCache`] on disk, its split one bit
//! per row, and passes over it a block at a time. Memory is the split (rows / 8 bytes; the
//! permutation it is drawn from, 4 bytes a row, only while it is made) and a block or two,
//! whatever the file's size.
//!
//! The split is [`holdout_mask`]: the rows `train` holds out in memory ([`holdout_split`]) and
//! the rows `burnfit ols` holds out in its streaming passes, so the three agree on which rows
//! validate for a given `(--val-frac, --seed)`.
//!
//! [`holdout_split`]: super::table::holdout_split

use std::path::Path;

use super::cache::{CacheOrigin, RowCache};
use super::table::{Holdout, Moments, Survey, TableOptions, holdout_mask};
use crate::error::{Error, Result};

/// Rows a block, the unit of the out-of-core shuffle ([`super::streamed_batches`]): 4,096, or
/// fewer for rows wider than 256 bytes, so that a block is at most [`BLOCK_BYTES`].
pub const BLOCK_ROWS: usize = 4096;

/// The most bytes of a block (see [`BLOCK_ROWS`]).
pub const BLOCK_BYTES: usize = 1 << 20;

/// The bytes a pass over the cache reads at once.
const READ_BYTES: usize = 4 << 20;

/// Which rows of a split table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training rows.
    Train,
    /// The validation rows.
    Val,
}

/// The rows of an out-of-core table.
#[derive(Debug)]
pub struct CachedRows {
    /// The cache of the file's rows.
    pub cache: RowCache,
    /// Whether this run found the cache current or built it.
    pub origin: CacheOrigin,
    /// The data file, as given.
    pub file_name: String,
    /// Which rows validate.
    pub holdout: Holdout,
    train_rows: usize,
}

impl CachedRows {
    /// The cache of `path` read with `options` (built when missing or stale; in `cache_dir`,
    /// or beside the file), split by `(val_frac, seed)`.
    pub fn open(
        path: &Path,
        options: &TableOptions,
        survey: &Survey,
        cache_dir: Option<&Path>,
        val_frac: f64,
        seed: u64,
    ) -> Result<CachedRows> {
        let (cache, origin) = RowCache::open_or_build(path, options, survey, cache_dir)?;
        let rows = usize::try_from(cache.rows()).unwrap_or(usize::MAX);
        let holdout = holdout_mask(rows, val_frac, seed).map_err(|message| Error::Data {
            path: path.to_owned(),
            message,
        })?;
        Ok(CachedRows {
            train_rows: rows - holdout.val,
            cache,
            origin,
            file_name: path.display().to_string(),
            holdout,
        })
    }

    /// All rows.
    pub fn rows(&self) -> usize {
        self.train_rows + self.holdout.val
    }

    /// The training rows.
    pub fn train_rows(&self) -> usize {
        self.train_rows
    }

    /// The validation rows.
    pub fn val_rows(&self) -> usize {
        self.holdout.val
    }

    /// Rows a block: [`BLOCK_ROWS`], fewer for wide rows (at most [`BLOCK_BYTES`] a block).
    pub fn block_rows(&self) -> usize {
        (BLOCK_BYTES / (4 * self.cache.width())).clamp(1, BLOCK_ROWS)
    }

    /// The number of blocks (the last may be shorter).
    pub fn blocks(&self) -> usize {
        self.rows().div_ceil(self.block_rows())
    }

    /// Whether row `row` belongs to `split`.
    pub fn is_in(&self, split: Split, row: u64) -> bool {
        self.holdout.is_val(row) == (split == Split::Val)
    }

    /// Calls `visit` with the rows of `split` in file order, several at a time: row-major,
    /// `d + 1` values a row (the features, then the target), as cached.
    pub fn for_each_rows(&self, split: Split, mut visit: impl FnMut(&[f32])) -> Result<()> {
        let width = self.cache.width();
        let at_once = (READ_BYTES / (4 * width)).max(1) as u64;
        let (mut bytes, mut values, mut picked) = (Vec::new(), Vec::new(), Vec::new());
        let rows = self.rows() as u64;
        let mut first = 0u64;
        while first < rows {
            let n = (rows - first).min(at_once) as usize;
            self.cache.read_rows(first, n, &mut bytes, &mut values)?;
            picked.clear();
            for (i, row) in values.chunks_exact(width).enumerate() {
                if self.is_in(split, first + i as u64) {
                    picked.extend_from_slice(row);
                }
            }
            if !picked.is_empty() {
                visit(&picked);
            }
            first += n as u64;
        }
        Ok(())
    }

    /// The means and spreads of every column (the target last) over the training rows, in
    /// one pass ([`Moments`]).
    pub fn training_moments(&self) -> Result<Moments> {
        let mut moments = Moments::new(self.cache.width());
        self.for_each_rows(Split::Train, |rows| moments.add_block(rows))?;
        Ok(moments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_rows_blocks_shrink_for_wide_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.csv");
        let names: Vec<String> = (0..999).map(|j| format!("x{j}")).collect();
        let row = vec!["1"; 1000].join(",");
        std::fs::write(&path, format!("{},y\n{row}\n{row}\n", names.join(","))).unwrap();
        let options = TableOptions::new("y");
        let survey = Survey::of(&path, &options).unwrap();
        let rows = CachedRows::open(&path, &options, &survey, None, 0.0, 1).unwrap();
        // 1,000 values a row, 4,000 bytes: 262 rows make at most 1 MiB.
        assert_eq!((rows.block_rows(), rows.blocks()), (262, 1));
        let mut seen = 0;
        rows.for_each_rows(Split::Train, |r| seen += r.len())
            .unwrap();
        assert_eq!(seen, 2000);
    }

    #[test]
    fn cached_rows_split_as_ols_and_train_do_and_moments_cover_the_training_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("x,y\n");
        for i in 0..10_000 {
            text.push_str(&format!("{i},{}\n", i % 7));
        }
        std::fs::write(&path, text).unwrap();
        let options = TableOptions::new("y");
        let survey = Survey::of(&path, &options).unwrap();
        let rows = CachedRows::open(&path, &options, &survey, None, 0.25, 9).unwrap();
        assert_eq!(
            (rows.rows(), rows.train_rows(), rows.val_rows()),
            (10_000, 7500, 2500)
        );
        assert_eq!((rows.block_rows(), rows.blocks()), (4096, 3));
        let (train, val) = super::super::table::holdout_split(10_000, 0.25, 9).unwrap();
        let mut seen = (Vec::new(), Vec::new());
        rows.for_each_rows(Split::Train, |r| {
            seen.0.extend(r.iter().step_by(2).map(|x| *x as u32))
        })
        .unwrap();
        rows.for_each_rows(Split::Val, |r| {
            seen.1.extend(r.iter().step_by(2).map(|x| *x as u32))
        })
        .unwrap();
        assert_eq!((seen.0, seen.1), (train.clone(), val));
        let moments = rows.training_moments().unwrap();
        assert_eq!(moments.rows(), 7500);
        let mean = train.iter().map(|&r| f64::from(r)).sum::<f64>() / 7500.0;
        assert!(
            (moments.mean(0) - mean).abs() < 1e-9,
            "{} {mean}",
            moments.mean(0)
        );
    }
}
