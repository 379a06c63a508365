//! The fused engine on a CSV table (`--data … --engine fused`), on the CPU backends: the linear
//! model z = x·w + b over d features, trained on the same minibatches as the autodiff engine
//! (the training rows, standardized as for it, in the order `epoch_permutation(seed, epoch)`
//! gives) with one pass per step over the batch's rows — gather, residual, both gradients,
//! Adam — and no batch-sized tensor.
//!
//! Sums are taken in f64, row by row in the batch's order, so a run is bit-identical on every
//! machine with the same binary; the autodiff engine sums in f32 in burn's order, so the two
//! agree to float rounding, not bit for bit. A non-finite loss stops the run before its update.
//! On wgpu it is refused for now (the table kernel is future work).

use std::sync::Arc;

use crate::backend::{Backend, BackendKind};
use crate::checkpoint::{AdamSnapshot, Checkpoint, Metadata, RunRecord};
use crate::config::TrainingConfig;
use crate::data::PreparedTable;
use crate::data::table::epoch_permutation;
use crate::engine::{Chunk, Engine, EngineKind};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::model::ModelSpec;
use crate::optim::Adam;

/// How many rows ahead the step loop prefetches.
const PREFETCH: usize = 8;

/// A hint that `data[0]` will be read soon (no effect off x86-64).
#[inline(always)]
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = data.first() {
        // SAFETY: a prefetch is only a hint; the pointer is valid.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (first as *const T).cast(),
            )
        };
    }
}

/// The fused engine's state on a table: the model and Adam's moments, in the scaled space.
pub struct FusedTableTrainer {
    config: TrainingConfig,
    backend: Backend,
    table: Arc<PreparedTable>,
    /// Training rows, scaled, row-major (rows × d), and their targets.
    x: Vec<f32>,
    y: Vec<f32>,
    /// `w` (d values) then `b`.
    params: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    adam: Adam,
    batch: usize,
    /// The epoch whose order is cached, and that order.
    epoch: Option<(u64, Vec<u32>)>,
    step: u64,
    updates: u64,
    last_loss: Option<f32>,
}

impl FusedTableTrainer {
    /// A fresh model, or one continued from `resume`, on the config's table (read here when
    /// the caller has not).
    pub fn start(
        config: TrainingConfig,
        backend: Backend,
        table: Option<Arc<PreparedTable>>,
        resume: Option<&Checkpoint>,
    ) -> Result<Self> {
        config.validate()?;
        if backend.kind == BackendKind::Wgpu {
            return Err(Error::EngineUnsupported {
                engine: EngineKind::Fused.name(),
                message: "on a --data file runs on the CPU backends for now; use --backend flex (or ndarray), or --engine autodiff".into(),
            });
        }
        let Some(data) = &config.data else {
            unreachable!("the caller opens this engine for a --data run")
        };
        let table = match table {
            Some(table) => table,
            None => Arc::new(PreparedTable::load(data, config.seed)?),
        };
        let spec = ModelSpec::linear(table.d());
        let mut params = match resume {
            Some(checkpoint) => {
                checkpoint.check_model(&spec)?;
                checkpoint.params.clone()
            }
            None => {
                let mut params = spec.init(config.seed);
                // As the autodiff engine: raw targets start the bias at their mean.
                if table.target_scaling.is_none() {
                    params[1].data = vec![table.training_target_mean() as f32];
                }
                params
            }
        };
        if let Some(checkpoint) = resume
            && table.is_scaled()
        {
            let record = checkpoint.meta.as_ref().and_then(|m| m.data.as_ref());
            params = table.resume_params(&spec.param_names(), &params, record);
        }
        let flat: Vec<f32> = params.iter().flat_map(|p| p.data.clone()).collect();
        let (m, v, updates) = match resume.and_then(|c| c.adam.as_ref()) {
            Some(adam) => (
                adam.moments
                    .iter()
                    .flat_map(|(m, _)| m.data.clone())
                    .collect(),
                adam.moments
                    .iter()
                    .flat_map(|(_, v)| v.data.clone())
                    .collect(),
                adam.updates,
            ),
            None => (vec![0.0; flat.len()], vec![0.0; flat.len()], 0),
        };
        let (x, y) = table.training_rows();
        Ok(Self {
            adam: config.adam(),
            batch: config.batch.min(y.len()),
            step: resume.map_or(0, Checkpoint::step),
            last_loss: resume
                .and_then(|c| c.meta.as_ref())
                .and_then(|m| m.final_loss),
            config,
            backend,
            table,
            x,
            y,
            params: flat,
            m,
            v,
            epoch: None,
            updates,
        })
    }

