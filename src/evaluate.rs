//! `burnfit evaluate`: how well a saved model predicts the target column of a labelled CSV file
//! (MSE, RMSE, MAE, R², and the loss the model was trained with), for any model and any
//! checkpoint format. The model's feature columns are found by name, as `predict --data` finds
//! them ([`model_features`]).

use std::path::Path;

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::data::table::TableOptions;
use crate::data::table::stream::stream;
use crate::error::{Error, Result};
use crate::fit_quality::{FitQuality, FitQualitySums};
use crate::loss::{DEFAULT_HUBER_DELTA, LossKind};

/// A model's score on a labelled file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// The data file as given.
    pub data: String,
    /// The target column.
    pub target: String,
    /// The feature columns, in the model's order.
    pub features: Vec<String>,
    /// Rows skipped for an invalid cell (only with `drop_invalid_rows`).
    pub dropped_rows: usize,
    /// MSE, RMSE, MAE, R² and the number of rows scored.
    #[serde(flatten)]
    pub quality: FitQuality,
    /// The training loss's name and its value on these rows.
    pub loss: LossValue,
}

/// A loss by name and its value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossValue {
    /// `mse`, `mae` or `huber`: the loss the checkpoint was trained with (MSE for files
    /// without burnfit's metadata).
    pub kind: &'static str,
    /// Huber's δ, in the target's units (only for `huber`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub huber_delta: Option<f32>,
    /// Its mean over the rows.
    pub value: f64,
}

/// The feature columns `checkpoint`'s model reads from a CSV file: the ones its metadata
/// records, or `x` for a one-input model without them (the autograd crate's files, the synthetic
/// line). A model with more inputs and no recorded names cannot be matched to columns.
pub fn model_features(checkpoint: &Checkpoint, path: &Path) -> Result<Vec<String>> {
    match checkpoint.meta.as_ref().and_then(|m| m.data.as_ref()) {
        Some(record) => Ok(record.features.clone()),
        None if checkpoint.spec.d_in == 1 => Ok(vec!["x".into()]),
        None => Err(Error::InvalidInput {
            what: format!("--checkpoint {}", path.display()),
            message: "records no feature names (no burnfit metadata); cannot match CSV columns"
                .into(),
        }),
    }
}

/// The delimiter `checkpoint` was trained with, when it records one.
pub fn recorded_delimiter(checkpoint: &Checkpoint) -> Option<char> {
    checkpoint
        .meta
        .as_ref()?
        .config
        .data
        .as_ref()
        .map(|d| d.delimiter)
}

/// The target column `checkpoint` was trained to predict, when it records one.
pub fn recorded_target(checkpoint: &Checkpoint) -> Option<String> {
    let meta = checkpoint.meta.as_ref()?;
    meta.data
        .as_ref()
        .map(|d| d.target.clone())
        .or_else(|| meta.config.data.as_ref().map(|d| d.target.clone()))
}

/// Scores `checkpoint` on the file `data`: its `features` columns (by name) in, `target` out;
/// predictions on the host in f64, as `predict --data` makes them. Every problem of the file (a
/// missing column, a non-numeric cell, no rows) is an [`Error::Data`] naming the line and
/// column.
pub fn evaluate(
    checkpoint: &Checkpoint,
    data: &Path,
    features: &[String],
    target: &str,
    delimiter: char,
    drop_invalid_rows: bool,
) -> Result<Evaluation> {
    if !delimiter.is_ascii() {
        return Err(Error::InvalidSetting {
            name: "--delimiter",
            value: delimiter.to_string(),
            expected: "must be one ASCII character",
        });
    }
    if features.len() != checkpoint.spec.d_in {
        return Err(Error::InvalidInput {
            what: "--checkpoint".into(),
            message: format!(
                "records {} feature names for a model of {} inputs",
                features.len(),
                checkpoint.spec.d_in
            ),
        });
    }
    if features.iter().any(|f| f == target) {
        return Err(Error::Data {
            path: data.to_owned(),
            message: format!("the target `{target}` is one of the model's features"),
        });
    }
    // One streaming pass: chunks parsed and predicted on every core, the sums taken in row
    // order (the numbers of an in-memory pass, bit for bit), memory a few chunks.
    let params = checkpoint.named_params();
    let (loss, delta) = checkpoint
        .meta
        .as_ref()
        .map_or((LossKind::Mse, DEFAULT_HUBER_DELTA), |m| {
            (m.config.loss, m.config.huber_delta)
        });
    let mut sums = FitQualitySums::default();
    let mut loss_sum = 0.0;
    let info = stream(
        data,
        &TableOptions {
            target: target.to_owned(),
            features: Some(features.to_vec()),
            delimiter: delimiter as u8,
            drop_invalid_rows,
        },
        |chunk| {
            chunk
                .rows
                .chunks_exact(chunk.d + 1)
                .map(|row| {
                    let (x, y) = row.split_at(chunk.d);
                    (checkpoint.spec.forward_host(&params, x), y[0])
                })
                .collect::<Vec<_>>()
        },
        |_, pairs| {
            for (p, y) in pairs {
                sums.push(p, y);
                if loss != LossKind::Mse {
                    loss_sum += loss.value(p - y, f64::from(delta));
                }
            }
        },
    )?;
    let quality = sums.finish();
    if quality.rows == 0 {
        return Err(Error::Data {
            path: data.to_owned(),
            message: "has no rows to evaluate".into(),
        });
    }
    if !quality.mse.is_finite() {
        return Err(Error::Data {
            path: data.to_owned(),
            message: format!(
                "the model's predictions are not finite on it (MSE {})",
                quality.mse
            ),
        });
    }
    let loss_value = if loss == LossKind::Mse {
        quality.mse
    } else {
        loss_sum / quality.rows as f64
    };
    Ok(Evaluation {
        data: data.display().to_string(),
        target: info.target_name,
        features: info.feature_names,
        dropped_rows: info.dropped_rows,
        loss: LossValue {
            kind: loss.name(),
            huber_delta: (loss == LossKind::Huber).then_some(delta),
            value: loss_value,
        },
        quality,
    })
}
