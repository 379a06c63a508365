//! The decisions `train` makes before the loop: the config (defaults, then a checkpoint's,
//! then a config file, then flags), the step count (`--steps`, `--epochs`, or a resumed run's
//! target), the engine, and the checks on a `--data` file — in the library, so that a program
//! can do what the command line does without it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::{Backend, BackendChoice, BackendKind};
use crate::checkpoint::Checkpoint;
use crate::config::{ModelKind, TableConfig, Task, TrainingConfig};
use crate::data::PreparedTable;
use crate::data::source::steps_per_epoch;
use crate::engine::EngineKind;
use crate::error::{Error, Result, invalid};
use crate::loss::LossKind;
use crate::model::Activation;
use crate::optim::{OptimizerKind, ScheduleKind};

/// The training settings a run may set: each one is a field here with its flag (and the help
/// text, showing the default from [`TrainingConfig::default`]), a field of [`TrainingConfig`]
/// (its config-file key, default and check), and one line in [`apply_overrides`]. `None` (or
/// an absent switch) keeps the value from the layer below: the checkpoint's, the config
/// file's, the default.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// Optimizer steps (fresh run), or steps to add (resumed run).
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Run",
          help = with_default("Optimizer steps, one fresh batch each; with --resume, steps to add", DEFAULTS.steps))]
    pub steps: Option<u64>,
    /// Passes over the CSV's training rows (instead of --steps); with --resume, passes to add.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Run"
    )]
    pub epochs: Option<u64>,
    /// Samples (or table rows) per step.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Run",
          help = with_default("Samples per batch", DEFAULTS.batch))]
    pub batch: Option<usize>,
    /// Seed of the data stream, the split and the initial weights.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Run",
          help = with_default("Seed of the data stream, the split and the initial weights", DEFAULTS.seed))]
    pub seed: Option<u64>,
    /// Adam's learning rate.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Adam learning rate", DEFAULTS.lr))]
    pub lr: Option<f32>,
    /// Adam's first-moment decay.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Adam's first-moment decay β1, in [0, 1)", DEFAULTS.beta1))]
    pub beta1: Option<f32>,
    /// Adam's second-moment decay.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Adam's second-moment decay β2, in [0, 1)", DEFAULTS.beta2))]
    pub beta2: Option<f32>,
    /// Adam's ε.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Adam's ε, added to the denominator", format!("{:e}", DEFAULTS.epsilon)))]
    pub epsilon: Option<f32>,
    /// The loss minimised.
    #[arg(long, value_enum, help_heading = "Optimizer",
          help = with_default("The loss minimised: `mse`, `mae` (mean absolute error) or `huber` (quadratic within --huber-delta of the target, linear beyond)", DEFAULTS.loss.name()))]
    pub loss: Option<LossKind>,
    /// Huber's threshold.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Huber's threshold δ, in the target's units (with --loss huber)", DEFAULTS.huber_delta))]
    pub huber_delta: Option<f32>,
    /// The optimizer.
    #[arg(long, value_enum, help_heading = "Optimizer",
          help = with_default("The optimizer: `adam`, `adamw` (decoupled weight decay), `sgd` or `rmsprop`", DEFAULTS.optimizer.name()))]
    pub optimizer: Option<OptimizerKind>,
    /// SGD's and RMSProp's momentum.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Momentum μ of --optimizer sgd or rmsprop, in [0, 1)", DEFAULTS.momentum))]
    pub momentum: Option<f32>,
    /// RMSProp's smoothing.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("RMSProp's smoothing α of the squared gradients, in [0, 1)", DEFAULTS.rmsprop_alpha))]
    pub rmsprop_alpha: Option<f32>,
    /// AdamW's weight decay.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("AdamW's decoupled weight decay (weights only, not biases)", DEFAULTS.weight_decay))]
    pub weight_decay: Option<f32>,
    /// The learning-rate schedule.
    #[arg(long, value_enum, help_heading = "Optimizer",
          help = with_default("The learning-rate schedule: `constant`, `linear` or `cosine` (falling towards 0: the last step at lr/N for linear), `step` (× --lr-gamma every --lr-step-every steps)", "constant"))]
    pub lr_schedule: Option<ScheduleKind>,
    /// Warm-up steps.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Steps of linear warm-up from 0 to --lr before the schedule", DEFAULTS.warmup_steps))]
    pub warmup_steps: Option<u64>,
    /// The step schedule's interval.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("The step schedule's interval (with --lr-schedule step)", DEFAULTS.lr_step_every))]
    pub lr_step_every: Option<u64>,
    /// The step schedule's factor.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("The step schedule's factor (with --lr-schedule step)", DEFAULTS.lr_gamma))]
    pub lr_gamma: Option<f32>,
    /// Ridge penalty.
    #[arg(value_parser = f32_value, long, value_name = "λ", allow_negative_numbers = true, help_heading = "Optimizer",
          help = with_default("Ridge penalty λ: adds λ·Σw² over the weights (not the biases) to the loss minimised, in the space the model trains in (standardized on a standardized table)", DEFAULTS.l2))]
    pub l2: Option<f32>,
    /// The synthetic task.
    #[arg(long, value_enum, help_heading = "Data",
          help = with_default("What to fit without --data: `line` (y = true_w·x + true_b + noise) or `sine` (y = sin x, x in [0, 10), the autograd crate's example)", value_name(&DEFAULTS.task)))]
    pub task: Option<Task>,
    /// The line's slope.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Data",
          help = with_default("Slope of the line the data is drawn from", DEFAULTS.true_w))]
    pub true_w: Option<f32>,
    /// The line's intercept.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Data",
          help = with_default("Intercept of the line the data is drawn from", DEFAULTS.true_b))]
    pub true_b: Option<f32>,
    /// The line's noise.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Data",
          help = with_default("Standard deviation of the Gaussian noise on y", DEFAULTS.noise))]
    pub noise: Option<f32>,
    /// The low end of the line's x range.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Data",
          help = with_default("Low end of the line's x range (uniform in [x_low, x_high))", DEFAULTS.x_low))]
    pub x_low: Option<f32>,
    /// The high end of the line's x range.
    #[arg(value_parser = f32_value, long, value_name = "X", allow_negative_numbers = true, help_heading = "Data",
          help = with_default("High end of the line's x range", DEFAULTS.x_high))]
    pub x_high: Option<f32>,
    /// Fit this CSV file (header row required) instead of a synthetic task; or a Parquet file
    /// (`.parquet`), in a build with the `parquet` feature.
    #[arg(long, value_name = "FILE.csv", help_heading = "Data")]
    pub data: Option<String>,
    /// The CSV column to predict (required with --data).
    #[arg(long, value_name = "COLUMN", help_heading = "Data")]
    pub target: Option<String>,
    /// The CSV feature columns, comma-separated, in the model's input order [default: every
    /// column but the target]
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B,..",
        help_heading = "Data"
    )]
    pub features: Option<Vec<String>>,
    /// The CSV's delimiter.
    #[arg(value_parser = delimiter_value, long, value_name = "CHAR", help_heading = "Data",
          help = with_default("The CSV field delimiter, one ASCII character", TableConfig::new("", "").delimiter))]
    pub delimiter: Option<char>,
    /// Scale each CSV feature to mean 0, std 1 over the training rows while training (the
    /// default; the saved weights are in the data's own units either way)
    #[arg(long, overrides_with = "no_standardize", help_heading = "Data")]
    pub standardize: bool,
    /// Train on the raw CSV features.
    #[arg(long, help_heading = "Data")]
    pub no_standardize: bool,
    /// The CSV's validation fraction.
    #[arg(long, value_name = "F", allow_negative_numbers = true, help_heading = "Data",
          help = with_default("Fraction of the CSV rows held out for validation, a seeded random split", TableConfig::new("", "").val_frac))]
    pub val_frac: Option<f64>,
    /// Skip CSV rows with an empty or non-numeric cell (and say how many) instead of stopping.
    #[arg(long, help_heading = "Data")]
    pub drop_invalid_rows: bool,
    /// Train out of core: the CSV's columns in use are cached once as f32 on disk (rebuilt when
    /// the file or these options change) and batches are read from the cache in a block-shuffled
    /// order, in bounded memory. Automatic when the table would not fit in memory
    #[arg(long, help_heading = "Data")]
    pub out_of_core: bool,
    /// Where an out-of-core run keeps its cache [default: beside the CSV file]
    #[arg(long, value_name = "DIR", help_heading = "Data")]
    pub cache_dir: Option<String>,
    /// The model.
    #[arg(long, value_enum, help_heading = "Model",
          help = with_default("The model: `linear` (z = x·w + b) or `mlp` (dense layers of --hidden widths)", value_name(&DEFAULTS.model)))]
    pub model: Option<ModelKind>,
    /// The MLP's hidden widths.
    #[arg(long, value_delimiter = ',', value_name = "W,..", help_heading = "Model",
          help = with_default("The MLP's hidden layer widths, comma-separated", DEFAULTS.hidden.iter().map(usize::to_string).collect::<Vec<_>>().join(",")))]
    pub hidden: Option<Vec<usize>>,
    /// The MLP's activation.
    #[arg(long, value_enum, help_heading = "Model",
          help = with_default("The MLP's activation between layers (also the one assumed for an autograd-written MLP file, which does not record it)", value_name(&DEFAULTS.activation)))]
    pub activation: Option<Activation>,
    /// Logging interval.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Display",
          help = with_default("Read back and print the loss every N steps", DEFAULTS.log_every))]
    pub log_every: Option<u64>,
}

