//! The fused engine for every model and data source but the synthetic line's one-input linear
//! model (which has its own CPU loop and GPU kernels, [`super::FusedTrainer`]): an MLP on any
//! task or table, the linear model over a CSV table's features, anything on `--task sine`. On
//! the CPU backends one pass per step over the batch with [`crate::fused_step::dense`]; on wgpu
//! a chunk of steps per dispatch of one workgroup (`fused_step::kernel::dense`).
//!
//! The batches are the autodiff engine's: the line's and the sine's Philox streams drawn on the
//! host, a table's training rows (standardized as for it) in the order
//! `epoch_permutation(seed, epoch)` gives, or an out-of-core table's batches read from its cache
//! ([`crate::data::streamed_batches`]; on wgpu uploaded a chunk of steps at a time,
//! `super::streamed_gpu`). The model starts from the same initial values. The
//! two engines then agree to float rounding, not bit for bit (their sums run in different
//! orders, and the fused tanh is a polynomial within 2 ulp of the exact one). A fused run is
//! bit-identical on every machine with the same binary, whatever its thread count or vector
//! instructions; a GPU run is reproducible on its device, and agrees with the CPU's to rounding
//! (the GPU's `exp` and `sin` are its own). A non-finite loss stops the run before its update.

use std::sync::Arc;

use crate::backend::{Backend, BackendKind};
use crate::checkpoint::{AdamSnapshot, Checkpoint, Metadata, RunRecord};
use crate::config::{Task, TrainingConfig};
use crate::data::PreparedTable;
use crate::data::sine::SineData;
use crate::data::streamed_batches::StreamedBatches;
use crate::data::table::HostBatches;
use crate::engine::{Chunk, Engine, EngineKind};
use crate::error::{Error, Result};
use crate::fused_step::dense::{BatchRows, DenseStep, Loss, threads_for};
use crate::model::ModelSpec;
use crate::optim::Optimizer;
use crate::rng::philox::LineStream;

/// Where the batches come from.
enum Batches {
    Line(LineStream),
    Sine(SineData),
    /// A table's training rows, scaled, with their targets, gathered on the host.
    Table(HostBatches),
    /// The same for a linear model (any number of features), its rows read where they lie
    /// (`DenseStep::step_rows`).
    TableInPlace(HostBatches),
    /// A table's training rows (row-major) and targets, scaled, for the GPU kernel to upload
    /// (it gathers its batches on the device, in the order `epoch_permutation` gives).
    #[cfg_attr(not(feature = "wgpu-backend"), allow(dead_code))]
    DeviceTable {
        x: Vec<f32>,
        y: Vec<f32>,
        seed: u64,
    },
    /// An out-of-core table's batches, read from its cache.
    Streamed(Box<StreamedBatches>),
}

