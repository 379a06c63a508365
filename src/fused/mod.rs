//! The fused engine: the whole training step — draw the batch, forward, MSE, both gradients,
//! Adam — as hand-written code that keeps the parameters and Adam's state resident and never
//! materialises a batch-sized tensor. The step itself lives one floor down, in
//! [`crate::fused_step`] (the CPU loop and the GPU kernels, twins of each other); this module is
//! the engine around it: state, chunks, checkpoints. Every other model and data source has its
//! own engine, [`network::FusedNetworkTrainer`], over the dense step of
//! [`crate::fused_step::dense`].
//!
//! A run is cut into chunks that end at every log step and save step and hold at most about
//! [`CHUNK_TARGET`] of work, so the loss is read back only where it is printed and Ctrl-C is
//! seen within a chunk. Every step's loss is checked: the first non-finite one stops the run
//! before its update, with nothing saved.

#[cfg(feature = "wgpu-backend")]
pub mod gpu_limits;
pub mod network;
#[cfg(feature = "wgpu-backend")]
pub mod streamed_gpu;

use std::time::Duration;

use crate::backend::Backend;
use crate::checkpoint::{AdamSnapshot, Checkpoint, Metadata, RunRecord};
use crate::config::{ModelKind, Task, TrainingConfig};
use crate::engine::{Chunk, Engine, EngineKind};
use crate::error::{Error, Result};
use crate::fused_step::{ChunkSpec, Executor, FusedState};
use crate::host::HostTensor;
use crate::model::ModelSpec;

/// About this much work per chunk (between two looks at Ctrl-C).
pub const CHUNK_TARGET: Duration = Duration::from_millis(100);

/// The widest hidden layer the fused engine takes: a block of a network this wide still keeps
/// its activations in a core's L2 cache; past it the step is bound by memory, and the autodiff
/// engine's matrix products are the better tool.
pub const MAX_FUSED_WIDTH: usize = 256;

/// Whether the fused engine can train `config` (on some backend): every model and data source,
/// hidden layers up to [`MAX_FUSED_WIDTH`] wide. Refused with one line naming the limit.
pub fn check_supports(config: &TrainingConfig) -> Result<()> {
    config.validate()?;
    if config.model == ModelKind::Mlp
        && let Some(wide) = config.hidden.iter().find(|w| **w > MAX_FUSED_WIDTH)
    {
        return Err(Error::EngineUnsupported {
            engine: EngineKind::Fused.name(),
            message: format!(
                "takes hidden layers up to {MAX_FUSED_WIDTH} wide, not {wide}; use --engine autodiff"
            ),
        });
    }
    Ok(())
}

/// Whether `config` is the synthetic line's one-input linear model with MSE and no penalty,
/// which has its own engine
/// ([`FusedTrainer`]: a vectorised CPU loop, and GPU kernels that spread a large batch over many
/// workgroups); every other model and data source goes to [`network::FusedNetworkTrainer`].
pub fn is_line_model(config: &TrainingConfig) -> bool {
    config.model == ModelKind::Linear
        && config.data.is_none()
        && config.task == Task::Line
        && config.loss.is_mse()
        && config.l2 == 0.0
        && config.optimizer().is_plain_adam()
}

/// What a config trains, for messages: `an MLP`, `a --data table`, `--task sine`.
pub fn what_runs(config: &TrainingConfig) -> &'static str {
    match (config.model, &config.data, config.task) {
        (ModelKind::Mlp, _, _) => "an MLP",
        (_, Some(_), _) => "a --data table",
        (_, None, Task::Sine) => "--task sine",
        (_, None, Task::Line) => "the synthetic line",
    }
}

/// The fused engine: a model, its Adam state and its place in the data stream.
pub struct FusedTrainer {
    config: TrainingConfig,
    backend: Backend,
    executor: Executor,
    state: FusedState,
    step: u64,
    updates: u64,
    last_loss: Option<f32>,
}

