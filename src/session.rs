//! Opening a training run: the one place that knows every engine and builds the one asked for,
//! and the library's shortest way to train ([`train`], [`train_with`]).

use std::sync::Arc;

use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::config::TrainingConfig;
use crate::data::PreparedTable;
use crate::engine::{Engine, EngineKind, LossPoint, RunReport};
use crate::error::Result;
use crate::fused::FusedTrainer;
use crate::fused::network::FusedNetworkTrainer;
use crate::train::Trainer;

/// A trainer of `engine`: fresh, or continuing from `resume`.
pub fn open_engine(
    engine: EngineKind,
    config: TrainingConfig,
    backend: Backend,
    resume: Option<&Checkpoint>,
) -> Result<Box<dyn Engine>> {
    open_engine_with(engine, config, backend, None, resume)
}

/// [`open_engine`] with the config's `--data` table already read (it is read here otherwise).
pub fn open_engine_with(
    engine: EngineKind,
    config: TrainingConfig,
    backend: Backend,
    table: Option<Arc<PreparedTable>>,
    resume: Option<&Checkpoint>,
) -> Result<Box<dyn Engine>> {
    Ok(match (engine, resume) {
        (EngineKind::Autodiff, _) => Box::new(Trainer::start(config, backend, table, resume)?),
        (EngineKind::Fused, _) if !crate::fused::is_line_model(&config) => {
            Box::new(FusedNetworkTrainer::start(config, backend, table, resume)?)
        }
        (EngineKind::Fused, None) => Box::new(FusedTrainer::new(config, backend)?),
        (EngineKind::Fused, Some(c)) => Box::new(FusedTrainer::resume(config, backend, c)?),
    })
}

/// The result of [`train`]: the run and the final state.
#[derive(Clone, Debug)]
pub struct TrainingReport {
    /// Losses and timings.
    pub run: RunReport,
    /// The final parameters, Adam state and metadata.
    pub checkpoint: Checkpoint,
}

impl TrainingReport {
    /// The final w of the one-input linear model (for other models: the first weight's first
    /// value).
    pub fn final_w(&self) -> f32 {
        self.checkpoint.params[0].data[0]
    }

    /// The final b of the one-input linear model (for other models: the first bias's first
    /// value).
    pub fn final_b(&self) -> f32 {
        self.checkpoint.params[1].data[0]
    }
}

/// Trains a fresh model for `config.steps` steps on `backend` with the autodiff engine;
/// `on_loss` sees each loss read back.
pub fn train(
    config: &TrainingConfig,
    backend: Backend,
    on_loss: impl FnMut(LossPoint),
) -> Result<TrainingReport> {
    train_with(EngineKind::Autodiff, config, backend, on_loss)
}

/// Trains a fresh model for `config.steps` steps on `backend` with the given engine.
pub fn train_with(
    engine: EngineKind,
    config: &TrainingConfig,
    backend: Backend,
    mut on_loss: impl FnMut(LossPoint),
) -> Result<TrainingReport> {
    let mut trainer = open_engine(engine, config.clone(), backend, None)?;
    let run = trainer.run(config.steps, &mut on_loss)?;
    Ok(TrainingReport {
        run,
        checkpoint: trainer.checkpoint()?,
    })
}
