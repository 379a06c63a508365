//! What every training engine offers: run steps, report losses to an observer, hand out its
//! state as a checkpoint. Two engines implement it: [`crate::train::Trainer`] (burn's autodiff,
//! the reference) and [`crate::fused::FusedTrainer`] (hand-written fused steps); one floor up,
//! [`crate::session`] opens either.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::config::TrainingConfig;
use crate::error::Result;

/// Which engine runs the training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// burn's module, tensors and autodiff: the reference.
    #[default]
    Autodiff,
    /// The whole step as one hand-written pass (a CubeCL kernel on wgpu, a Rust loop on CPU).
    Fused,
}

impl EngineKind {
    /// Both engines.
    pub const ALL: [EngineKind; 2] = [EngineKind::Autodiff, EngineKind::Fused];

    /// The name on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Autodiff => "autodiff",
            EngineKind::Fused => "fused",
        }
    }

    /// Parses a name written by [`EngineKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// The smallest batch for which `--backend auto` considers a GPU for the autodiff engine.
/// Measured with `burnfit bench` on an H200 machine (README): the autodiff engine on wgpu is
/// slower than flex up to batch 4,096 (475 vs 179 ms per 1000 steps) and faster from 65,536
/// (411 vs 2,258 ms).
pub const AUTO_GPU_MIN_BATCH: usize = 65_536;

/// The same for the fused engine, whose CPU loop is ~30× faster than the autodiff engine on
/// flex: 1.7 ns per sample per core on this 2-core machine (AVX-512), so ~110 µs per step at
/// batch 2^20 even on 16 cores. The GPU kernel takes one dispatch per step at that size (two
/// before 2026-11-29, measured then); on the H200 a dispatch cost at most ~36 µs with the
/// host's work (the autodiff step: 12 in 428 µs), so the GPU should win from here and may not
/// below it. An estimate until the fused
/// kernel is timed on a real GPU: no GPU machine has run it yet.
pub const AUTO_GPU_MIN_BATCH_FUSED: usize = 1 << 20;