impl FusedTrainer {
    /// A fresh model for `config` on `backend`: the same initial weights as the autodiff engine.
    pub fn new(config: TrainingConfig, backend: Backend) -> Result<Self> {
        Self::check_supports(&config)?;
        let w = ModelSpec::linear(1).init(config.seed)[0].data[0];
        let executor = Executor::for_backend(&backend)?;
        Ok(Self {
            config,
            backend,
            executor,
            state: FusedState::new(w, 0.0),
            step: 0,
            updates: 0,
            last_loss: None,
        })
    }

    /// This engine trains the synthetic line's one-input linear model; other models and data
    /// go to [`network::FusedNetworkTrainer`].
    fn check_supports(config: &TrainingConfig) -> Result<()> {
        check_supports(config)?;
        if !is_line_model(config) {
            return Err(Error::EngineUnsupported {
                engine: EngineKind::Fused.name(),
                message: format!(
                    "FusedTrainer runs the synthetic line's linear model, not {}; open the engine with session::open_engine",
                    what_runs(config)
                ),
            });
        }
        Ok(())
    }

    /// Continues from a checkpoint of either engine.
    pub fn resume(
        config: TrainingConfig,
        backend: Backend,
        checkpoint: &Checkpoint,
    ) -> Result<Self> {
        let mut trainer = Self::new(config, backend)?;
        checkpoint.check_model(&ModelSpec::linear(1))?;
        let [w, b] = &checkpoint.params[..] else {
            unreachable!("checked: the one-input linear model")
        };
        trainer.state = FusedState::new(w.data[0], b.data[0]);
        if let Some(adam) = &checkpoint.adam {
            let [(mw, vw), (mb, vb)] = &adam.moments[..] else {
                unreachable!("one moment pair per parameter")
            };
            trainer.state.m = [mw.data[0], mb.data[0]];
            trainer.state.v = [vw.data[0], vb.data[0]];
            trainer.updates = adam.updates;
        }
        trainer.step = checkpoint.step();
        trainer.last_loss = checkpoint.meta.as_ref().and_then(|m| m.final_loss);
        Ok(trainer)
    }

    /// The state as it stands.
    pub fn state(&self) -> FusedState {
        self.state
    }

    fn spec(&self, steps: u64) -> ChunkSpec {
        ChunkSpec {
            stream: self.config.line_stream(),
            adam: self.config.adam(),
            batch: self.config.batch,
            first_step: self.step + 1,
            updates_before: self.updates,
            steps,
        }
    }
}

impl Engine for FusedTrainer {
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

    fn max_chunk_steps(&self) -> u64 {
        self.executor.max_chunk_steps(self.config.batch)
    }

    /// Every chunk ends with its state read back: always in sync.
    fn run_chunk(&mut self, steps: u64, read_loss: bool, _sync: bool) -> Result<Chunk> {
        let spec = self.spec(steps);
        let result = self
            .executor
            .run_chunk(self.state, &spec)
            .map_err(|message| Error::Device {
                backend: self.backend.kind.name(),
                message,
            })?;
        self.state = result.state;
        self.step += result.steps_run;
        self.updates += result.steps_run;
        if read_loss && result.diverged.is_none() {
            self.last_loss = Some(result.last_loss);
        }
        Ok(Chunk {
            last_loss: read_loss.then_some(result.last_loss),
            diverged: result.diverged,
        })
    }

    fn as_dyn(&self) -> &dyn Engine {
        self
    }

    fn checkpoint(&self) -> Result<Checkpoint> {
        let one = |v: f32| HostTensor::new(vec![1, 1], vec![v]);
        let s = self.state;
        Ok(Checkpoint {
            spec: ModelSpec::linear(1),
            params: vec![one(s.w), one(s.b)],
            adam: Some(AdamSnapshot {
                updates: self.updates,
                moments: vec![(one(s.m[0]), one(s.v[0])), (one(s.m[1]), one(s.v[1]))],
            }),
            meta: Some(Metadata::from(RunRecord {
                config: &self.config,
                backend: self.backend.kind.name(),
                engine: EngineKind::Fused.name(),
                step: self.step,
                adam_updates: self.updates,
                final_loss: self.last_loss,
                data: None,
            })),
        })
    }
}