impl Overrides {
    /// Applies the flags given to `config`, with the checks `train` makes (`bench` builds its
    /// workload this way).
    pub fn apply_to(&self, config: &mut TrainingConfig) -> Result<()> {
        apply_overrides(config, self)
    }

    /// `--standardize` / `--no-standardize`: the last one given wins.
    pub fn standardize(&self) -> Option<bool> {
        match (self.standardize, self.no_standardize) {
            (_, true) => Some(false),
            (true, false) => Some(true),
            (false, false) => None,
        }
    }
}

/// The defaults, for the help texts.
static DEFAULTS: std::sync::LazyLock<TrainingConfig> =
    std::sync::LazyLock::new(TrainingConfig::default);

/// A value's name on the command line.
fn value_name<T: clap::ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map_or(String::new(), |v| v.get_name().to_owned())
}

/// `text [default: value]`, as clap writes a default.
fn with_default(text: &str, value: impl std::fmt::Display) -> String {
    format!("{text} [default: {value}]")
}

/// What the user asked of `train`.
#[derive(Clone, Debug, Default)]
pub struct TrainRequest {
    /// A JSON config file laid over the defaults (or over a resumed checkpoint's config).
    pub config_file: Option<PathBuf>,
    /// The checkpoint to continue from.
    pub resume: Option<PathBuf>,
    /// Flags.
    pub overrides: Overrides,
    /// The engine; default: the checkpoint's, else autodiff.
    pub engine: Option<EngineKind>,
    /// Resume on a `--data` file that differs from the one the checkpoint was trained on.
    pub allow_data_change: bool,
}

