//! The fused engine for every model and data source but the synthetic line's one-input linear
//! model (which has its own CPU loop and GPU kernels, [`super::FusedTrainer`]): an MLP on any
//! task or table, the linear model over a CSV table's features, anything on `--task sine`. On
//! the CPU backends; one pass per step over the batch with [`crate::fused_step::dense`].
//!
//! The batches are the autodiff engine's: the line's and the sine's Philox streams drawn on the
//! host, a table's training rows (standardized as for it) in the order
//! `epoch_permutation(seed, epoch)` gives. The model starts from the same initial values. The
//! two engines then agree to float rounding, not bit for bit (their sums run in different
//! orders, and the fused tanh is a polynomial within 2 ulp of the exact one). A fused run is
//! bit-identical on every machine with the same binary, whatever its thread count or vector
//! instructions. A non-finite loss stops the run before its update.

use std::sync::Arc;

use crate::backend::{Backend, BackendKind};
use crate::checkpoint::{AdamSnapshot, Checkpoint, Metadata, RunRecord};
use crate::config::{Task, TrainingConfig};
use crate::data::PreparedTable;
use crate::data::sine::SineData;
use crate::data::table::epoch_permutation;
use crate::engine::{Chunk, Engine, EngineKind};
use crate::error::{Error, Result};
use crate::fused_step::dense::{DenseStep, threads_for};
use crate::model::ModelSpec;
use crate::optim::Adam;
use crate::rng::philox::LineStream;

/// Where the batches come from.
enum Batches {
    Line(LineStream),
    Sine(SineData),
    Table {
        /// Training rows, scaled, row-major, and their targets.
        x: Vec<f32>,
        y: Vec<f32>,
        seed: u64,
        /// The epoch whose order is cached, and that order.
        epoch: Option<(u64, Vec<u32>)>,
    },
}

impl Batches {
    /// The batch of step `step` (1-based) into `x`, `y`.
    fn fill(&mut self, step: u64, batch: usize, d: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) {
        match self {
            Batches::Line(stream) => (*x, *y) = stream.batch(step, batch),
            Batches::Sine(sine) => (*x, *y) = sine.host_batch(step),
            Batches::Table {
                x: rows_x,
                y: rows_y,
                seed,
                epoch,
            } => {
                let rows = rows_y.len();
                let per_epoch = rows.div_ceil(batch) as u64;
                let this_epoch = (step - 1) / per_epoch;
                if epoch.as_ref().is_none_or(|(e, _)| *e != this_epoch) {
                    *epoch = Some((this_epoch, epoch_permutation(rows, *seed, this_epoch)));
                }
                let (_, order) = epoch.as_ref().expect("set above");
                let start = ((step - 1) % per_epoch) as usize * batch;
                let picked = &order[start..(start + batch).min(rows)];
                x.clear();
                y.clear();
                for &row in picked {
                    let row = row as usize;
                    x.extend_from_slice(&rows_x[row * d..(row + 1) * d]);
                    y.push(rows_y[row]);
                }
            }
        }
    }
}

/// The fused engine's state for a dense network: the model and Adam's moments (in the scaled
/// space on a standardized table), and the data stream.
pub struct FusedNetworkTrainer {
    config: TrainingConfig,
    backend: Backend,
    table: Option<Arc<PreparedTable>>,
    spec: ModelSpec,
    state: DenseStep,
    batches: Batches,
    adam: Adam,
    batch: usize,
    threads: usize,
    /// The current batch.
    x: Vec<f32>,
    y: Vec<f32>,
    step: u64,
    updates: u64,
    last_loss: Option<f32>,
}

