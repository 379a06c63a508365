//! `burnfit ols` over a CSV file of any size: the fit, its summary and the training and
//! validation metrics from streaming passes ([`crate::data::table::stream`]) that hold a few
//! chunks of text and an R factor ([`Factor`]), never the table.
//!
//! The passes: with `val_frac` 0, one pass hashes the file, parses it and folds every row into
//! R. With a validation split, the split must be today's ([`holdout_split`]: a permutation of
//! the row numbers, which needs the number of rows first), so a first pass counts the valid
//! rows, the split becomes one bit per row ([`holdout_mask`]), and a second pass folds the
//! training rows. A last pass predicts every row for the metrics (MAE needs the residuals).
//! Every pass hashes the file again: a file changed between passes is an error, not a wrong fit.
//!
//! [`holdout_split`]: crate::data::table::holdout_split

use std::path::Path;

use super::{Factor, OlsFit, OlsSummary, TreeMerge, summary_of_factor};
use crate::data::table::chunk::StreamInfo;
use crate::data::table::stream::stream;
use crate::data::table::{TableOptions, holdout_mask};
use crate::error::{Error, Result};
use crate::fit_quality::{FitQuality, FitQualitySums};

/// How to fit a file.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Which columns, the delimiter, invalid rows.
    pub table: TableOptions,
    /// The fraction of rows held out, as `train`'s split with `seed` draws them.
    pub val_frac: f64,
    /// The split's seed.
    pub seed: u64,
    /// Fit an intercept.
    pub intercept: bool,
}

/// The fit of a file and everything `burnfit ols` prints about it.
#[derive(Clone, Debug)]
pub struct StreamedFit {
    /// The summary of the fit on the training rows.
    pub summary: OlsSummary,
    /// R of the training rows (what `--save-summary` writes).
    pub factor: Factor,
    /// The file: columns, hash, size, rows per chunk, dropped rows.
    pub info: StreamInfo,
    /// The metrics on the training rows.
    pub train: FitQuality,
    /// The metrics on the validation rows (`None` without any).
    pub val: Option<FitQuality>,
}

/// Fits the file at `path` in streaming passes; see the module's doc.
pub fn fit_csv(path: &Path, options: &StreamOptions) -> Result<StreamedFit> {
    let fail = |message: String| Error::Data {
        path: path.to_owned(),
        message,
    };
    let intercept = options.intercept;
    let (info, holdout, factor) = if options.val_frac == 0.0 {
        let mut tree = TreeMerge::default();
        let info = stream(
            path,
            &options.table,
            |chunk| Factor::of_rows(chunk.rows, chunk.d, intercept),
            |_, factor| tree.push(factor),
        )?;
        let holdout = holdout_mask(rows_usize(&info), 0.0, options.seed).map_err(fail)?;
        (info, holdout, tree.finish())
    } else {
        let counted = stream(path, &options.table, |_| (), |_, ()| {})?;
        let holdout =
            holdout_mask(rows_usize(&counted), options.val_frac, options.seed).map_err(fail)?;
        let offsets = counted.chunk_offsets();
        let mut tree = TreeMerge::default();
        let info = stream(
            path,
            &options.table,
            |chunk| {
                let first = offsets.get(chunk.index).copied().unwrap_or(u64::MAX);
                let mut train = Vec::with_capacity(chunk.rows.len());
                for (i, row) in chunk.rows.chunks_exact(chunk.d + 1).enumerate() {
                    if !holdout.is_val(first.saturating_add(i as u64)) {
                        train.extend_from_slice(row);
                    }
                }
                Factor::of_rows(&train, chunk.d, intercept)
            },
            |_, factor| tree.push(factor),
        )?;
        unchanged(&counted, &info).map_err(fail)?;
        (info, holdout, tree.finish())
    };
    let d = info.feature_names.len();
    let factor = factor.unwrap_or_else(|| Factor::new(d, intercept));
    let summary = summary_of_factor(&factor, &info.feature_names).map_err(fail)?;

    let offsets = info.chunk_offsets();
    let fit: &OlsFit = &summary.fit;
    let mut quality = (FitQualitySums::default(), FitQualitySums::default());
    let checked = stream(
        path,
        &options.table,
        |chunk| {
            let first = offsets.get(chunk.index).copied().unwrap_or(u64::MAX);
            let (mut train, mut val) = (FitQualitySums::default(), FitQualitySums::default());
            for (i, row) in chunk.rows.chunks_exact(d + 1).enumerate() {
                let p = fit.predict(&row[..d]);
                if holdout.is_val(first.saturating_add(i as u64)) {
                    val.push(p, row[d]);
                } else {
                    train.push(p, row[d]);
                }
            }
            (train, val)
        },
        |_, (train, val)| {
            quality.0.merge(&train);
            quality.1.merge(&val);
        },
    )?;
    unchanged(&info, &checked).map_err(fail)?;
    Ok(StreamedFit {
        summary,
        factor,
        info,
        train: quality.0.finish(),
        val: (quality.1.rows() > 0).then(|| quality.1.finish()),
    })
}

fn rows_usize(info: &StreamInfo) -> usize {
    usize::try_from(info.rows()).unwrap_or(usize::MAX)
}

/// Refuses a second pass that saw another file than the first.
fn unchanged(first: &StreamInfo, second: &StreamInfo) -> std::result::Result<(), String> {
    if (first.content_hash, first.bytes, &first.chunk_rows)
        != (second.content_hash, second.bytes, &second.chunk_rows)
    {
        return Err(
            "the file changed while it was read; run again on a file that stays put".into(),
        );
    }
    Ok(())
}