/// A run, resolved: everything the training loop needs.
#[derive(Debug)]
pub struct TrainPlan {
    /// The config, validated; `steps` is the total to reach (across resumes).
    pub config: TrainingConfig,
    /// The engine.
    pub engine: EngineKind,
    /// The checkpoint continued from.
    pub resumed: Option<Checkpoint>,
    /// The `--data` table, read and split.
    pub table: Option<Arc<PreparedTable>>,
    /// Things the user should know (printed as `note:` lines by the CLI).
    pub notes: Vec<String>,
}

impl TrainPlan {
    /// Resolves a request: reads the checkpoint, the config file and the data file, and checks
    /// that they fit together.
    pub fn resolve(request: &TrainRequest) -> Result<TrainPlan> {
        Self::resolve_announcing(request, &mut |_| {})
    }

    /// [`Self::resolve`], calling `before_reading` with the resolved config just before the data
    /// file is read (which can take a while: `train` says what it reads first).
    pub fn resolve_announcing(
        request: &TrainRequest,
        before_reading: &mut dyn FnMut(&TrainingConfig),
    ) -> Result<TrainPlan> {
        let mut notes = Vec::new();
        let resumed = request
            .resume
            .as_deref()
            .map(|path| {
                Checkpoint::load(path)
                    .map(|c| c.with_activation(request.overrides.activation.unwrap_or_default()))
            })
            .transpose()?;
        let base = match &resumed {
            Some(Checkpoint {
                meta: Some(meta), ..
            }) => meta.config.clone(),
            Some(checkpoint) => {
                notes.push(format!(
                    "{} has no burnfit metadata (an autograd file?); using the default config for a {} model",
                    request.resume.as_ref().map_or(String::new(), |p| p.display().to_string()),
                    checkpoint.spec.describe()
                ));
                let mut config = TrainingConfig::default();
                if !checkpoint.spec.is_linear() {
                    config.model = ModelKind::Mlp;
                    config.hidden = checkpoint.spec.hidden.clone();
                    config.activation = checkpoint.spec.activation;
                }
                config
            }
            None => TrainingConfig::default(),
        };
        let mut config = match &request.config_file {
            Some(path) => base.overlay_file(path)?,
            None => base,
        };
        apply_overrides(&mut config, &request.overrides)?;
        if let Some(meta) = resumed.as_ref().and_then(|c| c.meta.as_ref()) {
            check_same_task(&meta.config, &config, request.allow_data_change)?;
        }
        // The checkpoint's optimizer state means what its optimizer made of it (a file without
        // burnfit's metadata holds Adam's).
        if let Some(checkpoint) = resumed.as_ref().filter(|c| c.adam.is_some()) {
            let recorded = checkpoint
                .meta
                .as_ref()
                .map_or(OptimizerKind::Adam, |m| m.config.optimizer);
            let adam_like =
                |k: OptimizerKind| matches!(k, OptimizerKind::Adam | OptimizerKind::Adamw);
            if recorded != config.optimizer && !(adam_like(recorded) && adam_like(config.optimizer))
            {
                return Err(Error::Misused {
                    flag: "--optimizer",
                    message: format!(
                        "{}: the checkpoint holds {}'s state; resume with --optimizer {}, or start a fresh run",
                        config.optimizer.name(),
                        recorded.name(),
                        recorded.name()
                    ),
                });
            }
        }
        if let (Some(data), Some(resume)) = (&mut config.data, &request.resume)
            && request.overrides.data.is_none()
        {
            find_recorded_data(data, resume)?;
        }
        if let (Some(data), Some(resume)) = (&mut config.data, &request.resume)
            && request.overrides.cache_dir.is_none()
        {
            find_recorded_cache_dir(data, resume)?;
        }
        if let Some(checkpoint) = &resumed
            && checkpoint.meta.is_none()
            && checkpoint.spec.d_in > 1
            && config.data.is_none()
        {
            return Err(Error::ModelMismatch {
                checkpoint: checkpoint.spec.describe(),
                requested: "the one-input synthetic task; pass --data and --target".into(),
            });
        }
        config.validate()?;
        let engine = request
            .engine
            .or_else(|| {
                let meta = resumed.as_ref()?.meta.as_ref()?;
                EngineKind::from_name(meta.engine.as_deref()?)
            })
            .unwrap_or_default();
        if engine == EngineKind::Fused {
            crate::fused::check_supports(&config)?;
        }
        // A resume of the recorded data file checks it against the checkpoint's as soon as its
        // hash is known: a changed file is refused before it is read or its cache rebuilt.
        // (With --data, the full check below names what differs, features first.)
        let recorded_hash = resumed
            .as_ref()
            .and_then(|c| c.meta.as_ref()?.data.as_ref())
            .map(|d| d.hash.clone())
            .filter(|_| !request.allow_data_change && request.overrides.data.is_none());
        let same_file = |hash: &str| match &recorded_hash {
            Some(old) if old != hash => Err(Error::DataChanged {
                path: config
                    .data
                    .as_ref()
                    .map_or_else(String::new, |d| d.path.clone()),
                what: format!("content hash {hash} was {old}"),
            }),
            _ => Ok(()),
        };
        if config.data.is_some() {
            before_reading(&config);
        }
        let table = match &config.data {
            Some(data) => Some(Arc::new(PreparedTable::load_if(
                data,
                config.seed,
                &same_file,
            )?)),
            None => None,
        };
        // A table too big for memory went out of core: the config says so, and so does a
        // checkpoint of the run, whose resume then reads the same batches.
        if let (Some(table), Some(data)) = (&table, &mut config.data)
            && table.is_out_of_core()
            && !data.out_of_core
        {
            data.out_of_core = true;
            if resumed.is_some() {
                notes.push(
                    "the table no longer fits in memory: this resume trains out of core, in another batch order than the run so far".into(),
                );
            }
        }
        if let (Some(table), Some(checkpoint)) = (&table, &resumed) {
            check_same_data(table, checkpoint, request.allow_data_change, &mut notes)?;
        }
        config.steps = resolve_steps(
            &config,
            &request.overrides,
            resumed.as_ref(),
            table.as_deref(),
        )?;
        if let Some(meta) = resumed.as_ref().and_then(|c| c.meta.as_ref())
            && matches!(
                config.lr_schedule,
                ScheduleKind::Linear | ScheduleKind::Cosine
            )
            && meta.config.steps != config.steps
        {
            notes.push(format!(
                "the {} learning-rate schedule now runs to step {} (it ran to step {} before this resume)",
                match config.lr_schedule {
                    ScheduleKind::Linear => "linear",
                    _ => "cosine",
                },
                config.steps,
                meta.config.steps
            ));
        }
        if let Some(table) = &table
            && config.batch >= table.train_rows()
            && request.overrides.batch.is_some()
        {
            notes.push(format!(
                "--batch {} covers all {} training rows: full-batch training",
                config.batch,
                table.train_rows()
            ));
        }
        Ok(TrainPlan {
            config,
            engine,
            resumed,
            table,
            notes,
        })
    }
}

