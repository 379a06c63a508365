//! Where a step's batch comes from: the synthetic line, the sine task, or a CSV table held on
//! the training device. Every source gives the batch of step `k` as a pure function of
//! `(seed, k)`, so a resumed run sees exactly the batches the uninterrupted run saw.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::sine::SineData;
use super::table::epoch_permutation;
use super::{LineData, PreparedTable};
use crate::backend::Backend;
use crate::config::{Task, TrainingConfig};

/// The data a run trains on.
#[derive(Debug)]
pub enum DataSource {
    /// y = w·x + b + noise, a fresh batch per step.
    Line(LineData),
    /// y = sin x, a fresh batch per step.
    Sine(SineData),
    /// Minibatches of a CSV table's training rows.
    Table(Box<TableBatches>),
}

impl DataSource {
    /// The synthetic source a config names (`--task`); a table comes from
    /// [`DataSource::table`].
    pub fn synthetic(config: &TrainingConfig) -> DataSource {
        match config.task {
            Task::Line => DataSource::Line(LineData::new(config)),
            Task::Sine => DataSource::Sine(SineData::new(config)),
        }
    }

    /// A table's training rows, uploaded to `device` once.
    pub fn table(table: &PreparedTable, config: &TrainingConfig, device: &Device) -> DataSource {
        DataSource::Table(Box::new(TableBatches::new(table, config, device)))
    }

    /// The batch of step `step` (1-based): `x` `[batch, d_in]`, `y` `[batch, 1]`, on `device`
    /// (which may be an autodiff device of `backend`).
    pub fn batch(
        &mut self,
        step: u64,
        backend: &Backend,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        match self {
            DataSource::Line(line) => line.batch(step, backend, device),
            DataSource::Sine(sine) => sine.batch(step, device),
            DataSource::Table(table) => table.batch(step),
        }
    }
}

/// A table's (scaled) training rows on the device, and the epoch's shuffle.
///
/// Step `k` is minibatch `(k − 1) mod spe` of epoch `(k − 1) / spe`, with `spe` = ⌈rows /
/// batch⌉ steps per epoch (the last minibatch of an epoch may be smaller). An epoch's order
/// is [`epoch_permutation`]`(rows, seed, epoch)`: uploaded once per epoch as indices; the rows
/// are gathered on the device (`select`), so the dataset itself is copied to the device once.
#[derive(Debug)]
pub struct TableBatches {
    x: Tensor<2>,
    y: Tensor<2>,
    rows: usize,
    batch: usize,
    seed: u64,
    epoch: Option<(u64, Tensor<1, Int>)>,
}

impl TableBatches {
    fn new(table: &PreparedTable, config: &TrainingConfig, device: &Device) -> TableBatches {
        let (x, y) = table.training_rows();
        let rows = y.len();
        let d = table.d();
        TableBatches {
            x: Tensor::from_data(TensorData::new(x, [rows, d]), device),
            y: Tensor::from_data(TensorData::new(y, [rows, 1]), device),
            rows,
            batch: config.batch.min(rows),
            seed: config.seed,
            epoch: None,
        }
    }

    fn batch(&mut self, step: u64) -> (Tensor<2>, Tensor<2>) {
        if self.batch == self.rows {
            return (self.x.clone(), self.y.clone());
        }
        let per_epoch = self.rows.div_ceil(self.batch) as u64;
        let epoch = (step - 1) / per_epoch;
        let index = ((step - 1) % per_epoch) as usize;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let order: Vec<i64> = epoch_permutation(self.rows, self.seed, epoch)
                .into_iter()
                .map(i64::from)
                .collect();
            let order = Tensor::from_data(TensorData::new(order, [self.rows]), &self.x.device());
            self.epoch = Some((epoch, order));
        }
        let (_, order) = self.epoch.as_ref().expect("set above");
        let start = index * self.batch;
        let end = (start + self.batch).min(self.rows);
        let rows = order.clone().slice(start..end);
        (
            self.x.clone().select(0, rows.clone()),
            self.y.clone().select(0, rows),
        )
    }
}

/// Steps in one epoch of `rows` training rows at `batch` rows per step.
pub fn steps_per_epoch(rows: usize, batch: usize) -> u64 {
    rows.div_ceil(batch.min(rows).max(1)) as u64
}
