//! How good a fit to a CSV table is: MSE, RMSE, MAE and R² on the training and validation rows,
//! side by side with the closed-form least-squares fit of the same training rows.

use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::data::PreparedTable;
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
    /// on the same training rows.
    pub fn of(table: &PreparedTable, checkpoint: &Checkpoint) -> FitComparison {
        let params = checkpoint.named_params();
        let quality = |rows: &[u32]| table.quality(&checkpoint.spec, &params, rows);
        let model = SplitQuality {
            train: quality(&table.train),
            val: (!table.val.is_empty()).then(|| quality(&table.val)),
        };
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
        FitComparison {
            model,
            model_coefficients,
            ols: if l2 == 0.0 {
                ols_fit(table)
            } else {
                crate::ridge::fit(table, l2).map(|fit| {
                    let split = split_quality(table, &fit);
                    (fit, split)
                })
            },
            l2,
            optimizer: checkpoint
                .meta
                .as_ref()
                .map_or("adam", |m| m.config.optimizer.name()),
        }
    }

    /// The model's training MSE relative to the closed form's: 0.004 means 0.4 % above it.
    pub fn train_gap(&self) -> Option<f64> {
        let (_, ols) = self.ols.as_ref().ok()?;
        // Noise-free data: the closed form fits to rounding (its residual a ~1e-13 or smaller
        // part of the targets' variance, R² = 1 in f64's digits) and a gap relative to that
        // rounding means nothing. (A constant target has R² NaN: no gap either.)
        let exact = !(1.0 - ols.train.r2 > 1e-13);
        (!exact && ols.train.mse > 0.0).then(|| self.model.train.mse / ols.train.mse - 1.0)
    }
}

/// The least-squares fit of a table's training rows, and its quality on both splits.
pub fn ols_fit(table: &PreparedTable) -> Result<(OlsFit, SplitQuality), String> {
    let fit = ols::fit_table(&table.table, &table.train)?;
    let split = split_quality(table, &fit);
    Ok((fit, split))
}

/// A closed-form fit's quality on a table's training and validation rows.
pub fn split_quality(table: &PreparedTable, fit: &OlsFit) -> SplitQuality {
    let t = &table.table;
    let quality = |rows: &[u32]| {
        FitQuality::of(
            rows.iter().map(|&r| fit.predict(t.row(r as usize))),
            rows.iter().map(|&r| t.y[r as usize]),
        )
    };
    SplitQuality {
        train: quality(&table.train),
        val: (!table.val.is_empty()).then(|| quality(&table.val)),
    }
}