impl TrainPlan {
    /// The backend the run trains on: the one asked for (`auto` by the batch and the engine,
    /// see [`crate::engine::auto_gpu_min_batch`]); without a choice, a resumed run continues on
    /// the checkpoint's own backend so that it stays bit-identical to an uninterrupted run, or,
    /// when this build lacks it or it does not work here, on `auto`'s pick with a note saying
    /// so (returned beside the backend).
    pub fn backend(&self, choice: Option<BackendChoice>) -> Result<(Backend, Option<String>)> {
        let gpu_from = match self.engine {
            // Every other model's fused GPU kernel runs in one workgroup: `auto` keeps it on
            // the CPU.
            EngineKind::Fused if !crate::fused::is_line_model(&self.config) => usize::MAX,
            engine => crate::engine::auto_gpu_min_batch(engine),
        };
        let auto = || Backend::choose_for(BackendChoice::Auto, self.config.batch, gpu_from);
        let recorded = self
            .resumed
            .as_ref()
            .and_then(|c| c.meta.as_ref())
            .map(|m| m.backend.as_str());
        let (None, Some(name)) = (choice, recorded) else {
            let choice = choice.unwrap_or_default();
            return Ok((
                Backend::choose_for(choice, self.config.batch, gpu_from)?,
                None,
            ));
        };
        let why = match BackendKind::from_name(name) {
            None => format!("`{name}`, which this version of burnfit does not know"),
            Some(kind) => match Backend::open(kind) {
                Ok(backend) => {
                    let note = backend
                        .adapter
                        .as_ref()
                        .filter(|adapter| !adapter.is_real_gpu())
                        .map(|adapter| {
                            format!(
                                "resuming on the checkpoint's backend, wgpu, whose adapter here is {} (software: slower than the CPU backends for this model; pass --backend to choose)",
                                adapter.name
                            )
                        });
                    return Ok((backend, note));
                }
                Err(problem) => format!("{kind}, which cannot be used here: {problem}"),
            },
        };
        let backend = auto()?;
        let note = format!(
            "the checkpoint was trained on {why}; resuming on {} (pass --backend to choose)",
            backend.kind
        );
        Ok((backend, Some(note)))
    }
}

