//! Where a step's batch comes from: the synthetic line, the sine task, a CSV table held on the
//! training device, or an out-of-core table's batches read from its cache and uploaded step by
//! step. Every source gives the batch of step `k` as a pure function of `(seed, k)`, so a
//! resumed run sees exactly the batches the uninterrupted run saw.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::sine::SineData;
use super::streamed_batches::StreamedBatches;
use super::table::EpochOrders;
use super::{LineData, PreparedTable};
use crate::backend::Backend;
use crate::config::{Task, TrainingConfig};
use crate::error::Result;

/// The data a run trains on.
#[derive(Debug)]
pub enum DataSource {
    /// y = w·x + b + noise, a fresh batch per step.
    Line(LineData),
    /// y = sin x, a fresh batch per step.
    Sine(SineData),
    /// Minibatches of a CSV table's training rows.
    Table(Box<TableBatches>),
    /// Minibatches of an out-of-core table, read from its cache and uploaded every step.
    Streamed(Box<StreamedBatches>),
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

    /// A table's training rows: in memory, uploaded to `device` once; out of core, streamed.
    pub fn table(table: &PreparedTable, config: &TrainingConfig, device: &Device) -> DataSource {
        match table.streamed_batches(config.batch, config.seed) {
            Some(streamed) => DataSource::Streamed(Box::new(streamed)),
            None => DataSource::Table(Box::new(TableBatches::new(table, config, device))),
        }
    }

    /// The batch of step `step` (1-based): `x` `[batch, d_in]`, `y` `[batch, 1]`, on `device`
    /// (which may be an autodiff device of `backend`).
    pub fn batch(
        &mut self,
        step: u64,
        backend: &Backend,
        device: &Device,
    ) -> Result<(Tensor<2>, Tensor<2>)> {
        Ok(match self {
            DataSource::Line(line) => line.batch(step, backend, device),
            DataSource::Sine(sine) => sine.batch(step, device),
            DataSource::Table(table) => table.batch(step),
            DataSource::Streamed(streamed) => {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                streamed.fill(step, &mut x, &mut y)?;
                let rows = y.len();
                let d = x.len() / rows.max(1);
                (
                    Tensor::from_data(TensorData::new(x, [rows, d]), device),
                    Tensor::from_data(TensorData::new(y, [rows, 1]), device),
                )
            }
        })
    }
}

/// A table's (scaled) training rows on the device, and the epoch's shuffle.
///
/// Step `k` is minibatch `(k − 1) mod spe` of epoch `(k − 1) / spe`, with `spe` = ⌈rows /
/// batch⌉ steps per epoch (the last minibatch of an epoch may be smaller). An epoch's order
/// is [`epoch_permutation`](super::table::epoch_permutation)`(rows, seed, epoch)` ([`EpochOrders`]): uploaded once per epoch as indices; the rows
/// are gathered on the device (`select`), so the dataset itself is copied to the device once.
#[derive(Debug)]
pub struct TableBatches {
    x: Tensor<2>,
    y: Tensor<2>,
    rows: usize,
    batch: usize,
    orders: EpochOrders,
    epoch: Option<(u64, Tensor<1, Int>)>,
}

impl TableBatches {
    fn new(table: &PreparedTable, config: &TrainingConfig, device: &Device) -> TableBatches {
        let (x, y) = table.training_rows().expect("an in-memory table");
        let rows = y.len();
        let d = table.d();
        TableBatches {
            x: Tensor::from_data(TensorData::new(x, [rows, d]), device),
            y: Tensor::from_data(TensorData::new(y, [rows, 1]), device),
            rows,
            batch: config.batch.min(rows),
            orders: EpochOrders::new(rows, config.seed),
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
            let order: Vec<i64> = self
                .orders
                .get(epoch)
                .iter()
                .map(|&r| i64::from(r))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendKind;
    use crate::config::TableConfig;
    use crate::host::HostTensor;

    #[test]
    fn an_epoch_of_minibatches_covers_every_training_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("x,y\n");
        for i in 0..50 {
            text.push_str(&format!("{i},{}\n", i * 2));
        }
        std::fs::write(&path, text).unwrap();
        let mut table_config = TableConfig::new(path.display().to_string(), "y");
        table_config.standardize = false;
        table_config.val_frac = 0.2;
        let config = TrainingConfig {
            batch: 16,
            data: Some(table_config.clone()),
            ..Default::default()
        };
        let table = PreparedTable::load(&table_config, config.seed).unwrap();
        let backend = Backend::open(BackendKind::compiled()[0]).unwrap();
        let mut source = DataSource::table(&table, &config, &backend.device);
        // 40 training rows at 16 per step: steps of 16, 16 and 8 rows per epoch.
        let mut epochs: Vec<Vec<f32>> = vec![Vec::new(), Vec::new()];
        for step in 1..=6 {
            let (x, y) = source.batch(step, &backend, &backend.device).unwrap();
            let x = HostTensor::from_tensor(x).unwrap().data;
            let y = HostTensor::from_tensor(y).unwrap().data;
            assert_eq!(x.len(), [16, 16, 8][(step as usize - 1) % 3]);
            assert!(
                x.iter().zip(&y).all(|(x, y)| *y == 2.0 * x),
                "rows stay whole"
            );
            epochs[(step as usize - 1) / 3].extend(x);
        }
        let train = &table.in_memory().unwrap().train;
        let mut expected: Vec<f32> = train.iter().map(|&r| r as f32).collect();
        expected.sort_by(f32::total_cmp);
        for epoch in &mut epochs {
            assert_ne!(*epoch, expected, "shuffled");
            epoch.sort_by(f32::total_cmp);
            assert_eq!(*epoch, expected);
        }
    }
}
