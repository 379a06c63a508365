//! A CSV table made ready to train on: read, split into training and validation rows, and
//! (optionally) standardized — and the conversions between the parameters a model trains in
//! (scaled space) and the ones a checkpoint keeps (the data's own units).
//!
//! The rows live in memory ([`InMemoryRows`], today's path: every file whose table fits the
//! memory check of [`Table::read`], and every Parquet file) or out of core ([`CachedRows`]: a
//! binary cache of a CSV file on disk, read a block at a time) when the table would not fit or
//! `--out-of-core` asks for it. Both
//! split the same rows off for validation; out of core, the standardization's means and spreads
//! come from one streaming pass over the cached (f32) training rows ([`Moments`]).

use std::path::Path;
use std::sync::Arc;

use super::out_of_core::{CachedRows, Split};
use super::streamed_batches::{RowScaling, StreamedBatches};
use super::table::{
    GatherRows, Moments, Scaling, Survey, Table, TableOptions, hash_hex, holdout_split,
    parquet_file,
};
use crate::checkpoint::{DataRecord, NamedTensor, ScalingRecord};
use crate::config::TableConfig;
use crate::error::{Error, Result};
use crate::fit_quality::{FitQuality, FitQualitySums};
use crate::host::HostTensor;
use crate::model::ModelSpec;

/// A table's rows read into memory, and its split.
#[derive(Debug)]
pub struct InMemoryRows {
    /// The rows as read.
    pub table: Table,
    /// Training rows (indices into the table), ascending.
    pub train: Vec<u32>,
    /// Validation rows, ascending.
    pub val: Vec<u32>,
}

impl InMemoryRows {
    /// The rows of `split`.
    pub fn rows(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }
}

/// Where a table's rows are.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per table
pub enum TableRows {
    /// Read into memory.
    InMemory(InMemoryRows),
    /// In a cache on disk.
    OutOfCore(Arc<CachedRows>),
}

/// A table with its split and scaling.
#[derive(Debug)]
pub struct PreparedTable {
    /// Where the rows are: in memory or in a cache on disk.
    pub storage: TableRows,
    /// Feature scaling used while training; `None` with `--no-standardize`.
    pub scaling: Option<Scaling>,
    /// The target's mean and standard deviation over the training rows, when standardizing:
    /// the model trains on (y − mean) / std.
    pub target_scaling: Option<(f64, f64)>,
}

impl PreparedTable {
    /// Reads the table a config names, splits it with the run's seed and fits the scaling on
    /// the training rows: in memory when its table fits ([`Survey::fits_in_memory`]) and
    /// `out_of_core` is off, out of core otherwise.
    pub fn load(config: &TableConfig, seed: u64) -> Result<PreparedTable> {
        Self::load_if(config, seed, &|_| Ok(()))
    }