/// A resumed run continues the task it started: the same synthetic task, or the same target
/// and split of its table (the split and scaling only with `--allow-data-change`).
fn check_same_task(
    old_config: &TrainingConfig,
    new_config: &TrainingConfig,
    allow_data_change: bool,
) -> Result<()> {
    let (old, new) = (old_config, new_config);
    let change = |what: String| Err(Error::ResumeChange { what });
    if old.task != new.task && new.data.is_none() {
        return change(format!(
            "--task {}: the checkpoint was trained on the {} task",
            task_name(new.task),
            task_name(old.task)
        ));
    }
    if let (None, Some(data)) = (&old.data, &new.data)
        && old.task != Task::Line
    {
        return change(format!(
            "--data {}: the checkpoint was trained on the {} task; train on a table in a fresh run (without --resume)",
            data.path,
            task_name(old.task)
        ));
    }
    let (Some(old), Some(new)) = (&old.data, &new.data) else {
        return Ok(());
    };
    if old.target != new.target {
        return change(format!(
            "--target {}: the checkpoint's model predicts `{}`",
            new.target, old.target
        ));
    }
    if !allow_data_change {
        if old_config.seed != new_config.seed {
            return change(format!(
                "--seed {}: the checkpoint's split and shuffles come from seed {} (another seed puts trained-on rows in validation); pass --allow-data-change to do it anyway",
                new_config.seed, old_config.seed
            ));
        }
        if old_config.batch != new_config.batch {
            return change(format!(
                "--batch {}: the checkpoint's epochs are of --batch {} (another batch size breaks the epoch in progress); pass --allow-data-change to do it anyway",
                new_config.batch, old_config.batch
            ));
        }
        if old.val_frac != new.val_frac {
            return change(format!(
                "--val-frac {}: the checkpoint was trained with {} (its validation rows would be trained on); pass --allow-data-change to do it anyway",
                new.val_frac, old.val_frac
            ));
        }
        if old.standardize != new.standardize {
            return change(format!(
                "{}: the checkpoint was trained {} standardization; pass --allow-data-change to do it anyway",
                if new.standardize {
                    "--standardize"
                } else {
                    "--no-standardize"
                },
                if old.standardize { "with" } else { "without" }
            ));
        }
        if new.out_of_core && !old.out_of_core {
            return change(
                "--out-of-core: the checkpoint's run read its batches in memory, in another order; pass --allow-data-change to do it anyway".into(),
            );
        }
    }
    Ok(())
}

