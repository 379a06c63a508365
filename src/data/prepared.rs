//! A CSV table made ready to train on: read, split into training and validation rows, and
//! (optionally) standardized — and the conversions between the parameters a model trains in
//! (scaled space) and the ones a checkpoint keeps (the data's own units).

use std::path::Path;

use super::table::{Scaling, Table, TableOptions, hash_hex, holdout_split};
use crate::checkpoint::{DataRecord, NamedTensor, ScalingRecord};
use crate::config::TableConfig;
use crate::error::{Error, Result};
use crate::fit_quality::FitQuality;
use crate::host::HostTensor;
use crate::model::ModelSpec;

/// A table with its split and scaling.
#[derive(Debug)]
pub struct PreparedTable {
    /// The rows as read.
    pub table: Table,
    /// Training rows (indices into the table), ascending.
    pub train: Vec<u32>,
    /// Validation rows, ascending.
    pub val: Vec<u32>,
    /// Feature scaling used while training; `None` with `--no-standardize`.
    pub scaling: Option<Scaling>,
    /// The target's mean and standard deviation over the training rows, when standardizing:
    /// the model trains on (y − mean) / std.
    pub target_scaling: Option<(f64, f64)>,
}

impl PreparedTable {
    /// Reads the table a config names, splits it with the run's seed and fits the scaling on
    /// the training rows.
    pub fn load(config: &TableConfig, seed: u64) -> Result<PreparedTable> {
        let path = Path::new(&config.path);
        let table = Table::read(
            path,
            &TableOptions {
                target: config.target.clone(),
                features: config.features.clone(),
                delimiter: config.delimiter as u8,
                drop_invalid_rows: config.drop_invalid_rows,
            },
        )?;
        let data_error = |message: String| Error::Data {
            path: path.to_owned(),
            message,
        };
        let (train, val) =
            holdout_split(table.rows(), config.val_frac, seed).map_err(data_error)?;
        let scaling = config
            .standardize
            .then(|| Scaling::fit(&table, &train))
            .transpose()
            .map_err(data_error)?;
        let target_scaling = config.standardize.then(|| {
            let n = train.len() as f64;
            let mean = train.iter().map(|&r| table.y[r as usize]).sum::<f64>() / n;
            let var = train
                .iter()
                .map(|&r| (table.y[r as usize] - mean).powi(2))
                .sum::<f64>()
                / n;
            // A constant target has nothing to scale: keep its units.
            let std = if var > 0.0 && var.is_finite() {
                var.sqrt()
            } else {
                1.0
            };
            (mean, std)
        });
        Ok(PreparedTable {
            table,
            train,
            val,
            scaling,
            target_scaling,
        })
    }

    /// Number of features.
    pub fn d(&self) -> usize {
        self.table.d()
    }

    /// The training rows as the model sees them: scaled features (row-major) and targets, f32.
    pub fn training_rows(&self) -> (Vec<f32>, Vec<f32>) {
        let d = self.d();
        let mut x = vec![0.0f32; self.train.len() * d];
        for (out, &row) in x.chunks_exact_mut(d.max(1)).zip(&self.train) {
            self.scaled_row(row as usize, out);
        }
        let (mean, std) = self.target_scaling.unwrap_or((0.0, 1.0));
        let y = self
            .train
            .iter()
            .map(|&r| ((self.table.y[r as usize] - mean) / std) as f32)
            .collect();
        (x, y)
    }

    fn scaled_row(&self, row: usize, out: &mut [f32]) {
        match &self.scaling {
            Some(scaling) => scaling.scale_row(self.table.row(row), out),
            None => {
                for (o, v) in out.iter_mut().zip(self.table.row(row)) {
                    *o = *v as f32;
                }
            }
        }
    }

    /// The factor from the training loss (on the scaled target) to the loss in the target's
    /// units: std² for MSE and Huber's loss, std for MAE.
    pub fn loss_scale(&self, loss: crate::loss::LossKind) -> f32 {
        self.target_scaling
            .map_or(1.0, |(_, std)| std.powi(loss.scale_power()) as f32)
    }

    /// Huber's δ (in the target's units) in the training space: δ / std.
    pub fn training_delta(&self, delta: f32) -> f32 {
        self.target_scaling
            .map_or(delta, |(_, std)| (f64::from(delta) / std) as f32)
    }

    /// Parameters trained in the scaled space, in the data's units: the feature scaling folded
    /// into the first layer, the target's into the last.
    pub fn to_data_units(&self, params: &mut [HostTensor]) {
        if let Some(scaling) = &self.scaling {
            let (w, b) = scaling.unscale_linear(&widen(&params[0]), &widen(&params[1]));
            params[0].data = narrow(&w);
            params[1].data = narrow(&b);
        }
        if let Some((mean, std)) = self.target_scaling {
            let last = params.len() - 2;
            let w: Vec<f64> = widen(&params[last]).iter().map(|w| w * std).collect();
            let b: Vec<f64> = widen(&params[last + 1])
                .iter()
                .map(|b| b * std + mean)
                .collect();
            params[last].data = narrow(&w);
            params[last + 1].data = narrow(&b);
        }
    }