/// The smallest batch for which `--backend auto` considers a GPU for `engine`.
pub fn auto_gpu_min_batch(engine: EngineKind) -> usize {
    match engine {
        EngineKind::Autodiff => AUTO_GPU_MIN_BATCH,
        EngineKind::Fused => AUTO_GPU_MIN_BATCH_FUSED,
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A training engine: a model, its optimizer state and its place in the data stream.
pub trait Engine {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;
    /// Steps taken so far, across resumes.
    fn step(&self) -> u64;
    /// The resolved config.
    fn config(&self) -> &TrainingConfig;
    /// The backend it runs on.
    fn backend(&self) -> &Backend;
    /// Runs `steps` more steps: [`run`], the one training loop, around this engine's chunks.
    fn run(&mut self, steps: u64, observer: &mut dyn Observer) -> Result<RunReport> {
        run(self, steps, observer)
    }
    /// The most steps one chunk should take (a chunk runs without a look at Ctrl-C or the
    /// observer): 1 for an engine that returns to the host every step anyway.
    fn max_chunk_steps(&self) -> u64;
    /// Runs `steps` steps (fewer when one diverges: the first non-finite loss it sees stops
    /// it), waits for the device to finish them when `sync` (before any read-back), and reads
    /// back the last step's loss when `read_loss`.
    fn run_chunk(&mut self, steps: u64, read_loss: bool, sync: bool) -> Result<Chunk>;
    /// Waits until the device has finished the work queued so far.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// This engine as a trait object, for the observer.
    fn as_dyn(&self) -> &dyn Engine;
    /// The full state on the host, ready to be saved.
    fn checkpoint(&self) -> Result<Checkpoint>;
    /// The model's architecture and parameters in the data's units: what [`Engine::checkpoint`]
    /// holds, without reading back the optimizer's state.
    fn model_in_data_units(
        &self,
    ) -> Result<(crate::model::ModelSpec, Vec<crate::host::NamedTensor>)> {
        let checkpoint = self.checkpoint()?;
        Ok((checkpoint.spec.clone(), checkpoint.named_params()))
    }

    /// The CSV table the engine fits, for a `--data` run.
    fn table(&self) -> Option<&std::sync::Arc<crate::data::PreparedTable>> {
        None
    }
}

/// What one chunk of steps did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Chunk {
    /// The loss of the chunk's last step in the data's units, when it was read back.
    pub last_loss: Option<f32>,
    /// The first step whose loss was not finite, and that loss: training stops there.
    pub diverged: Option<(u64, f32)>,
}

/// The one training loop, for every engine: runs `steps` more steps of `engine` in chunks that
/// end at every log step (where the loss is read back and shown to the observer), at every
/// multiple of the observer's save interval, and after [`Engine::max_chunk_steps`]; the
/// observer sees the engine after every chunk and may stop it. The first step is a chunk of its
/// own, timed with the device synchronised (it includes kernel compilation and autotune). Stops
/// with [`crate::Error::Diverged`] on a non-finite loss.
pub fn run<E: Engine + ?Sized>(
    engine: &mut E,
    steps: u64,
    observer: &mut dyn Observer,
) -> Result<RunReport> {
    let start = Instant::now();
    let mut first_step = Duration::ZERO;
    let mut losses = Vec::new();
    let first = engine.step();
    let last = first
        .checked_add(steps)
        .ok_or(crate::Error::InvalidSetting {
            name: "--steps",
            value: steps.to_string(),
            expected: "must keep the total step count below 2^64",
        })?;
    let log_every = engine.config().log_every;
    let max_chunk = engine.max_chunk_steps().max(1);
    let mut stopped = false;
    while engine.step() < last {
        let step = engine.step();
        let mut end = last
            .min(next_multiple(step, log_every))
            .min(step.saturating_add(max_chunk));
        if let Some(every) = observer.checkpoint_every().filter(|&every| every > 0) {
            end = end.min(next_multiple(step, every));
        }
        if step == first {
            end = step + 1;
        }
        let logged = end.is_multiple_of(log_every) || end == last;
        // The first step's loss is always read (one read-back a run): an engine that reads only
        // logged losses would otherwise see data that overflows at the first log step, and
        // blame the learning rate.
        let chunk = engine.run_chunk(end - step, logged || step == first, step == first)?;
        if step == first {
            first_step = start.elapsed();
        }
        if logged
            && engine.step() == end
            && let Some(loss) = chunk.last_loss
        {
            let point = LossPoint { step: end, loss };
            observer.on_loss(point);
            losses.push(point);
        }
        if let Some((step, loss)) = chunk.diverged {
            return Err(crate::Error::Diverged {
                step,
                loss,
                hint: divergence_hint(step, engine.config()),
            });
        }
        if observer.after_step(engine.as_dyn())? == Flow::Stop {
            stopped = true;
            break;
        }
    }
    engine.sync()?;
    Ok(RunReport {
        losses,
        first_step,
        total: start.elapsed(),
        steps: engine.step() - first,
        stopped,
    })
}

/// What to change when the loss of `step` is not finite: at a fresh run's first step the data
/// (no optimizer step has been taken yet), after it the learning rate.
fn divergence_hint(step: u64, config: &TrainingConfig) -> String {
    if step != 1 {
        return "try a smaller --lr".into();
    }
    match &config.data {
        None => "already at the first step: the data overflows f32; check --true-w, --true-b, --noise, --x-low and --x-high".into(),
        Some(data) if !data.standardize => format!(
            "already at the first step: the errors overflow f32 on {}'s raw values (standardizing is off); standardize it, or look for huge values in it",
            data.path
        ),
        Some(data) => format!(
            "already at the first step: the errors overflow f32; look for huge values in {}",
            data.path
        ),
    }
}

/// The smallest multiple of `every` above `step`.
fn next_multiple(step: u64, every: u64) -> u64 {
    (step / every).saturating_add(1).saturating_mul(every)
}

/// The loss read back at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPoint {
    /// 1-based step number, counted from the start of training (across resumes).
    pub step: u64,
    /// Mean squared error of that step's batch, before the update.
    pub loss: f32,
}