impl Batches {
    /// The batch of step `step` (1-based) into `x`, `y`.
    fn fill(&mut self, step: u64, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<()> {
        match self {
            Batches::Line(stream) => (*x, *y) = stream.batch(step, batch),
            Batches::Sine(sine) => (*x, *y) = sine.host_batch(step),
            Batches::Streamed(streamed) => streamed.fill(step, x, y)?,
            Batches::Table(host) | Batches::TableInPlace(host) => host.fill(step, x, y),
            Batches::DeviceTable { .. } => {
                unreachable!("a table's rows for the device are uploaded, not gathered here")
            }
        }
        Ok(())
    }
}

/// Where the steps run.
#[allow(clippy::large_enum_variant)] // one per run
enum Stepper {
    /// On the host: the state padded for the CPU step, the batches drawn here.
    Cpu {
        state: DenseStep,
        batches: Batches,
        threads: usize,
        /// The current batch.
        x: Vec<f32>,
        y: Vec<f32>,
    },
    /// On wgpu: the state (params, m, v, unpadded) between chunks, the kernel's buffers.
    #[cfg(feature = "wgpu-backend")]
    Gpu {
        state: Vec<f32>,
        kernel: Box<crate::fused_step::kernel::dense::DenseGpu>,
    },
    /// On wgpu, an out-of-core table: the state between chunks, each chunk's batches uploaded
    /// as a table of their own.
    #[cfg(feature = "wgpu-backend")]
    GpuStreamed {
        state: Vec<f32>,
        streamed: Box<super::streamed_gpu::StreamedGpu>,
    },
}

/// The fused engine's state for a dense network: the model and Adam's moments (in the scaled
/// space on a standardized table), and the data stream.
pub struct FusedNetworkTrainer {
    config: TrainingConfig,
    backend: Backend,
    table: Option<Arc<PreparedTable>>,
    spec: ModelSpec,
    stepper: Stepper,
    optimizer: Optimizer,
    batch: usize,
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
        let table = crate::engine::table_for(&config, table)?;
        let spec = config.model_spec(table.as_ref().map_or(1, |t| t.d()));
        spec.validate()
            .map_err(|message| Error::InvalidModel { message })?;
        let params = crate::engine::starting_params(&spec, config.seed, table.as_deref(), resume)?;
        let adam_state = resume.and_then(|c| c.adam.as_ref());
        let moments: Option<(Vec<_>, Vec<_>)> =
            adam_state.map(|adam| adam.moments.iter().cloned().unzip());
        let (batches, batch) = match &table {
            Some(table) => match table.streamed_batches(config.batch, config.seed) {
                Some(streamed) => {
                    let batch = streamed.batch();
                    (Batches::Streamed(Box::new(streamed)), batch)
                }
                None => {
                    let batch = config.batch.min(table.train_rows());
                    let batches = if backend.kind == BackendKind::Wgpu {
                        let (x, y) = table.training_rows().expect("an in-memory table");
                        Batches::DeviceTable {
                            x,
                            y,
                            seed: config.seed,
                        }
                    } else {
                        let rows = table.training_gather_rows().expect("an in-memory table");
                        Batches::Table(HostBatches::new(rows, config.seed, batch))
                    };
                    (batches, batch)
                }
            },
            None => match config.task {
                Task::Line => (Batches::Line(config.line_stream()), config.batch),
                Task::Sine => (Batches::Sine(SineData::new(&config)), config.batch),
            },
        };
        let loss = Loss {
            l2: config.l2,
            kind: config.loss,
            delta: table
                .as_ref()
                .map_or(config.huber_delta, |t| t.training_delta(config.huber_delta)),
        };
        if backend.kind == BackendKind::Wgpu && !config.optimizer().is_plain_adam() {
            return Err(Error::EngineUnsupported {
                engine: EngineKind::Fused.name(),
                message: "runs Adam at a constant learning rate on wgpu; use --backend flex (or ndarray) for another optimizer or a schedule, or --engine autodiff".into(),
            });
        }
        let stepper = if backend.kind == BackendKind::Wgpu {
            Self::gpu_stepper(
                &backend,
                &spec,
                batches,
                batch,
                &params,
                moments.as_ref(),
                loss,
            )?
        } else {
            let state = DenseStep::new(
                &spec,
                &params,
                moments.as_ref().map(|(m, v)| (&m[..], &v[..])),
                loss,
            );
            // A linear model on a table reads its rows where they lie.
            let batches = match batches {
                Batches::Table(host) if state.takes_whole_rows(host.rows().stride()) => {
                    Batches::TableInPlace(host)
                }
                other => other,
            };
            Stepper::Cpu {
                threads: threads_for(batch, state.layout()),
                state,
                batches,
                x: Vec::new(),
                y: Vec::new(),
            }
        };
        Ok(Self {
            optimizer: config.optimizer(),
            step: resume.map_or(0, Checkpoint::step),
            updates: adam_state.map_or(0, |adam| adam.updates),
            last_loss: resume
                .and_then(|c| c.meta.as_ref())
                .and_then(|m| m.final_loss),
            config,
            backend,
            table,
            spec,
            stepper,
            batch,
        })
    }