    /// The scaled-space values of the parameters that [`PreparedTable::to_data_units`] changes
    /// (the first and the last layer), by name, for [`DataRecord::training_space`]; `None`
    /// without standardization.
    pub fn training_space(
        &self,
        names: &[String],
        params: &[HostTensor],
    ) -> Option<std::collections::BTreeMap<String, Vec<f32>>> {
        if !self.is_scaled() {
            return None;
        }
        let last = params.len() - 2;
        Some(
            [0, 1, last, last + 1]
                .iter()
                .map(|&i| (names[i].clone(), params[i].data.clone()))
                .collect(),
        )
    }

    /// The training MSE of parameters in the scaled space, computed in f64 and in the target's
    /// units: what the model achieved before its parameters were rounded to f32 in the data's
    /// units.
    pub fn training_space_mse(&self, spec: &ModelSpec, params: &[NamedTensor]) -> f64 {
        let (mean, std) = self.target_scaling.unwrap_or((0.0, 1.0));
        let d = self.d();
        let mut row = vec![0.0f32; d];
        let mut sum = 0.0;
        for &r in &self.train {
            self.scaled_row(r as usize, &mut row);
            let x: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
            let z = spec.forward_host(params, &x) * std + mean;
            sum += (z - self.table.y[r as usize]).powi(2);
        }
        sum / self.train.len().max(1) as f64
    }

    /// Whether training changes units at all (standardization on).
    pub fn is_scaled(&self) -> bool {
        self.scaling.is_some() || self.target_scaling.is_some()
    }

    /// Parameters in the scaled space for a resume: the exact values a checkpoint recorded
    /// ([`DataRecord::training_space`]) when they agree with its parameters in the data's units
    /// (a file edited or rewritten by another tool falls back to converting those).
    pub fn resume_params(
        &self,
        names: &[String],
        params: &[HostTensor],
        record: Option<&DataRecord>,
    ) -> Vec<HostTensor> {
        let mut converted = params.to_vec();
        self.to_training_space(&mut converted);
        let Some(exact) = record.and_then(|r| r.training_space.as_ref()) else {
            return converted;
        };
        let mut trained = params.to_vec();
        for (name, value) in names.iter().zip(trained.iter_mut()) {
            if let Some(data) = exact.get(name) {
                if data.len() != value.data.len() {
                    return converted;
                }
                value.data = data.clone();
            }
        }
        let mut check = trained.clone();
        self.to_data_units(&mut check);
        if check == params { trained } else { converted }
    }

    /// The inverse of [`PreparedTable::to_data_units`].
    pub fn to_training_space(&self, params: &mut [HostTensor]) {
        if let Some((mean, std)) = self.target_scaling {
            let last = params.len() - 2;
            let w: Vec<f64> = widen(&params[last]).iter().map(|w| w / std).collect();
            let b: Vec<f64> = widen(&params[last + 1])
                .iter()
                .map(|b| (b - mean) / std)
                .collect();
            params[last].data = narrow(&w);
            params[last + 1].data = narrow(&b);
        }
        if let Some(scaling) = &self.scaling {
            let (w, b) = scaling.scale_linear(&widen(&params[0]), &widen(&params[1]));
            params[0].data = narrow(&w);
            params[1].data = narrow(&b);
        }
    }

    /// The mean target over the training rows.
    pub fn training_target_mean(&self) -> f64 {
        let sum: f64 = self.train.iter().map(|&r| self.table.y[r as usize]).sum();
        sum / self.train.len().max(1) as f64
    }

    /// What a checkpoint records of this table.
    pub fn record(&self) -> DataRecord {
        DataRecord {
            file: self.table.file_name.clone(),
            rows: self.table.rows(),
            dropped_rows: self.table.dropped_rows,
            hash: hash_hex(self.table.content_hash),
            features: self.table.feature_names.clone(),
            target: self.table.target_name.clone(),
            train_rows: self.train.len(),
            val_rows: self.val.len(),
            training_space: None,
            scaling: self.scaling.as_ref().map(|s| ScalingRecord {
                mean: s.mean.clone(),
                std: s.std.clone(),
                target_mean: self.target_scaling.map(|t| t.0),
                target_std: self.target_scaling.map(|t| t.1),
            }),
        }
    }

    /// The mean `loss` (Huber's `delta` in the target's units) of the model on some rows, in the
    /// data's units: the validation loss a run logs.
    pub fn mean_loss(
        &self,
        spec: &ModelSpec,
        params: &[NamedTensor],
        rows: &[u32],
        loss: crate::loss::LossKind,
        delta: f32,
    ) -> f64 {
        let sum: f64 = rows
            .iter()
            .map(|&r| {
                let e = spec.forward_host(params, self.table.row(r as usize))
                    - self.table.y[r as usize];
                loss.value(e, f64::from(delta))
            })
            .sum();
        sum / rows.len() as f64
    }

    /// The model's fit on some rows, predicted on the host in f64 from parameters in the
    /// data's units.
    pub fn quality(&self, spec: &ModelSpec, params: &[NamedTensor], rows: &[u32]) -> FitQuality {
        FitQuality::of(
            rows.iter()
                .map(|&r| spec.forward_host(params, self.table.row(r as usize))),
            rows.iter().map(|&r| self.table.y[r as usize]),
        )
    }
}

fn widen(t: &HostTensor) -> Vec<f64> {
    t.data.iter().map(|v| f64::from(*v)).collect()
}

fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|v| *v as f32).collect()
}