/// Whether the training loop goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Take the next step.
    Continue,
    /// Stop now (e.g. on Ctrl-C); the trainer holds the state after the last completed step.
    Stop,
}

/// Sees the training loop as it runs: losses as they are read back, and the trainer after
/// steps (to save checkpoints or to stop). A closure `FnMut(LossPoint)` is an observer that only
/// watches losses.
pub trait Observer {
    /// A loss was read back from the device.
    fn on_loss(&mut self, _point: LossPoint) {}

    /// Called after every step by the autodiff engine, and by the fused engine after every
    /// chunk of steps — chunks end at every log step, at every multiple of
    /// [`Observer::checkpoint_every`], and after at most ~100 ms of work. An error stops
    /// training with that error.
    fn after_step(&mut self, _trainer: &dyn Engine) -> Result<Flow> {
        Ok(Flow::Continue)
    }

    /// The observer saves checkpoints at multiples of this step: engines that run several
    /// steps at once stop at them.
    fn checkpoint_every(&self) -> Option<u64> {
        None
    }
}

impl<F: FnMut(LossPoint)> Observer for F {
    fn on_loss(&mut self, point: LossPoint) {
        self(point)
    }
}

/// The observer that watches nothing.
impl Observer for () {}

/// What a call to [`Trainer::run`] did.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Every loss read back: each `log_every`-th step, and the last step.
    pub losses: Vec<LossPoint>,
    /// Wall time of the first step of this run, including kernel compilation and autotune.
    pub first_step: Duration,
    /// Wall time of the whole run, the device synchronised at the end.
    pub total: Duration,
    /// Steps taken by this run.
    pub steps: u64,
    /// Whether an observer stopped the run before all its steps.
    pub stopped: bool,
}

impl RunReport {
    /// The last loss read back.
    pub fn final_loss(&self) -> Option<f32> {
        self.losses.last().map(|p| p.loss)
    }
}

/// The config's `--data` table: the one the caller has read, or read here (none without
/// `--data`). Both engines start this way.
pub fn table_for(
    config: &TrainingConfig,
    table: Option<std::sync::Arc<crate::data::PreparedTable>>,
) -> Result<Option<std::sync::Arc<crate::data::PreparedTable>>> {
    Ok(match (&config.data, table) {
        (Some(_), Some(table)) => Some(table),
        (Some(data), None) => Some(std::sync::Arc::new(crate::data::PreparedTable::load(
            data,
            config.seed,
        )?)),
        (None, _) => None,
    })
}

/// A run's first parameters, in the space it trains in (both engines start from these): a
/// resumed checkpoint's (checked against `spec`; on a scaled table moved from the data's units
/// into the training space), or [`ModelSpec::init`] of the seed, with the output bias at the
/// targets' mean when they are raw (unstandardized targets may sit far from 0: Adam's steps
/// then go into the fit, not into walking there).
pub fn starting_params(
    spec: &crate::model::ModelSpec,
    seed: u64,
    table: Option<&crate::data::PreparedTable>,
    resume: Option<&Checkpoint>,
) -> Result<Vec<crate::host::HostTensor>> {
    let mut params = match resume {
        Some(checkpoint) => {
            checkpoint.check_model(spec)?;
            checkpoint.params.clone()
        }
        None => {
            let mut params = spec.init(seed);
            if let Some(table) = table.filter(|t| t.target_scaling.is_none()) {
                let bias = params.last_mut().expect("a model has parameters");
                bias.data = vec![table.training_target_mean()? as f32];
            }
            params
        }
    };
    // Checkpoints keep the data's units; training runs on the scaled features and target.
    if let (Some(table), Some(checkpoint)) = (table, resume)
        && table.is_scaled()
    {
        let record = checkpoint.meta.as_ref().and_then(|m| m.data.as_ref());
        params = table.resume_params(&spec.param_names(), &params, record);
    }
    Ok(params)
}