fn task_name(task: Task) -> &'static str {
    match task {
        Task::Line => "line",
        Task::Sine => "sine",
    }
}

/// A checkpoint records its data file's path as it was given; from another directory, a
/// relative path is looked up beside the checkpoint too.
fn find_recorded_data(data: &mut TableConfig, resume: &std::path::Path) -> Result<()> {
    // A relative path is recorded relative to the checkpoint's directory (older checkpoints:
    // to the training's working directory): looked for there first, then here.
    let path = std::path::Path::new(&data.path);
    if path.is_relative() {
        // Beside the checkpoint as its path spells it, or beside its real file (through
        // symlinks).
        let beside = resume
            .parent()
            .map(std::path::Path::to_path_buf)
            .into_iter()
            .chain(crate::checkpoint::real_dir(resume))
            .map(|dir| dir.join(path))
            .find(|candidate| candidate.exists());
        if let Some(beside) = beside {
            data.path = beside.display().to_string();
            return Ok(());
        }
    }
    if path.exists() {
        return Ok(());
    }
    Err(Error::Data {
        path: path.to_owned(),
        message: format!(
            "no such file (the path {} records); pass --data to say where it is",
            resume.display()
        ),
    })
}

/// A checkpoint's recorded `--cache-dir`: absolute (see `Checkpoint::with_data_path_beside`); an
/// older checkpoint's relative one is looked up here, then beside the checkpoint. One found
/// nowhere is an error naming the checkpoint for an out-of-core run (the user did not pass
/// `--cache-dir` this time), and forgotten for an in-memory one.
fn find_recorded_cache_dir(data: &mut TableConfig, resume: &std::path::Path) -> Result<()> {
    let Some(dir) = data.cache_dir.clone() else {
        return Ok(());
    };
    let recorded = std::path::Path::new(&dir);
    if recorded.is_dir() {
        return Ok(());
    }
    let beside = resume
        .parent()
        .filter(|_| recorded.is_relative())
        .map(|parent| parent.join(recorded))
        .filter(|candidate| candidate.is_dir());
    match beside {
        Some(found) => {
            data.cache_dir = Some(found.display().to_string());
            Ok(())
        }
        // An in-memory run never used it: forgotten (a table too big for memory then goes out
        // of core with its cache beside the data file).
        None if !data.out_of_core => {
            data.cache_dir = None;
            Ok(())
        }
        None => Err(Error::Cache {
            path: recorded.to_owned(),
            message: format!(
                "no such directory (the cache directory {} records); pass --cache-dir DIR to keep the cache elsewhere",
                resume.display()
            ),
        }),
    }
}

/// A `--delimiter` value: one character, or `\t` (or `tab`) for a tab, which a shell does not
/// pass as one character without quoting tricks.
pub fn delimiter_value(text: &str) -> std::result::Result<char, String> {
    match text {
        "\\t" | "tab" => Ok('\t'),
        _ => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(format!("`{text}` is not one character (a tab is `\\t`)")),
            }
        }
    }
}

/// A number flag's f32 value. Refused where the f32 would silently differ in kind from what was
/// typed: a nonzero number that rounds to 0, a finite one that overflows to infinity.
pub fn f32_value(text: &str) -> std::result::Result<f32, String> {
    let wide: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    let narrow = wide as f32;
    if wide != 0.0 && narrow == 0.0 {
        return Err(format!(
            "{text} is below f32's range: it would be 0 (the smallest f32 is ~1.4e-45)"
        ));
    }
    if wide.is_finite() && !narrow.is_finite() {
        return Err(format!(
            "{text} is beyond f32's range (the largest f32 is ~3.4e38)"
        ));
    }
    Ok(narrow)
}

