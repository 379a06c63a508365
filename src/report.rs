//! How good a fit to a CSV table is: MSE, RMSE, MAE and R² on the training and validation rows,
//! side by side with the closed-form least-squares fit of the same training rows.

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::data::{PreparedTable, Split};
use crate::error::Result;
use crate::fit_quality::FitQuality;
use crate::ols::{self, OlsFit};

/// A fit's quality on both splits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SplitQuality {
    /// On the training rows.
    pub train: FitQuality,
    /// On the validation rows (none with `--val-frac 0`).
    pub val: Option<FitQuality>,
}

/// A trained model next to the closed-form fit.
#[derive(Clone, Debug)]
pub struct FitComparison {
    /// The trained model's quality.
    pub model: SplitQuality,
    /// Its weights and bias in the data's units (linear models only).
    pub model_coefficients: Option<(Vec<f64>, f64)>,
    /// The closed-form fit — least squares, or the ridge fit of the run's `--l2` — and its
    /// quality, or why there is none (collinear features).
    pub ols: Result<(OlsFit, SplitQuality), String>,
    /// The ridge penalty of the closed form (0: least squares).
    pub l2: f64,
    /// The optimizer that trained the model (`adam` for a file without burnfit's metadata).
    pub optimizer: &'static str,
}

impl FitComparison {
    /// Evaluates `checkpoint` (parameters in the data's units) on `table`'s splits and fits OLS
    /// on the same training rows (passes over the cache for an out-of-core table; an error only
    /// when it cannot be read).
    pub fn of(table: &PreparedTable, checkpoint: &Checkpoint) -> Result<FitComparison> {
        let params = checkpoint.named_params();
        let model = split_quality_of(table, |row| checkpoint.spec.forward_host(&params, row))?;
        let model_coefficients = checkpoint.spec.is_linear().then(|| {
            (
                checkpoint.params[0]
                    .data
                    .iter()
                    .map(|v| f64::from(*v))
                    .collect(),
                f64::from(checkpoint.params[1].data[0]),
            )
        });
        // A linear model trained with a ridge penalty is held to the ridge optimum; an MLP to
        // the linear least-squares baseline either way.
        let l2 = match &checkpoint.meta {
            Some(meta) if checkpoint.spec.is_linear() => f64::from(meta.config.l2),
            _ => 0.0,
        };
        let ols = match if l2 == 0.0 {
            least_squares(table)?
        } else {
            crate::ridge::fit(table, l2)
        } {
            Ok(fit) => Ok((split_quality(table, &fit)?, fit)),
            Err(why) => Err(why),
        };
        Ok(FitComparison {
            model,
            model_coefficients,
            ols: ols.map(|(split, fit)| (fit, split)),
            l2,
            optimizer: checkpoint
                .meta
                .as_ref()
                .map_or("adam", |m| m.config.optimizer.name()),
        })
    }

    /// The model's training MSE relative to the closed form's: 0.004 means 0.4 % above it.
    pub fn train_gap(&self) -> Option<f64> {
        let (_, ols) = self.ols.as_ref().ok()?;
        // Noise-free data: the closed form fits to rounding (its residual a ~1e-13 or smaller
        // part of the targets' variance, R² = 1 in f64's digits) and a gap relative to that
        // rounding means nothing. (A constant target has R² NaN: no gap either.)
        let exact = ols.train.r2.is_nan() || 1.0 - ols.train.r2 <= 1e-13;
        (!exact && ols.train.mse > 0.0).then(|| self.model.train.mse / ols.train.mse - 1.0)
    }
}

/// The least-squares fit of a table's training rows, and its quality on both splits.
pub fn ols_fit(
    table: &PreparedTable,
) -> Result<std::result::Result<(OlsFit, SplitQuality), String>> {
    Ok(match least_squares(table)? {
        Ok(fit) => Ok((fit.clone(), split_quality(table, &fit)?)),
        Err(why) => Err(why),
    })
}

/// The least-squares fit of a table's training rows, or why there is none: QR of the rows in
/// memory, or a streaming TSQR over the cache of an out-of-core table (`burnfit ols`'s method).
fn least_squares(table: &PreparedTable) -> Result<std::result::Result<OlsFit, String>> {
    if let Some(m) = table.in_memory() {
        return Ok(ols::fit_table(&m.table, &m.train));
    }
    let d = table.d();
    let mut tree = ols::TreeMerge::default();
    let mut rows = Vec::new();
    table.for_each_row(Split::Train, |x, y| {
        rows.extend_from_slice(x);
        rows.push(y);
        // Chunks of about 32 MB (the R factor of each merges into the tree).
        if rows.len() >= (4 << 20).max(d + 1) {
            tree.push(ols::Factor::of_rows(&rows, d, true));
            rows.clear();
        }
    })?;
    if !rows.is_empty() {
        tree.push(ols::Factor::of_rows(&rows, d, true));
    }
    let factor = tree.finish().unwrap_or_else(|| ols::Factor::new(d, true));
    Ok(ols::fit_of_factor(&factor, table.feature_names()))
}

/// A closed-form fit's quality on a table's training and validation rows.
pub fn split_quality(table: &PreparedTable, fit: &OlsFit) -> Result<SplitQuality> {
    split_quality_of(table, |row| fit.predict(row))
}

/// The quality of `predict` on a table's training and validation rows.
fn split_quality_of(
    table: &PreparedTable,
    predict: impl Fn(&[f64]) -> f64,
) -> Result<SplitQuality> {
    Ok(SplitQuality {
        train: table.quality_of(Split::Train, &predict)?,
        val: if table.val_rows() > 0 {
            Some(table.quality_of(Split::Val, &predict)?)
        } else {
            None
        },
    })
}

/// A coefficient for a table column: `decimals` places, or in scientific notation with as many
/// significant digits when fixed places would show it as 0 or run long (|v| < 1e-4, ≥ 1e9).
pub fn coefficient_text(v: f64, decimals: usize) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e9).contains(&v.abs()) {
        format!("{v:.decimals$}")
    } else {
        format!("{v:.decimals$e}")
    }
}

#[cfg(test)]
mod tests {
    use super::coefficient_text;

    #[test]
    fn small_and_large_coefficients_keep_their_digits() {
        assert_eq!(coefficient_text(2.5, 6), "2.500000");
        assert_eq!(coefficient_text(-0.0123, 6), "-0.012300");
        assert_eq!(coefficient_text(2.993751058e-9, 8), "2.99375106e-9");
        assert_eq!(coefficient_text(-3.5e12, 6), "-3.500000e12");
        assert_eq!(coefficient_text(0.0, 8), "0.00000000");
    }
}