impl FusedNetworkTrainer {
    /// A fresh model, or one continued from `resume`; a `--data` table is read here when the
    /// caller has not.
    pub fn start(
        config: TrainingConfig,
        backend: Backend,
        table: Option<Arc<PreparedTable>>,
        resume: Option<&Checkpoint>,
    ) -> Result<Self> {
        super::check_supports(&config)?;
        if backend.kind == BackendKind::Wgpu {
            return Err(Error::EngineUnsupported {
                engine: EngineKind::Fused.name(),
                message: format!(
                    "runs {} on the CPU backends (on wgpu only the synthetic line's linear model); use --backend flex (or ndarray), or --engine autodiff",
                    super::what_runs(&config)
                ),
            });
        }
        let table = match (&config.data, table) {
            (Some(_), Some(table)) => Some(table),
            (Some(data), None) => Some(Arc::new(PreparedTable::load(data, config.seed)?)),
            (None, _) => None,
        };
        let spec = config.model_spec(table.as_ref().map_or(1, |t| t.d()));
        spec.validate()
            .map_err(|message| Error::InvalidModel { message })?;
        let mut params = match resume {
            Some(checkpoint) => {
                checkpoint.check_model(&spec)?;
                checkpoint.params.clone()
            }
            None => {
                let mut params = spec.init(config.seed);
                // As the autodiff engine: raw targets start the output bias at their mean.
                if let Some(table) = table.as_ref().filter(|t| t.target_scaling.is_none()) {
                    let bias = params.last_mut().expect("a model has parameters");
                    bias.data = vec![table.training_target_mean() as f32];
                }
                params
            }
        };
        if let (Some(table), Some(checkpoint)) = (&table, resume)
            && table.is_scaled()
        {
            let record = checkpoint.meta.as_ref().and_then(|m| m.data.as_ref());
            params = table.resume_params(&spec.param_names(), &params, record);
        }
        let adam_state = resume.and_then(|c| c.adam.as_ref());
        let moments: Option<(Vec<_>, Vec<_>)> =
            adam_state.map(|adam| adam.moments.iter().cloned().unzip());
        let state = DenseStep::new(
            &spec,
            &params,
            moments.as_ref().map(|(m, v)| (&m[..], &v[..])),
        );
        let (batches, batch) = match &table {
            Some(table) => {
                let (x, y) = table.training_rows();
                let batch = config.batch.min(y.len());
                let batches = Batches::Table {
                    x,
                    y,
                    seed: config.seed,
                    epoch: None,
                };
                (batches, batch)
            }
            None => match config.task {
                Task::Line => (Batches::Line(config.line_stream()), config.batch),
                Task::Sine => (Batches::Sine(SineData::new(&config)), config.batch),
            },
        };
        Ok(Self {
            adam: config.adam(),
            threads: threads_for(batch, state.layout()),
            step: resume.map_or(0, Checkpoint::step),
            updates: adam_state.map_or(0, |adam| adam.updates),
            last_loss: resume
                .and_then(|c| c.meta.as_ref())
                .and_then(|m| m.final_loss),
            config,
            backend,
            table,
            spec,
            state,
            batches,
            batch,
            x: Vec::new(),
            y: Vec::new(),
        })
    }

    /// One step: the batch's loss (on the scaled target), and the update when it is finite.
    fn train_step(&mut self, step: u64) -> f32 {
        let d = self.spec.d_in;
        self.batches
            .fill(step, self.batch, d, &mut self.x, &mut self.y);
        let t = self.updates + 1;
        let loss = self
            .state
            .step(&self.x, &self.y, &self.adam, t, self.threads);
        if loss.is_finite() {
            self.updates = t;
        }
        loss
    }

    /// The factor from the training loss to the loss shown (the target's units).
    fn loss_scale(&self) -> f32 {
        self.table.as_ref().map_or(1.0, |t| t.loss_scale())
    }
}

impl Engine for FusedNetworkTrainer {
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

    /// About 50 million multiply-adds a chunk (~10–30 ms here) between looks at Ctrl-C.
    fn max_chunk_steps(&self) -> u64 {
        let work = (self.batch * self.state.layout().len()).max(1) as u64;
        (50_000_000 / work).max(1)
    }

    fn run_chunk(&mut self, steps: u64, read_loss: bool, _sync: bool) -> Result<Chunk> {
        let mut loss = f32::NAN;
        for _ in 0..steps {
            let step = self.step + 1;
            loss = self.train_step(step);
            if !loss.is_finite() {
                let shown = loss * self.loss_scale();
                return Ok(Chunk {
                    last_loss: Some(shown),
                    diverged: Some((step, shown)),
                });
            }
            self.step = step;
        }
        let shown = loss * self.loss_scale();
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
        let layout = self.state.layout();
        let mut params = layout.unpack(&self.state.params);
        let mut record = self.table.as_ref().map(|t| t.record());
        if let (Some(table), Some(record)) = (&self.table, &mut record) {
            record.training_space = table.training_space(&self.spec.param_names(), &params);
            table.to_data_units(&mut params);
        }
        let m = layout.unpack(&self.state.m);
        let v = layout.unpack(&self.state.v);
        Ok(Checkpoint {
            spec: self.spec.clone(),
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
                data: record,
            })),
        })
    }

    fn table(&self) -> Option<&Arc<PreparedTable>> {
        self.table.as_ref()
    }
}