fn apply_overrides(config: &mut TrainingConfig, o: &Overrides) -> Result<()> {
    macro_rules! apply {
        ($($field:ident),*) => { $( if let Some(v) = o.$field.clone() { config.$field = v; } )* };
    }
    apply!(
        batch,
        lr,
        beta1,
        beta2,
        epsilon,
        seed,
        true_w,
        true_b,
        noise,
        x_low,
        x_high,
        log_every,
        task,
        model,
        hidden,
        activation,
        loss,
        huber_delta,
        l2,
        optimizer,
        momentum,
        rmsprop_alpha,
        weight_decay,
        lr_schedule,
        warmup_steps,
        lr_step_every,
        lr_gamma
    );
    let misused = |flag: &'static str, message: &str| {
        Err(Error::Misused {
            flag,
            message: message.into(),
        })
    };
    use OptimizerKind::{Adamw, Rmsprop, Sgd};
    if o.momentum.is_some() && !matches!(config.optimizer, Sgd | Rmsprop) {
        return misused(
            "--momentum",
            "applies to --optimizer sgd or rmsprop (Adam's is --beta1)",
        );
    }
    if o.rmsprop_alpha.is_some() && config.optimizer != Rmsprop {
        return misused("--rmsprop-alpha", "applies to --optimizer rmsprop only");
    }
    if o.weight_decay.is_some() && config.optimizer != Adamw {
        return misused(
            "--weight-decay",
            "applies to --optimizer adamw only (--l2 adds a penalty with any optimizer)",
        );
    }
    if (o.lr_step_every.is_some() || o.lr_gamma.is_some())
        && config.lr_schedule != ScheduleKind::Step
    {
        let flag = if o.lr_step_every.is_some() {
            "--lr-step-every"
        } else {
            "--lr-gamma"
        };
        return misused(flag, "applies to --lr-schedule step only");
    }
    if o.huber_delta.is_some() && config.loss != LossKind::Huber {
        return Err(Error::Misused {
            flag: "--huber-delta",
            message: "applies to --loss huber only".into(),
        });
    }
    if config.model == ModelKind::Linear {
        if o.hidden.is_some() {
            return Err(Error::Misused {
                flag: "--hidden",
                message: "applies to --model mlp only".into(),
            });
        }
        if o.activation.is_some() {
            return Err(Error::Misused {
                flag: "--activation",
                message: "applies to --model mlp only".into(),
            });
        }
    }
    if let Some(features) = &o.features
        && features.iter().any(|f| f.trim().is_empty())
    {
        return Err(invalid(
            "--features",
            features.join(","),
            "must be column names separated by commas, none of them empty",
        ));
    }
    if let Some(path) = &o.data {
        let target = match (&o.target, &config.data) {
            (Some(target), _) => target.clone(),
            (None, Some(old)) => old.target.clone(),
            (None, None) => {
                return Err(Error::Misused {
                    flag: "--target",
                    message: "is required with --data: name the column to predict".into(),
                });
            }
        };
        let mut data = config
            .data
            .clone()
            .unwrap_or_else(|| TableConfig::new(path.clone(), target.clone()));
        data.path = path.clone();
        data.target = target;
        config.data = Some(data);
    } else if o.target.is_some() && config.data.is_none() {
        return Err(invalid(
            "--target",
            o.target.as_deref().unwrap_or(""),
            "needs --data FILE.csv",
        ));
    }
    let line_flag = [
        ("--true-w", o.true_w.is_some()),
        ("--true-b", o.true_b.is_some()),
        ("--noise", o.noise.is_some()),
        ("--x-low", o.x_low.is_some()),
        ("--x-high", o.x_high.is_some()),
    ]
    .into_iter()
    .find_map(|(name, given)| given.then_some(name));
    match &mut config.data {
        Some(data) => {
            if let Some(flag) = line_flag {
                return Err(Error::Misused {
                    flag,
                    message: format!(
                        "describes the synthetic line, not a table: this run trains on {}",
                        data.path
                    ),
                });
            }
            if let Some(target) = &o.target {
                data.target = target.clone();
            }
            if let Some(features) = &o.features {
                data.features = Some(features.clone());
            }
            if let Some(d) = o.delimiter {
                data.delimiter = d;
            }
            if let Some(s) = o.standardize() {
                data.standardize = s;
            }
            if let Some(f) = o.val_frac {
                data.val_frac = f;
            }
            if o.drop_invalid_rows {
                data.drop_invalid_rows = true;
            }
            if o.out_of_core {
                data.out_of_core = true;
            }
            if let Some(dir) = &o.cache_dir {
                data.cache_dir = Some(dir.clone());
            }
        }
        None => {
            if let (Some(flag), Task::Sine) = (line_flag, config.task) {
                return Err(Error::Misused {
                    flag,
                    message:
                        "describes the synthetic line, not --task sine (y = sin x, x in [0, 10))"
                            .into(),
                });
            }
            let csv_only = [
                ("--features", o.features.is_some()),
                ("--delimiter", o.delimiter.is_some()),
                ("--standardize/--no-standardize", o.standardize().is_some()),
                ("--val-frac", o.val_frac.is_some()),
                ("--drop-invalid-rows", o.drop_invalid_rows),
                ("--out-of-core", o.out_of_core),
                ("--cache-dir", o.cache_dir.is_some()),
                ("--epochs", o.epochs.is_some()),
            ];
            if let Some((name, _)) = csv_only.iter().find(|(_, given)| *given) {
                return Err(Error::Misused {
                    flag: name,
                    message: "applies to CSV data only: pass --data FILE.csv --target COLUMN"
                        .into(),
                });
            }
        }
    }
    Ok(())
}