    /// The GPU kernel for `spec`, with the state flattened (params, m, v).
    #[cfg(feature = "wgpu-backend")]
    fn gpu_stepper(
        backend: &Backend,
        spec: &ModelSpec,
        batches: Batches,
        batch: usize,
        params: &[crate::host::HostTensor],
        moments: Option<&(Vec<crate::host::HostTensor>, Vec<crate::host::HostTensor>)>,
        loss: Loss,
    ) -> Result<Stepper> {
        use crate::fused_step::kernel::dense::{DenseGpu, GpuBatches};
        let flat = |tensors: &[crate::host::HostTensor]| -> Vec<f32> {
            tensors
                .iter()
                .flat_map(|t| t.data.iter().copied())
                .collect()
        };
        let mut state = flat(params);
        let n = state.len();
        match moments {
            Some((m, v)) => {
                state.extend(flat(m));
                state.extend(flat(v));
            }
            None => state.resize(3 * n, 0.0),
        }
        let batches = match batches {
            Batches::Streamed(streamed) => {
                let streamed =
                    super::streamed_gpu::StreamedGpu::new(backend, spec, *streamed, loss)?;
                return Ok(Stepper::GpuStreamed {
                    state,
                    streamed: Box::new(streamed),
                });
            }
            other => other,
        };
        let (source, table) = match &batches {
            Batches::Streamed(_) => unreachable!("taken above"),
            Batches::Line(stream) => (GpuBatches::Line(*stream), None),
            Batches::Sine(sine) => (GpuBatches::Sine(sine.stream()), None),
            Batches::Table(_) | Batches::TableInPlace(_) => {
                unreachable!("the CPU stepper's batches")
            }
            Batches::DeviceTable { x, y, seed } => {
                let (n, seed) = (y.len(), *seed);
                let order =
                    Box::new(move |epoch| crate::data::table::epoch_permutation(n, seed, epoch));
                (GpuBatches::Table { rows: n, order }, Some((&x[..], &y[..])))
            }
        };
        let cpu_adapter = backend.adapter.as_ref().is_some_and(|a| !a.is_real_gpu());
        let device_error = |message: String| Error::Device {
            backend: backend.kind.name(),
            message,
        };
        let room = backend
            .adapter
            .as_ref()
            .map_or(u64::MAX, |a| a.max_buffer_bytes);
        if let Some((x, y)) = table {
            super::gpu_limits::check_table_fits(backend, 4 * (x.len() + y.len()) as u64)?;
        }
        let kernel = DenseGpu::new(&backend.device, spec, source, table, loss, cpu_adapter)
            .map_err(device_error)?;
        // A batch too large for one dispatch, or for the device's buffers, is refused now, not
        // mid-run.
        kernel
            .max_chunk_steps(batch)
            .map_err(|message| Error::EngineUnsupported {
                engine: EngineKind::Fused.name(),
                message,
            })?;
        super::gpu_limits::check_batch_fits(backend, &kernel, batch, room)?;
        Ok(Stepper::Gpu {
            state,
            kernel: Box::new(kernel),
        })
    }

    #[cfg(not(feature = "wgpu-backend"))]
    fn gpu_stepper(
        _: &Backend,
        _: &ModelSpec,
        _: Batches,
        _: usize,
        _: &[crate::host::HostTensor],
        _: Option<&(Vec<crate::host::HostTensor>, Vec<crate::host::HostTensor>)>,
        _: Loss,
    ) -> Result<Stepper> {
        unreachable!("a wgpu backend exists only with the wgpu-backend feature")
    }

    /// The parameters and Adam's moments as the model's tensors (unpadded).
    fn tensors(&self) -> [Vec<crate::host::HostTensor>; 3] {
        match &self.stepper {
            Stepper::Cpu { state, .. } => {
                let layout = state.layout();
                [
                    layout.unpack(&state.params),
                    layout.unpack(&state.m),
                    layout.unpack(&state.v),
                ]
            }
            #[cfg(feature = "wgpu-backend")]
            Stepper::Gpu { state, .. } | Stepper::GpuStreamed { state, .. } => {
                let n = state.len() / 3;
                let split = |values: &[f32]| {
                    let mut at = 0;
                    self.spec
                        .param_shapes()
                        .into_iter()
                        .map(|shape| {
                            let len: usize = shape.iter().product();
                            at += len;
                            crate::host::HostTensor::new(shape, values[at - len..at].to_vec())
                        })
                        .collect()
                };
                [
                    split(&state[..n]),
                    split(&state[n..2 * n]),
                    split(&state[2 * n..]),
                ]
            }
        }
    }