    /// One step: the batch's loss (on the scaled target), and the update when it is finite.
    fn train_step(&mut self, step: u64) -> f32 {
        let rows = self.y.len();
        let d = self.params.len() - 1;
        let per_epoch = rows.div_ceil(self.batch) as u64;
        let epoch = (step - 1) / per_epoch;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.epoch = Some((epoch, epoch_permutation(rows, self.config.seed, epoch)));
        }
        let (_, order) = self.epoch.as_ref().expect("set above");
        let start = ((step - 1) % per_epoch) as usize * self.batch;
        let batch = &order[start..(start + self.batch).min(rows)];
        let (w, b) = self.params.split_at(d);
        let b = b[0];
        let mut grads = vec![0.0f64; d + 1];
        let mut loss = 0.0f64;
        for (i, &row) in batch.iter().enumerate() {
            // The rows are random: ask for the one PREFETCH rows ahead now, so its cache miss
            // overlaps this row's work.
            if let Some(&ahead) = batch.get(i + PREFETCH) {
                prefetch(&self.x[ahead as usize * d..]);
                prefetch(&self.y[ahead as usize..]);
            }
            let xs = &self.x[row as usize * d..(row as usize + 1) * d];
            let z = xs.iter().zip(w).map(|(x, w)| x * w).sum::<f32>() + b;
            let e = f64::from(z - self.y[row as usize]);
            loss += e * e;
            for (g, x) in grads.iter_mut().zip(xs) {
                *g += e * f64::from(*x);
            }
            grads[d] += e;
        }
        let n = batch.len() as f64;
        let loss = (loss / n) as f32;
        if !loss.is_finite() {
            return loss;
        }
        self.updates += 1;
        for (i, g) in grads.iter().enumerate() {
            let g = (2.0 * g / n) as f32;
            let (p, m, v) =
                self.adam
                    .update_scalar(self.params[i], g, self.m[i], self.v[i], self.updates);
            (self.params[i], self.m[i], self.v[i]) = (p, m, v);
        }
        loss
    }

    /// The parameters as host tensors shaped as the model's (`w` [d, 1], `b` [1]), scaled.
    fn tensors(&self, values: &[f32]) -> Vec<HostTensor> {
        let mut shapes = ModelSpec::linear(self.table.d()).param_shapes().into_iter();
        let d = values.len() - 1;
        vec![
            HostTensor::new(shapes.next().expect("w"), values[..d].to_vec()),
            HostTensor::new(shapes.next().expect("b"), values[d..].to_vec()),
        ]
    }
}

impl Engine for FusedTableTrainer {
    fn kind(&self) -> EngineKind {
        EngineKind::Fused
    }

    fn step(&self) -> u64 {
        self.step
    }

    fn config(&self) -> &TrainingConfig {
        &self.config
    }

    fn backend(&self) -> &Backend {
        &self.backend
    }

    /// About 20 million multiply-adds a chunk (~10-20 ms here) between looks at Ctrl-C.
    fn max_chunk_steps(&self) -> u64 {
        let work = (self.batch * self.params.len()).max(1) as u64;
        (20_000_000 / work).max(1)
    }

    fn run_chunk(&mut self, steps: u64, read_loss: bool, _sync: bool) -> Result<Chunk> {
        let mut loss = f32::NAN;
        for _ in 0..steps {
            let step = self.step + 1;
            loss = self.train_step(step);
            if !loss.is_finite() {
                let shown = loss * self.table.loss_scale();
                return Ok(Chunk {
                    last_loss: Some(shown),
                    diverged: Some((step, shown)),
                });
            }
            self.step = step;
        }
        let shown = loss * self.table.loss_scale();
        if read_loss {
            self.last_loss = Some(shown);
        }
        Ok(Chunk {
            last_loss: read_loss.then_some(shown),
            diverged: None,
        })
    }

    fn as_dyn(&self) -> &dyn Engine {
        self
    }

    fn checkpoint(&self) -> Result<Checkpoint> {
        let spec = ModelSpec::linear(self.table.d());
        let mut params = self.tensors(&self.params);
        let mut record = self.table.record();
        record.training_space = self.table.training_space(&spec.param_names(), &params);
        self.table.to_data_units(&mut params);
        let m = self.tensors(&self.m);
        let v = self.tensors(&self.v);
        Ok(Checkpoint {
            spec,
            params,
            adam: Some(AdamSnapshot {
                updates: self.updates,
                moments: m.into_iter().zip(v).collect(),
            }),
            meta: Some(Metadata::from(RunRecord {
                config: &self.config,
                backend: self.backend.kind.name(),
                engine: EngineKind::Fused.name(),
                step: self.step,
                adam_updates: self.updates,
                final_loss: self.last_loss,
                data: Some(record),
            })),
        })
    }

    fn table(&self) -> Option<&Arc<PreparedTable>> {
        Some(&self.table)
    }
}