/// The total step count to reach: `--steps` or `--epochs` (added to a checkpoint's count when
/// resuming), else the config's (a resumed run goes on to its own target).
fn resolve_steps(
    config: &TrainingConfig,
    o: &Overrides,
    resumed: Option<&Checkpoint>,
    table: Option<&PreparedTable>,
) -> Result<u64> {
    let asked = match (o.steps, o.epochs, table) {
        (Some(_), Some(epochs), _) => {
            return Err(invalid(
                "--epochs",
                epochs,
                "cannot be combined with --steps: give one of them",
            ));
        }
        (Some(steps), None, _) => Some(steps),
        (None, Some(0), _) => return Err(invalid("--epochs", 0, "must be at least 1")),
        (None, Some(epochs), Some(table)) => {
            let per_epoch = steps_per_epoch(table.train_rows(), config.batch);
            Some(epochs.checked_mul(per_epoch).ok_or_else(|| {
                invalid(
                    "--epochs",
                    epochs,
                    "too many: the step count must stay below 2^64",
                )
            })?)
        }
        (None, Some(_), None) => unreachable!("checked: --epochs needs --data"),
        (None, None, _) => None,
    };
    let Some(checkpoint) = resumed else {
        let steps = asked.unwrap_or(config.steps);
        if steps == 0 {
            return Err(invalid("--steps", 0, "must be at least 1"));
        }
        return Ok(steps);
    };
    let done = checkpoint.step();
    let more = match asked {
        Some(more) => more,
        None if config.steps > done => config.steps - done,
        None => {
            return Err(Error::Misused {
                flag: "--steps",
                message: format!(
                    "is needed: the checkpoint has reached its target of {} steps; pass --steps N to train N more",
                    config.steps
                ),
            });
        }
    };
    if more == 0 {
        return Err(invalid("--steps", 0, "must be at least 1"));
    }
    done.checked_add(more).ok_or_else(|| {
        invalid(
            "--steps",
            more,
            "too many: the checkpoint's step count plus --steps must stay below 2^64",
        )
    })
}

/// A resumed CSV run must train on the rows and columns it started with.
fn check_same_data(
    table: &PreparedTable,
    checkpoint: &Checkpoint,
    allow_change: bool,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some(old) = checkpoint.meta.as_ref().and_then(|m| m.data.as_ref()) else {
        return Ok(());
    };
    let new = table.record();
    if old.features != new.features {
        return Err(Error::ResumeChange {
            what: format!(
                "features [{}]: the checkpoint's model takes [{}]",
                new.features.join(", "),
                old.features.join(", ")
            ),
        });
    }
    let what = if old.hash != new.hash {
        Some(format!("content hash {} was {}", new.hash, old.hash))
    } else if old.rows != new.rows {
        Some(format!("{} rows, was {}", new.rows, old.rows))
    } else {
        None
    };
    if let Some(what) = what {
        if !allow_change {
            return Err(Error::DataChanged {
                path: table.file_name().to_owned(),
                what,
            });
        }
        notes.push(format!(
            "{} changed since the checkpoint ({what}); training on it as asked (--allow-data-change)",
            table.file_name()
        ));
    }
    Ok(())
}