    /// Up to `steps` steps; stops after a step whose loss is not finite (its update not
    /// applied). Returns the steps run and the last loss (on the scaled target).
    fn run_steps(&mut self, steps: u64) -> Result<(u64, f32)> {
        match &mut self.stepper {
            Stepper::Cpu {
                state,
                batches,
                threads,
                x,
                y,
            } => {
                let mut loss = f32::NAN;
                for done in 0..steps {
                    let step = self.step + done + 1;
                    let t = self.updates + 1;
                    loss = match batches {
                        Batches::TableInPlace(host) => {
                            let picked = host.picked(step);
                            let rows = BatchRows::Picked {
                                table: picked.table,
                                order: picked.order,
                                batch: picked.batch,
                                warm: picked.warm,
                            };
                            state.step_rows(rows, picked.stride, &self.optimizer, t)
                        }
                        _ => {
                            batches.fill(step, self.batch, x, y)?;
                            state.step(x, y, &self.optimizer, t, *threads)
                        }
                    };
                    if !loss.is_finite() {
                        return Ok((done, loss));
                    }
                    self.updates = t;
                }
                Ok((steps, loss))
            }
            #[cfg(feature = "wgpu-backend")]
            Stepper::Gpu { state, kernel } => {
                let mut done = 0;
                let mut loss = f32::NAN;
                while done < steps {
                    let chunk = kernel
                        .run(
                            state,
                            self.step + done,
                            self.updates,
                            steps - done,
                            self.batch,
                            &self.optimizer.adam,
                        )
                        .map_err(|message| Error::Device {
                            backend: self.backend.kind.name(),
                            message,
                        })?;
                    done += chunk.steps_run;
                    self.updates += chunk.steps_run;
                    if let Some((_, bad)) = chunk.diverged {
                        return Ok((done, bad));
                    }
                    loss = chunk.last_loss;
                }
                Ok((done, loss))
            }
            #[cfg(feature = "wgpu-backend")]
            Stepper::GpuStreamed { state, streamed } => {
                let mut done = 0;
                let mut loss = f32::NAN;
                while done < steps {
                    let chunk = streamed.run(
                        state,
                        self.step + done,
                        self.updates,
                        steps - done,
                        &self.optimizer.adam,
                    )?;
                    done += chunk.steps_run;
                    self.updates += chunk.steps_run;
                    if let Some((_, bad)) = chunk.diverged {
                        return Ok((done, bad));
                    }
                    loss = chunk.last_loss;
                }
                Ok((done, loss))
            }
        }
    }

    /// The training loss as shown: in the target's units.
    fn shown_loss(&self, trained: f32) -> f32 {
        let loss = self.config.loss;
        self.table
            .as_ref()
            .map_or(trained, |t| t.shown_loss(trained, loss))
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
        let work = (self.batch as u64 * self.spec.parameter_count()).max(1);
        (50_000_000 / work).max(1)
    }

    fn run_chunk(&mut self, steps: u64, read_loss: bool, _sync: bool) -> Result<Chunk> {
        let (done, loss) = self.run_steps(steps)?;
        let shown = self.shown_loss(loss);
        if done < steps {
            let step = self.step + done + 1;
            self.step += done;
            return Ok(Chunk {
                last_loss: Some(shown),
                diverged: Some((step, shown)),
            });
        }
        self.step += steps;
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
        let [mut params, m, v] = self.tensors();
        let mut record = self.table.as_ref().map(|t| t.record());
        if let (Some(table), Some(record)) = (&self.table, &mut record) {
            record.training_space = table.training_space(&self.spec.param_names(), &params);
            table.to_data_units(&mut params);
        }
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