    /// [`Self::load`], with `accept` shown a CSV file's content hash (as [`hash_hex`] writes it)
    /// after the first pass over the file and before it is read or cached: a resume refuses a
    /// changed file there, before a large file's full read or its cache's rebuild.
    pub fn load_if(
        config: &TableConfig,
        seed: u64,
        accept: &dyn Fn(&str) -> Result<()>,
    ) -> Result<PreparedTable> {
        let path = Path::new(&config.path);
        let options = TableOptions {
            target: config.target.clone(),
            features: config.features.clone(),
            delimiter: config.delimiter as u8,
            drop_invalid_rows: config.drop_invalid_rows,
        };
        let data_error = |message: String| Error::Data {
            path: path.to_owned(),
            message,
        };
        let table = if parquet_file::is_parquet(path) {
            // Parquet is read into memory (its reader checks the memory); out of core is CSV's.
            if config.out_of_core {
                return Err(data_error(
                    "is a Parquet file, and --out-of-core trains on CSV files; convert it to CSV, or train without --out-of-core".into(),
                ));
            }
            Table::read(path, &options)?
        } else {
            let survey = Survey::of(path, &options)?;
            accept(&hash_hex(survey.content_hash))?;
            if config.out_of_core || !survey.fits_in_memory() {
                return Self::load_out_of_core(config, seed, &options, &survey);
            }
            Table::read_surveyed(path, &options, &survey)?
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
            (mean, spread_or_one(var.sqrt()))
        });
        Ok(PreparedTable {
            storage: TableRows::InMemory(InMemoryRows { table, train, val }),
            scaling,
            target_scaling,
        })
    }

    /// The table out of core: its cache opened (built when missing or stale), split, and the
    /// scaling fitted in one streaming pass over the training rows.
    fn load_out_of_core(
        config: &TableConfig,
        seed: u64,
        options: &TableOptions,
        survey: &Survey,
    ) -> Result<PreparedTable> {
        let path = Path::new(&config.path);
        let rows = CachedRows::open(
            path,
            options,
            survey,
            config.cache_dir.as_deref().map(Path::new),
            config.val_frac,
            seed,
        )?;
        let (scaling, target_scaling) = if config.standardize {
            let moments: Moments = rows.training_moments()?;
            let d = rows.cache.d();
            let constant: Vec<bool> = (0..d).map(|j| moments.is_constant(j)).collect();
            let scaling = Scaling::checked(
                &rows.cache.header().feature_names,
                (0..d).map(|j| moments.mean(j)).collect(),
                (0..d).map(|j| moments.std(j)).collect(),
                &constant,
            )
            .map_err(|message| Error::Data {
                path: path.to_owned(),
                message,
            })?;
            (
                Some(scaling),
                Some((moments.mean(d), spread_or_one(moments.std(d)))),
            )
        } else {
            (None, None)
        };
        Ok(PreparedTable {
            storage: TableRows::OutOfCore(Arc::new(rows)),
            scaling,
            target_scaling,
        })
    }

    /// The rows in memory, when they are.
    pub fn in_memory(&self) -> Option<&InMemoryRows> {
        match &self.storage {
            TableRows::InMemory(rows) => Some(rows),
            TableRows::OutOfCore(_) => None,
        }
    }

    /// The cached rows of an out-of-core table.
    pub fn out_of_core(&self) -> Option<&Arc<CachedRows>> {
        match &self.storage {
            TableRows::InMemory(_) => None,
            TableRows::OutOfCore(rows) => Some(rows),
        }
    }

    /// Whether the rows are out of core.
    pub fn is_out_of_core(&self) -> bool {
        self.out_of_core().is_some()
    }

    /// The data file, as given.
    pub fn file_name(&self) -> &str {
        match &self.storage {
            TableRows::InMemory(m) => &m.table.file_name,
            TableRows::OutOfCore(c) => &c.file_name,
        }
    }

    /// The feature columns, in the model's order.
    pub fn feature_names(&self) -> &[String] {
        match &self.storage {
            TableRows::InMemory(m) => &m.table.feature_names,
            TableRows::OutOfCore(c) => &c.cache.header().feature_names,
        }
    }

    /// The target column.
    pub fn target_name(&self) -> &str {
        match &self.storage {
            TableRows::InMemory(m) => &m.table.target_name,
            TableRows::OutOfCore(c) => &c.cache.header().target,
        }
    }

    /// Rows skipped for an invalid cell (`--drop-invalid-rows`).
    pub fn dropped_rows(&self) -> usize {
        match &self.storage {
            TableRows::InMemory(m) => m.table.dropped_rows,
            TableRows::OutOfCore(c) => c.cache.header().dropped_rows,
        }
    }

    /// All valid rows.
    pub fn rows(&self) -> usize {
        match &self.storage {
            TableRows::InMemory(m) => m.table.rows(),
            TableRows::OutOfCore(c) => c.rows(),
        }
    }

    /// The training rows.
    pub fn train_rows(&self) -> usize {
        match &self.storage {
            TableRows::InMemory(m) => m.train.len(),
            TableRows::OutOfCore(c) => c.train_rows(),
        }
    }

    /// The validation rows.
    pub fn val_rows(&self) -> usize {
        match &self.storage {
            TableRows::InMemory(m) => m.val.len(),
            TableRows::OutOfCore(c) => c.val_rows(),
        }
    }

    /// Calls `visit(features, target)` for every row of `split`, in file order, in f64.
    pub fn for_each_row(&self, split: Split, mut visit: impl FnMut(&[f64], f64)) -> Result<()> {
        match &self.storage {
            TableRows::InMemory(m) => {
                for &r in m.rows(split) {
                    visit(m.table.row(r as usize), m.table.y[r as usize]);
                }
                Ok(())
            }
            TableRows::OutOfCore(c) => {
                let d = c.cache.d();
                let mut row = vec![0.0; d + 1];
                c.for_each_rows(split, |rows| {
                    for values in rows.chunks_exact(d + 1) {
                        for (r, v) in row.iter_mut().zip(values) {
                            *r = f64::from(*v);
                        }
                        visit(&row[..d], row[d]);
                    }
                })
            }
        }
    }

    /// The scaling as the model's inputs get it (identity without standardization).
    pub fn row_scaling(&self) -> RowScaling {
        let scaling = self
            .scaling
            .clone()
            .unwrap_or_else(|| Scaling::identity(self.d()));
        RowScaling {
            mean: scaling.mean,
            std: scaling.std,
            target: self.target_scaling.unwrap_or((0.0, 1.0)),
        }
    }

    /// The minibatches of an out-of-core table (`None` in memory): `batch` rows a step, in the
    /// order `seed` gives ([`StreamedBatches`]).
    pub fn streamed_batches(&self, batch: usize, seed: u64) -> Option<StreamedBatches> {
        let rows = self.out_of_core()?;
        Some(StreamedBatches::new(
            Arc::clone(rows),
            self.row_scaling(),
            batch,
            seed,
        ))
    }

    /// Number of features.
    pub fn d(&self) -> usize {
        match &self.storage {
            TableRows::InMemory(m) => m.table.d(),
            TableRows::OutOfCore(c) => c.cache.d(),
        }
    }

    /// The training rows of an in-memory table as the model sees them: scaled features
    /// (row-major) and targets, f32 (`None` out of core: see [`PreparedTable::streamed_batches`]).
    pub fn training_rows(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let m = self.in_memory()?;
        let d = self.d();
        let mut x = vec![0.0f32; m.train.len() * d];
        for (out, &row) in x.chunks_exact_mut(d.max(1)).zip(&m.train) {
            self.scaled_row(m.table.row(row as usize), out);
        }
        let (mean, std) = self.target_scaling.unwrap_or((0.0, 1.0));
        let y = m
            .train
            .iter()
            .map(|&r| ((m.table.y[r as usize] - mean) / std) as f32)
            .collect();
        Some((x, y))
    }

    /// [`Self::training_rows`] laid out for gathering minibatches on the host, built straight
    /// from the table (no copy in between: the table and this layout are all the memory it
    /// takes, within [`Survey::memory_needed`]'s allowance).
    pub fn training_gather_rows(&self) -> Option<GatherRows> {
        let m = self.in_memory()?;
        let d = self.d();
        let (mean, std) = self.target_scaling.unwrap_or((0.0, 1.0));
        let mut rows = GatherRows::with_capacity(m.train.len(), d);
        for &r in &m.train {
            let out = rows.push();
            self.scaled_row(m.table.row(r as usize), &mut out[..d]);
            out[d] = ((m.table.y[r as usize] - mean) / std) as f32;
        }
        Some(rows)
    }

    fn scaled_row(&self, row: &[f64], out: &mut [f32]) {
        match &self.scaling {
            Some(scaling) => scaling.scale_row(row, out),
            None => {
                for (o, v) in out.iter_mut().zip(row) {
                    *o = *v as f32;
                }
            }
        }
    }

    /// The factor from the training loss (on the scaled target) to the loss in the target's
    /// units: std² for MSE and Huber's loss, std for MAE.
    pub fn loss_scale(&self, loss: crate::loss::LossKind) -> f64 {
        self.target_scaling
            .map_or(1.0, |(_, std)| std.powi(loss.scale_power()))
    }

    /// The training loss `trained` in the target's units, multiplied in f64: the factor alone
    /// can overflow (or underflow) f32 where the loss it gives does not (a target around 1e20:
    /// std² = 1e40, a loss of 6e37). Beyond f32's range it is ±inf or 0, as any f32 would be.
    pub fn shown_loss(&self, trained: f32, loss: crate::loss::LossKind) -> f32 {
        (f64::from(trained) * self.loss_scale(loss)) as f32
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
    pub fn training_space_mse(&self, spec: &ModelSpec, params: &[NamedTensor]) -> Result<f64> {
        let (mean, std) = self.target_scaling.unwrap_or((0.0, 1.0));
        let d = self.d();
        let mut scaled = vec![0.0f32; d];
        let mut x = vec![0.0f64; d];
        let mut sum = 0.0;
        self.for_each_row(Split::Train, |row, y| {
            self.scaled_row(row, &mut scaled);
            for (x, v) in x.iter_mut().zip(&scaled) {
                *x = f64::from(*v);
            }
            let z = spec.forward_host(params, &x) * std + mean;
            sum += (z - y).powi(2);
        })?;
        Ok(sum / self.train_rows().max(1) as f64)
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
    pub fn training_target_mean(&self) -> Result<f64> {
        let mut sum = 0.0;
        self.for_each_row(Split::Train, |_, y| sum += y)?;
        Ok(sum / self.train_rows().max(1) as f64)
    }

    /// What a checkpoint records of this table.
    pub fn record(&self) -> DataRecord {
        let hash = match &self.storage {
            TableRows::InMemory(m) => hash_hex(m.table.content_hash),
            TableRows::OutOfCore(c) => c.cache.header().content_hash.clone(),
        };
        DataRecord {
            file: self.file_name().to_owned(),
            rows: self.rows(),
            dropped_rows: self.dropped_rows(),
            hash,
            features: self.feature_names().to_vec(),
            target: self.target_name().to_owned(),
            train_rows: self.train_rows(),
            val_rows: self.val_rows(),
            training_space: None,
            scaling: self.scaling.as_ref().map(|s| ScalingRecord {
                mean: s.mean.clone(),
                std: s.std.clone(),
                target_mean: self.target_scaling.map(|t| t.0),
                target_std: self.target_scaling.map(|t| t.1),
            }),
        }
    }

    /// The mean `loss` (Huber's `delta` in the target's units) of the model on the rows of
    /// `split`, in the data's units: the validation loss a run logs.
    pub fn mean_loss(
        &self,
        spec: &ModelSpec,
        params: &[NamedTensor],
        split: Split,
        loss: crate::loss::LossKind,
        delta: f32,
    ) -> Result<f64> {
        let mut sum = 0.0;
        let mut n = 0usize;
        self.for_each_row(split, |row, y| {
            sum += loss.value(spec.forward_host(params, row) - y, f64::from(delta));
            n += 1;
        })?;
        Ok(sum / n as f64)
    }

    /// The model's fit on the rows of `split`, predicted on the host in f64 from parameters in
    /// the data's units.
    pub fn quality(
        &self,
        spec: &ModelSpec,
        params: &[NamedTensor],
        split: Split,
    ) -> Result<FitQuality> {
        self.quality_of(split, |row| spec.forward_host(params, row))
    }

    /// The fit of `predict` on the rows of `split`.
    pub fn quality_of(&self, split: Split, predict: impl Fn(&[f64]) -> f64) -> Result<FitQuality> {
        match &self.storage {
            TableRows::InMemory(m) => {
                let (t, rows) = (&m.table, m.rows(split));
                Ok(FitQuality::of(
                    rows.iter().map(|&r| predict(t.row(r as usize))),
                    rows.iter().map(|&r| t.y[r as usize]),
                ))
            }
            TableRows::OutOfCore(_) => {
                let mut sums = FitQualitySums::default();
                self.for_each_row(split, |row, y| sums.push(predict(row), y))?;
                Ok(sums.finish())
            }
        }
    }
}

/// A standard deviation to divide by: a constant target has nothing to scale, and keeps its
/// units.
fn spread_or_one(std: f64) -> f64 {
    if std > 0.0 && std.is_finite() {
        std
    } else {
        1.0
    }
}

fn widen(t: &HostTensor) -> Vec<f64> {
    t.data.iter().map(|v| f64::from(*v)).collect()
}

fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|v| *v as f32).collect()
}
