//! The command line: argument definitions and what each subcommand prints.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::Tensor;
use clap::{Args, Parser, Subcommand};

use crate::backend::{Backend, BackendChoice, BackendKind, probe_all};
use crate::bench::{self, BenchOptions};
use crate::checkpoint::{self, Checkpoint, Format, write_atomically};
use crate::config::{TableConfig, TrainingConfig};
use crate::console::Console;
use crate::engine::{Engine, EngineKind, Flow, LossPoint, Observer};
use crate::error::{Error, Result, invalid};
use crate::file_roles::FileRoles;
use crate::host::HostTensor;
use crate::model::{Activation, Network};
use crate::plan::{Overrides, TrainPlan, TrainRequest};
use crate::progress::{Progress, ProgressMode};
use crate::report::FitComparison;
use crate::signals;

/// Train regression models (a linear model or an MLP, on a synthetic task or your CSV) with burn
/// on ndarray, flex or wgpu, save checkpoints the autograd crate, Python and burn programs can
/// load, and benchmark the backends.
#[derive(Debug, Parser)]
#[command(name = "burnfit", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (on a noisy line, the sine task, or a CSV file) and save a checkpoint.
    Train(Box<TrainArgs>),
    /// Fit a CSV file by ordinary least squares (closed form, f64) and print the fit.
    Ols(OlsArgs),
    /// Print the model's prediction for each input.
    Predict(PredictArgs),
    /// Show what a checkpoint file holds.
    Inspect(InspectArgs),
    /// Draw the loss curve of a metrics file (`train --metrics`) as SVG.
    Plot(PlotArgs),
    /// Convert a checkpoint between formats (chosen by extension).
    Convert(ConvertArgs),
    /// List the compiled-in backends, whether each has a working device, and wgpu's adapter.
    Backends(BackendsArgs),
    /// Time the training loop on every backend, side by side with the autograd crate.
    Bench(BenchArgs),
}

/// `println!` through a [`Console`]: never panics on a closed or full stdout.
macro_rules! say {
    ($console:expr, $($arg:tt)*) => { $console.line(format_args!($($arg)*)) };
}

/// `--config`'s help: the keys a config file may hold, read off [`TrainingConfig`] itself.
fn config_help() -> String {
    let keys = |value: serde_json::Value| -> Vec<String> {
        match value {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let config = TrainingConfig::default();
    let top: Vec<String> = keys(serde_json::to_value(&config).expect("config serialises"));
    let data = keys(serde_json::to_value(TableConfig::new("", "")).expect("serialises"));
    format!(
        "JSON file with any of the settings (keys: {}, data: {{{}}}); flags given here override it",
        top.join(", "),
        data.join(", ")
    )
}

fn default_is(text: &str, value: impl std::fmt::Display) -> String {
    format!("{text} [default: {value}]")
}

/// `burnfit train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Backend to train on: `auto` takes a real GPU through wgpu when compiled in and present and
    /// the batch is at least 65,536 samples (1,048,576 with `--engine fused`; below that the CPU
    /// backends are faster), otherwise flex, otherwise ndarray [default: auto; with --resume,
    /// the backend that wrote the checkpoint when this build has it and it works]
    #[arg(long, value_enum, help_heading = "Run")]
    pub backend: Option<BackendChoice>,
    /// How each step runs: `autodiff` (burn's module and autodiff, the reference) or `fused`
    /// (the whole step as one hand-written pass: a CubeCL kernel on wgpu, a Rust loop on CPU)
    /// [default: autodiff; with --resume, the engine that wrote the checkpoint]
    #[arg(long, value_enum, help_heading = "Run")]
    pub engine: Option<EngineKind>,
    /// JSON file with any of the settings (its keys listed in --help); flags given here
    /// override it.
    #[arg(long, value_name = "FILE", help_heading = "Run", help = config_help())]
    pub config: Option<PathBuf>,
    /// Continue from a checkpoint (any format): its weights, Adam state, step count and config.
    /// With --resume, --steps counts the steps to add; without it, training runs on to the
    /// checkpoint's own target.
    #[arg(long, value_name = "CKPT", help_heading = "Run")]
    pub resume: Option<PathBuf>,
    /// The training settings (one definition each, in [`Overrides`]).
    #[command(flatten)]
    pub settings: Overrides,
    /// Resume a CSV run on a data file whose content differs from the checkpoint's.
    #[arg(long, help_heading = "Data")]
    pub allow_data_change: bool,
    /// Where to write the checkpoint, atomically; the extension picks the format: .json (the
    /// autograd crate's results.json), .safetensors (weights only) or .bpk (burnpack).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "results.json",
        help_heading = "Output"
    )]
    pub out: PathBuf,
    /// Write --out in this format whatever its extension.
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<Format>,
    /// Also write the checkpoint every K steps, so a killed run can resume from the last save.
    #[arg(
        long,
        value_name = "K",
        allow_negative_numbers = true,
        help_heading = "Output"
    )]
    pub save_every: Option<u64>,
    /// Write one row per logged step (step, loss, elapsed_s, lr, and val_loss for CSV data with
    /// validation rows) to FILE, as CSV (.csv) or JSON Lines (.jsonl), flushed as the run goes;
    /// with --resume, rows past the checkpoint's step are dropped and the run appends. The file
    /// is locked for the run.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub metrics: Option<PathBuf>,
    /// Draw the loss against the step (log scale; the validation loss too) to FILE (.svg only:
    /// PNG would need system font libraries). With --metrics, the whole history in that file.
    #[arg(long, value_name = "FILE.svg", help_heading = "Output")]
    pub plot: Option<PathBuf>,
    /// For a one-input linear model (the line, or a one-feature CSV): draw a sample of the data,
    /// the fitted line and, for the synthetic line, the true one, to FILE (.svg only).
    #[arg(long, value_name = "FILE.svg", help_heading = "Output")]
    pub plot_fit: Option<PathBuf>,
    /// Replace --out, --plot and --plot-fit even when write-protected (no write permission for
    /// anyone); let a fresh run replace an existing --metrics file, and a resumed run cut a
    /// --metrics file that is not its checkpoint's history.
    #[arg(long, help_heading = "Output")]
    pub force: bool,
    /// Show a live progress bar on stderr: `auto` when stdout and stderr are terminals,
    /// `always` when stderr is one, `never`
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = "Display")]
    pub progress: ProgressMode,
    /// Print no progress bar and no per-step loss lines (the summary still prints).
    #[arg(long, short, help_heading = "Display")]
    pub quiet: bool,
}

impl TrainArgs {
    /// What these flags ask for.
    pub fn request(&self) -> TrainRequest {
        TrainRequest {
            config_file: self.config.clone(),
            resume: self.resume.clone(),
            engine: self.engine,
            allow_data_change: self.allow_data_change,
            overrides: self.settings.clone(),
        }
    }
}

/// `burnfit ols`.
#[derive(Debug, Args)]
pub struct OlsArgs {
    /// The CSV file (header row required).
    #[arg(long, value_name = "FILE.csv")]
    pub data: String,
    /// The column to predict.
    #[arg(long, value_name = "COLUMN")]
    pub target: String,
    /// The feature columns, comma-separated [default: every column but the target]
    #[arg(long, value_delimiter = ',', value_name = "A,B,..")]
    pub features: Option<Vec<String>>,
    /// The field delimiter.
    #[arg(long, value_name = "CHAR", help = default_is("The field delimiter", TableConfig::new("", "").delimiter))]
    pub delimiter: Option<char>,
    /// Fraction of rows held out for validation (the same split `train` makes with this seed).
    #[arg(long, value_name = "F", allow_negative_numbers = true, help = default_is("Fraction of rows held out for validation (the same split `train` makes with this seed)", TableConfig::new("", "").val_frac))]
    pub val_frac: Option<f64>,
    /// Seed of the split.
    #[arg(long, value_name = "N", help = default_is("Seed of the split", TrainingConfig::default().seed))]
    pub seed: Option<u64>,
    /// Skip rows with an empty or non-numeric cell.
    #[arg(long)]
    pub drop_invalid_rows: bool,
}

/// `burnfit predict`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("inputs").required(true).args(["x", "data"])))]
pub struct PredictArgs {
    /// The checkpoint whose model predicts (any format).
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: PathBuf,
    /// Inputs, comma-separated (`--x 1,2.5,-3`), or `-` to read one number per line from stdin
    /// (one-input models).
    #[arg(
        long,
        value_name = "X,..",
        allow_hyphen_values = true,
        conflicts_with = "data"
    )]
    pub x: Option<String>,
    /// A CSV file with the feature columns the model was trained on (found by name); writes
    /// the input with a `prediction` column added.
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<PathBuf>,
    /// Write the --data predictions to this file (atomically) instead of stdout.
    #[arg(long, value_name = "FILE.csv", requires = "data")]
    pub out: Option<PathBuf>,
    /// The --data file's delimiter [default: the one the model was trained with, else ,]
    #[arg(long, value_name = "CHAR", requires = "data")]
    pub delimiter: Option<char>,
    /// The activation of an autograd-written MLP file (which does not record it) [default: tanh]
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Replace --out even when it is write-protected.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Backend to run on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
}

/// `burnfit plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A metrics file written by `train --metrics` (.csv or .jsonl).
    pub metrics: PathBuf,
    /// The chart to write (.svg only: PNG would need system font libraries).
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
    /// Replace --out even when it is write-protected.
    #[arg(long)]
    pub force: bool,
}

/// `burnfit inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `burnfit convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The checkpoint to read (.json, .safetensors or .bpk).
    pub input: PathBuf,
    /// The file to write; its extension picks the format.
    pub output: PathBuf,
    /// Write OUTPUT in this format whatever its extension.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Allow writing a format that cannot keep the optimizer state (SafeTensors), dropping it.
    #[arg(long)]
    pub drop_optimizer: bool,
    /// Replace OUTPUT even when it is write-protected (no write permission for anyone).
    #[arg(long)]
    pub force: bool,
}

/// `burnfit backends`.
#[derive(Debug, Args)]
pub struct BackendsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `burnfit bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Backends to time, comma-separated [default: every compiled-in backend]
    #[arg(long, value_enum, value_delimiter = ',')]
    pub backends: Option<Vec<BackendKind>>,
    /// Engines to time on each backend, comma-separated [default: autodiff,fused]
    #[arg(long, value_enum, value_delimiter = ',')]
    pub engines: Option<Vec<EngineKind>>,
    /// Batch sizes to sweep.
    #[arg(long, value_delimiter = ',', value_name = "N,..", help = default_is("Batch sizes to sweep", format!("{:?}", BenchOptions::default().batches)))]
    pub batches: Option<Vec<usize>>,
    /// Steps per timed run.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help = default_is("Steps per timed run", BenchOptions::default().steps))]
    pub steps: Option<u64>,
    /// Timed runs per row (median, min and max are reported).
    #[arg(long, value_name = "R", help = default_is("Timed runs per row (median, min and max are reported)", BenchOptions::default().repeat))]
    pub repeat: Option<usize>,
    /// Skip a row whose estimated time exceeds S seconds.
    #[arg(long, value_name = "S", help = default_is("Skip a row whose estimated time exceeds S seconds", BenchOptions::default().budget.as_secs()))]
    pub budget_s: Option<u64>,
    /// Leave out the autograd crate's row (it is included when built with `--features autograd-ref`)
    #[arg(long)]
    pub no_autograd: bool,
    /// Also write the rows and machine info as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Replace the --json and --plot files even when they are write-protected.
    #[arg(long)]
    pub force: bool,
    /// Draw µs per step against the batch size (log scales), one line per backend/engine and
    /// the autograd crate, to FILE (.svg only).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Also draw the rows of this benchmark JSON (`benches/torch_reference.py --json`, or an
    /// earlier `bench --json`) on the --plot chart; repeatable.
    #[arg(long, value_name = "FILE.json", requires = "plot")]
    pub plot_with: Vec<PathBuf>,
    /// Show a progress bar over the rows on stderr: auto, always or never.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

impl BenchArgs {
    /// The defaults with the flags applied.
    pub fn options(&self) -> Result<BenchOptions> {
        let mut options = BenchOptions::default();
        if let Some(backends) = &self.backends {
            options.backends = backends.clone();
        }
        if let Some(engines) = &self.engines {
            options.engines = engines.clone();
        }
        if let Some(batches) = &self.batches {
            options.batches = batches.clone();
        }
        options.steps = self.steps.unwrap_or(options.steps);
        options.repeat = self.repeat.unwrap_or(options.repeat);
        if self.budget_s == Some(0) {
            return Err(invalid("--budget-s", 0, "must be at least 1 second"));
        }
        if let Some(seconds) = self.budget_s {
            options.budget = Duration::from_secs(seconds);
        }
        options.autograd &= !self.no_autograd;
        if options.steps < 2 {
            return Err(invalid("--steps", options.steps, "must be at least 2"));
        }
        if options.repeat == 0 || options.repeat > 1000 {
            return Err(invalid(
                "--repeat",
                options.repeat,
                "must be from 1 to 1000",
            ));
        }
        if let Some(bad) = options
            .batches
            .iter()
            .find(|b| **b == 0 || **b > crate::config::MAX_BATCH)
        {
            return Err(invalid("--batches", bad, "must be sizes from 1 to 2^31"));
        }
        Ok(options)
    }
}

impl Command {
    /// The files this command line reads and writes, as its flags name them (a training run's
    /// data file may also come from its config file or checkpoint: see [`TrainArgs::file_roles`]).
    pub fn file_roles(&self) -> FileRoles {
        match self {
            Command::Train(args) => args.file_roles(None),
            Command::Predict(args) => FileRoles::new()
                .input("--checkpoint", Some(&args.checkpoint))
                .input("--data", args.data.as_deref())
                .output("--out", args.out.as_deref()),
            Command::Plot(args) => FileRoles::new()
                .input("METRICS", Some(&args.metrics))
                .output("--out", Some(&args.out)),
            // Converting in place is safe: the input is read whole before it is replaced.
            Command::Convert(args) => FileRoles::new()
                .input("INPUT", Some(&args.input))
                .output("OUTPUT", Some(&args.output))
                .replaceable("INPUT", "OUTPUT"),
            Command::Bench(args) => FileRoles::new()
                .inputs("--plot-with", &args.plot_with)
                .output("--json", args.json.as_deref())
                .output("--plot", args.plot.as_deref()),
            Command::Ols(_) | Command::Inspect(_) | Command::Backends(_) => FileRoles::new(),
        }
    }
}

impl TrainArgs {
    /// The files a training run reads and writes; `data`: the data file once the plan knows it
    /// (from --data, the config file or the checkpoint). `--out` may replace `--resume`: a run
    /// continues in place.
    fn file_roles(&self, data: Option<&Path>) -> FileRoles {
        FileRoles::new()
            .input("--config", self.config.as_deref())
            .input("--resume", self.resume.as_deref())
            .input(
                "--data",
                data.or(self.settings.data.as_deref().map(Path::new)),
            )
            .output("--out", Some(&self.out))
            .output("--metrics", self.metrics.as_deref())
            .output("--plot", self.plot.as_deref())
            .output("--plot-fit", self.plot_fit.as_deref())
            .replaceable("--resume", "--out")
    }
}

/// Runs a parsed command line, printing to stdout.
pub fn run(cli: Cli) -> Result<()> {
    // No output may overwrite an input or another output: one check for every subcommand.
    cli.command.file_roles().check()?;
    match cli.command {
        Command::Train(args) => run_train(&args),
        Command::Ols(args) => run_ols(&args),
        Command::Predict(args) => run_predict(&args),
        Command::Inspect(args) => run_inspect(&args),
        Command::Plot(args) => run_plot(&args),
        Command::Convert(args) => run_convert(&args),
        Command::Backends(args) => run_backends(&args),
        Command::Bench(args) => run_bench(&args),
    }
}

/// Prints losses, saves every K steps, and stops on Ctrl-C.
struct TrainObserver<'a> {
    out: &'a Path,
    format: Format,
    save_every: Option<u64>,
    force: bool,
    console: Console,
    /// The last fallback file written this run, if any.
    rescued: std::cell::RefCell<Option<PathBuf>>,
    progress: Progress,
    quiet: bool,
    /// The metrics file, when asked for.
    metrics: Option<crate::metrics_log::MetricsLog>,
    /// Every row of this run (for `--plot` without `--metrics`).
    rows: Vec<crate::metrics_log::MetricsRow>,
    /// Whether rows carry the validation loss (a CSV run with validation rows, and a file or
    /// plot that will show it).
    with_val: bool,
    /// The loss read back at the last logged step, waiting for its row.
    pending: Option<LossPoint>,
    started: std::time::Instant,
}

impl TrainObserver<'_> {
    fn save(&self, checkpoint: Checkpoint) -> Result<()> {
        let mut checkpoint = checkpoint.with_data_path_beside(self.out);
        if !self.format.keeps_optimizer() {
            checkpoint = checkpoint.without_optimizer();
        }
        checkpoint.save_replacing(self.out, self.format, self.force)
    }

    /// Saves to `--out`; when that cannot be written after all (its directory was removed or
    /// made read-only during the run, the disk is full), the checkpoint goes to a fallback file
    /// in the system's temporary directory rather than being lost, and the error says where.
    fn save_or_rescue(&self, checkpoint: Checkpoint) -> Result<()> {
        match self.save(checkpoint.clone()) {
            Err(original @ Error::CheckpointWrite { .. }) => {
                let extension = match self.format {
                    Format::Json => ".json",
                    Format::Safetensors => ".safetensors",
                    Format::Bpk => ".bpk",
                };
                let mut checkpoint = checkpoint;
                if !self.format.keeps_optimizer() {
                    checkpoint = checkpoint.without_optimizer();
                }
                // A fresh file with a random name, written through its descriptor: a name
                // others could predict in a shared /tmp would let them redirect the write.
                let rescue = checkpoint
                    .check_finite()
                    .and_then(|()| {
                        checkpoint
                            .to_bytes(self.format)
                            .map_err(|message| Error::CheckpointWrite {
                                path: self.out.to_owned(),
                                message,
                            })
                    })
                    .and_then(|bytes| {
                        checkpoint::write_new_temp_file("burnfit-rescued-", extension, &bytes)
                    });
                match rescue {
                    Ok(rescued) => {
                        // Keep only the newest rescue of this run.
                        if let Some(older) = self.rescued.replace(Some(rescued.clone())) {
                            let _ = std::fs::remove_file(older);
                        }
                        Err(Error::SavedElsewhere {
                            original: Box::new(original),
                            rescued,
                        })
                    }
                    // Both failed: the first cause matters most; name the second too.
                    Err(fallback) => Err(Error::CheckpointWrite {
                        path: self.out.to_owned(),
                        message: format!("{original}; the fallback failed as well: {fallback}"),
                    }),
                }
            }
            other => other,
        }
    }
}

impl TrainObserver<'_> {
    /// The row of a logged step: to the metrics file (flushed) and kept for `--plot`.
    fn record(&mut self, point: LossPoint, trainer: &dyn Engine) -> Result<()> {
        let mut extra = Vec::new();
        if self.with_val
            && let Some(table) = trainer.table()
        {
            let (spec, params) = trainer.model_in_data_units()?;
            let quality = table.quality(&spec, &params, &table.val);
            extra.push((crate::metrics_log::VAL_LOSS.to_string(), quality.mse));
        }
        let row = crate::metrics_log::MetricsRow {
            step: point.step,
            loss: point.loss,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            lr: trainer.config().lr,
            extra,
        };
        if let Some(metrics) = &mut self.metrics {
            metrics.append(&row)?;
        }
        self.rows.push(row);
        Ok(())
    }
}

impl Observer for TrainObserver<'_> {
    fn on_loss(&mut self, p: LossPoint) {
        self.pending = Some(p);
        // The position of the step whose loss the bar shows.
        self.progress.set_position(p.step);
        self.progress.set_message(format!("loss {:.6}", p.loss));
        if !self.quiet {
            let console = &mut self.console;
            self.progress
                .suspend(|| console.line(format_args!("step {:>6}  loss {:.6}", p.step, p.loss)));
        }
    }

    fn checkpoint_every(&self) -> Option<u64> {
        self.save_every
    }

    fn after_step(&mut self, trainer: &dyn Engine) -> Result<Flow> {
        self.progress.set_position(trainer.step());
        // The metrics are a side channel: a failure to write them must not cost the run.
        if let Some(point) = self.pending.take()
            && let Err(problem) = self.record(point, trainer)
            && self.metrics.is_some()
        {
            let message = crate::console::escape_controls(&problem.to_string());
            let _ = writeln!(
                std::io::stderr(),
                "warning: {message}; training goes on without the metrics file"
            );
            self.metrics = None;
        }
        if signals::received().is_some() {
            return Ok(Flow::Stop);
        }
        // The last step is saved once, by the caller.
        if let Some(k) = self.save_every
            && trainer.step().is_multiple_of(k)
            && trainer.step() < trainer.config().steps
        {
            // A periodic save that fails must not end the run: the checkpoint goes to the
            // fallback file, a warning says so, and training goes on (the next save tries
            // --out again).
            match self.save_or_rescue(trainer.checkpoint()?) {
                Ok(()) => {
                    let line = format!("saved {} at step {}", self.out.display(), trainer.step());
                    let console = &mut self.console;
                    self.progress.suspend(|| console.line(line));
                }
                Err(rescued @ Error::SavedElsewhere { .. }) => {
                    let message = crate::console::escape_controls(&rescued.to_string());
                    let _ = writeln!(std::io::stderr(), "warning: {message}; training goes on");
                }
                Err(other) => return Err(other),
            }
        }
        Ok(Flow::Continue)
    }
}

fn run_train(args: &TrainArgs) -> Result<()> {
    let mut console = Console::default();
    checkpoint::check_destination(&args.out, args.force)?;
    for path in [&args.plot, &args.plot_fit].into_iter().flatten() {
        crate::plot::check_svg_path(path, args.force)?;
    }
    if let Some(path) = &args.metrics {
        crate::metrics_log::MetricsFormat::from_path(path)?;
    }
    let format = match args.format {
        Some(format) => format,
        None => Format::from_path(&args.out)?,
    };
    if args.save_every == Some(0) {
        return Err(invalid("--save-every", 0, "must be at least 1"));
    }
    let plan = TrainPlan::resolve(&args.request())?;
    // The data file may come from the config file or the checkpoint: checked again with it.
    let data_path = plan.config.data.as_ref().map(|d| PathBuf::from(&d.path));
    args.file_roles(data_path.as_deref()).check()?;
    if let (Some(path), Some(checkpoint)) = (&args.metrics, &plan.resumed)
        && !args.force
    {
        let last_loss = checkpoint.meta.as_ref().and_then(|m| m.final_loss);
        crate::metrics_log::check_continues(path, checkpoint.step(), last_loss)?;
    }
    for note in &plan.notes {
        console.line(format_args!("note: {note}"));
    }
    if let Some(table) = &plan.table {
        let t = &table.table;
        console.line(format_args!(
            "data: {} — {} rows ({} training, {} validation){}, features [{}], target `{}`{}",
            t.file_name,
            t.rows(),
            table.train.len(),
            table.val.len(),
            if t.dropped_rows > 0 {
                let s = if t.dropped_rows == 1 { "" } else { "s" };
                format!(", {} invalid row{s} dropped", t.dropped_rows)
            } else {
                String::new()
            },
            t.feature_names
                .iter()
                .map(|n| abbreviate(n))
                .collect::<Vec<_>>()
                .join(", "),
            abbreviate(&t.target_name),
            if table.scaling.is_some() {
                ", standardized"
            } else {
                ""
            }
        ));
    }
    let (backend, note) = plan.backend(args.backend)?;
    if let Some(note) = note {
        let _ = writeln!(
            std::io::stderr(),
            "note: {}",
            crate::console::escape_controls(&note)
        );
    }
    let TrainPlan {
        config,
        engine,
        resumed,
        table,
        ..
    } = plan;
    let spec = config.model_spec(table.as_ref().map_or(1, |t| t.d()));
    if args.plot_fit.is_some() && spec != crate::model::ModelSpec::linear(1) {
        return Err(invalid(
            "--plot-fit",
            spec.describe(),
            "draws one-input linear models only (the line, or a CSV with one feature)",
        ));
    }
    let with_val = table.as_ref().is_some_and(|t| !t.val.is_empty())
        && (args.metrics.is_some() || args.plot.is_some());
    let extra: &[&str] = if with_val {
        &[crate::metrics_log::VAL_LOSS]
    } else {
        &[]
    };
    let metrics = match (&args.metrics, &resumed) {
        (None, _) => None,
        (Some(path), None) => Some(crate::metrics_log::MetricsLog::create(
            path, extra, args.force,
        )?),
        (Some(path), Some(checkpoint)) => Some(crate::metrics_log::MetricsLog::resume(
            path,
            extra,
            checkpoint.step(),
        )?),
    };
    let mut trainer =
        crate::session::open_engine_with(engine, config, backend, table, resumed.as_ref())?;
    let target = trainer.config().steps;
    console.line(format_args!(
        "training on {} with the {} engine: {} model, steps {}..{}, batch {}, lr {}, seed {}",
        trainer.backend().describe(),
        trainer.kind(),
        spec.describe(),
        trainer.step() + 1,
        target,
        trainer.config().batch,
        trainer.config().lr,
        trainer.config().seed
    ));
    // Without the handlers a signal still stops the run, only without the final save.
    let _ = signals::install();
    let mut observer = TrainObserver {
        out: &args.out,
        format,
        save_every: args.save_every,
        force: args.force,
        console,
        rescued: Default::default(),
        progress: Progress::steps(args.progress.enabled(args.quiet), trainer.step(), target),
        quiet: args.quiet,
        metrics,
        rows: Vec::new(),
        with_val,
        pending: None,
        started: std::time::Instant::now(),
    };
    let remaining = target - trainer.step();
    let run = trainer.run(remaining, &mut observer);
    observer.progress.finish();
    let run = run?;
    if run.stopped {
        observer.save_or_rescue(trainer.checkpoint()?)?;
        observer.console.warn_if_lost();
        return Err(Error::Interrupted {
            step: trainer.step(),
            saved: Some(args.out.clone()),
            signal: signals::received().unwrap_or(signal_hook::consts::SIGINT),
        });
    }
    let checkpoint = trainer.checkpoint()?;
    let console = &mut observer.console;
    if checkpoint.spec == crate::model::ModelSpec::linear(1) {
        console.line(format_args!(
            "final w = {:.6}  b = {:.6}",
            checkpoint.params[0].data[0], checkpoint.params[1].data[0]
        ));
    }
    if let Some(table) = trainer.table() {
        let comparison = FitComparison::of(table, &checkpoint);
        print_comparison(console, table, &comparison);
        if table.is_scaled()
            && let Some(scaled) = checkpoint
                .meta
                .as_ref()
                .and_then(|m| m.data.as_ref())
                .and_then(|d| d.training_space.as_ref())
        {
            // The trained model, before its parameters were folded into data units in f32.
            let mut params = checkpoint.named_params();
            for p in &mut params {
                if let Some(values) = scaled.get(&p.name) {
                    p.value.data = values.clone();
                }
            }
            let trained = table.training_space_mse(&checkpoint.spec, &params);
            if comparison.model.train.mse > 1.01 * trained {
                console.line(format_args!(
                    "note: the saved model (f32, the data's units) has training MSE {:.6}, the trained one {trained:.6}: a feature's mean is large next to its spread (a timestamp?); subtract an offset from it before fitting to keep the precision",
                    comparison.model.train.mse
                ));
            }
        }
    } else if checkpoint.spec != crate::model::ModelSpec::linear(1)
        && let Some(loss) = run.final_loss()
    {
        console.line(format_args!(
            "final loss {loss:.6} (step {})",
            trainer.step()
        ));
    }
    console.line(format_args!(
        "{} steps in {:.3} s (first step {:.1} ms)",
        run.steps,
        run.total.as_secs_f64(),
        run.first_step.as_secs_f64() * 1e3
    ));
    observer.save_or_rescue(checkpoint.clone())?;
    let console = &mut observer.console;
    if !format.keeps_optimizer() {
        console.line(format_args!(
            "note: {format} keeps no optimizer state; resuming from it restarts Adam"
        ));
    }
    console.line(format_args!("saved {} ({format})", args.out.display()));
    if let Some(path) = &args.plot {
        // The whole history when a metrics file holds it (a resumed run's earlier rows too).
        let rows = match &args.metrics {
            Some(metrics) => crate::metrics_log::read_metrics(metrics)?,
            None => std::mem::take(&mut observer.rows),
        };
        crate::plot::loss_chart(&crate::plot::loss_series(&rows), path, args.force)?;
        observer
            .console
            .line(format_args!("wrote {}", path.display()));
    }
    if let Some(path) = &args.plot_fit {
        plot_fit(trainer.as_ref(), &checkpoint, path, args.force)?;
        observer
            .console
            .line(format_args!("wrote {}", path.display()));
    }
    let console = &mut observer.console;
    console.warn_if_lost();
    Ok(())
}

/// `--plot-fit`: data points, the fitted line and (synthetic data) the true line.
fn plot_fit(trainer: &dyn Engine, checkpoint: &Checkpoint, out: &Path, force: bool) -> Result<()> {
    let fitted = (
        f64::from(checkpoint.params[0].data[0]),
        f64::from(checkpoint.params[1].data[0]),
    );
    let config = trainer.config();
    let (points, truth): (Vec<(f64, f64)>, _) = match trainer.table() {
        Some(table) => {
            let t = &table.table;
            let points = (0..t.rows()).map(|r| (t.row(r)[0], t.y[r])).collect();
            (points, None)
        }
        None => {
            let sample = config.line_stream();
            let (x, y) = sample.batch(1, config.batch.min(crate::plot::FIT_SAMPLE));
            let points = x
                .iter()
                .zip(&y)
                .map(|(x, y)| (f64::from(*x), f64::from(*y)))
                .collect();
            (
                points,
                Some((f64::from(config.true_w), f64::from(config.true_b))),
            )
        }
    };
    crate::plot::fit_chart(&points, fitted, truth, out, force)
}

fn run_plot(args: &PlotArgs) -> Result<()> {
    crate::plot::check_svg_path(&args.out, args.force)?;
    let rows = crate::metrics_log::read_metrics(&args.metrics)?;
    crate::plot::loss_chart(&crate::plot::loss_series(&rows), &args.out, args.force)?;
    let mut console = Console::default();
    say!(
        console,
        "wrote {} ({} rows of {})",
        args.out.display(),
        rows.len(),
        args.metrics.display()
    );
    console.finish()
}

fn run_predict(args: &PredictArgs) -> Result<()> {
    if let Some(data) = &args.data {
        return run_predict_csv(args, data);
    }
    let Some(x) = args.x.as_deref() else {
        return Err(Error::InvalidInput {
            what: "to predict".into(),
            message:
                "give the inputs with --x X,.. (or --x - for stdin), or a CSV with --data FILE.csv"
                    .into(),
        });
    };
    // A list is checked before any work; stdin is streamed in chunks, so an endless stream
    // (`yes 1 | burnfit predict --x -`) prints as it goes in bounded memory.
    let listed = (x != "-").then(|| parse_list(x)).transpose()?;
    let checkpoint = load_for_predict(args)?;
    if checkpoint.spec.d_in != 1 {
        let features = checkpoint
            .meta
            .as_ref()
            .and_then(|m| m.data.as_ref())
            .map_or(String::new(), |d| format!(" ({})", d.features.join(", ")));
        return Err(Error::InvalidInput {
            what: "--x".into(),
            message: format!(
                "the model takes {} features{features}; pass them as a CSV with --data",
                checkpoint.spec.d_in
            ),
        });
    }
    let backend = Backend::choose(args.backend)?;
    let model = Network::from_host(&checkpoint.spec, &checkpoint.params, &backend.device);
    let mut console = Console::default();
    let predict = |inputs: Vec<f32>, console: &mut Console| -> Result<()> {
        let x = HostTensor::new(vec![inputs.len(), 1], inputs).to_tensor::<2>(&backend.device);
        let z: Tensor<2> = model.forward(x.clone());
        let predictions = HostTensor::from_tensor(z)?.data;
        let inputs = HostTensor::from_tensor(x)?.data;
        if let Some((x, z)) = inputs
            .iter()
            .zip(&predictions)
            .find(|(_, z)| !z.is_finite())
        {
            return Err(Error::InvalidInput {
                what: format!("--x value {x}"),
                message: format!("its prediction ({z}) is out of f32 range"),
            });
        }
        for value in predictions {
            console.line(value);
        }
        Ok(())
    };
    match listed {
        Some(values) => predict(values, &mut console)?,
        None => {
            // Predicted a chunk at a time; a chunk is cut short whenever stdin has nothing
            // more to read yet (an interactive user, a slow producer), and before an error, so
            // every valid line before a bad one gets its prediction.
            const CHUNK: usize = 65_536;
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut any = false;
            // Our own buffer (larger than stdin's, which reads past it), to see what it holds.
            let mut stdin = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
            let mut line = Vec::new();
            let mut number = 0;
            loop {
                line.clear();
                let read = (&mut stdin)
                    .take(MAX_STDIN_LINE + 1)
                    .read_until(b'\n', &mut line);
                let parsed = match read {
                    Ok(0) => break,
                    Ok(_) => {
                        number += 1;
                        let what = || format!("on stdin line {number}");
                        let text = if number == 1 {
                            line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&line)
                        } else {
                            &line[..]
                        };
                        if line.len() as u64 > MAX_STDIN_LINE {
                            Err(Error::InvalidInput {
                                what: what(),
                                message: format!(
                                    "the line is longer than {} KiB",
                                    MAX_STDIN_LINE >> 10
                                ),
                            })
                        } else if let Ok(text) = std::str::from_utf8(text) {
                            if text.trim().is_empty() {
                                Ok(None)
                            } else {
                                parse_number(what(), text).map(Some)
                            }
                        } else {
                            Err(Error::InvalidInput {
                                what: what(),
                                message: "is not UTF-8 text".into(),
                            })
                        }
                    }
                    Err(e) => Err(Error::Stdin(e.to_string())),
                };
                match parsed {
                    Ok(Some(value)) => chunk.push(value),
                    Ok(None) => {}
                    Err(problem) => {
                        if !chunk.is_empty() {
                            predict(std::mem::take(&mut chunk), &mut console)?;
                        }
                        console.flush();
                        return Err(problem);
                    }
                }
                if !chunk.is_empty() && (chunk.len() == CHUNK || !stdin_has_more(&stdin)) {
                    predict(std::mem::take(&mut chunk), &mut console)?;
                    console.flush();
                    any = true;
                    if console.is_lost() {
                        break;
                    }
                }
            }
            if !chunk.is_empty() {
                predict(chunk, &mut console)?;
            } else if !any {
                return Err(Error::InvalidInput {
                    what: "on stdin".into(),
                    message: "no numbers given".into(),
                });
            }
        }
    }
    console.finish()
}

/// The longest line `predict --x -` reads: a number is a few dozen bytes.
const MAX_STDIN_LINE: u64 = 64 << 10;

/// Whether stdin can give more bytes at once: buffered ones, or ones waiting in the pipe or
/// file (a zero-timeout `poll`). When not, the caller prints what it has before it waits.
fn stdin_has_more(stdin: &std::io::BufReader<std::io::StdinLock>) -> bool {
    if !stdin.buffer().is_empty() {
        return true;
    }
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut fd, 1, 0) == 1 && fd.revents & libc::POLLIN != 0 }
}

/// One number a user typed, finite and within f32's range.
fn parse_number(what: String, text: &str) -> Result<f32> {
    let shown = abbreviate(text.trim());
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        // "nan", "inf", "infinity": not numbers a model takes.
        Ok(v) if v.is_nan() || !shown.bytes().any(|b| b.is_ascii_digit()) => {
            Err(Error::InvalidInput {
                what,
                message: format!("{shown:?} is not a finite number"),
            })
        }
        Ok(_) => Err(Error::InvalidInput {
            what,
            message: format!("{shown:?} is out of f32 range (about ±3.4e38)"),
        }),
        Err(_) => Err(Error::InvalidInput {
            what,
            message: format!("{shown:?} is not a number"),
        }),
    }
}

/// `1,2,3`: the numbers of `--x`.
fn parse_list(spec: &str) -> Result<Vec<f32>> {
    let values: Vec<f32> = spec
        .split(',')
        .enumerate()
        .map(|(i, item)| parse_number(format!("in --x (item {})", i + 1), item))
        .collect::<Result<_>>()?;
    if values.is_empty() {
        return Err(Error::InvalidInput {
            what: "--x".into(),
            message: "no numbers given".into(),
        });
    }
    Ok(values)
}

/// At most 40 characters of a user's input, for an error message (a 5 MB line must not make a
/// 5 MB message).
fn abbreviate(text: &str) -> String {
    const KEEP: usize = 40;
    match text.char_indices().nth(KEEP) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn run_inspect(args: &InspectArgs) -> Result<()> {
    let inspection = checkpoint::inspect(&args.checkpoint)?;
    let mut console = Console::default();
    if args.json {
        console.block(&serde_json::to_string_pretty(&inspection).expect("inspection serialises"));
        return console.finish();
    }
    say!(console, "file: {}", args.checkpoint.display());
    say!(console, "format: {}", inspection.format);
    if !inspection.namespaces.is_empty() {
        let names: Vec<&str> = inspection
            .namespaces
            .iter()
            .map(|n| {
                if n.is_empty() {
                    "(default)"
                } else {
                    n.as_str()
                }
            })
            .collect();
        say!(console, "namespaces: {}", names.join(", "));
    }
    say!(console, "variables:");
    for v in &inspection.variables {
        say!(
            console,
            "  {:<24} {:<10} {:?}",
            v.name,
            format!("{:?}", v.shape),
            v.first_values
        );
    }
    match (
        &inspection.model,
        &inspection.architecture,
        &inspection.model_error,
    ) {
        (Some([w, b]), _, _) => say!(console, "model: w = {w}, b = {b}"),
        (None, Some(architecture), _) => say!(console, "model: {architecture}"),
        (None, None, Some(problem)) => say!(console, "model: not loadable: {problem}"),
        (None, None, None) => say!(console, "model: not found"),
    }
    match inspection.optimizer_updates {
        Some(updates) => say!(
            console,
            "optimizer: Adam, {updates} updates (t = {})",
            updates.saturating_add(1)
        ),
        None => say!(console, "optimizer: none"),
    }
    if !inspection.others.is_empty() {
        say!(
            console,
            "not part of the model: {}",
            inspection.others.join(", ")
        );
    }
    match (&inspection.metadata, &inspection.metadata_error) {
        (Some(meta), _) => say!(
            console,
            "burnfit metadata: {}",
            serde_json::to_string(meta).expect("json")
        ),
        (None, Some(problem)) => say!(console, "burnfit metadata: not readable: {problem}"),
        (None, None) => say!(console, "burnfit metadata: none"),
    }
    console.finish()
}

fn run_convert(args: &ConvertArgs) -> Result<()> {
    checkpoint::check_destination(&args.output, args.force)?;
    let format = match args.format {
        Some(format) => format,
        None => Format::from_path(&args.output)?,
    };
    let mut checkpoint =
        Checkpoint::load(&args.input)?.with_data_path_moved(&args.input, &args.output);
    if checkpoint.adam.is_some() && !format.keeps_optimizer() {
        if !args.drop_optimizer {
            return Err(Error::LossyConversion {
                from: args.input.clone(),
                to: format.to_string(),
            });
        }
        checkpoint = checkpoint.without_optimizer();
    }
    checkpoint.save_replacing(&args.output, format, args.force)?;
    let mut console = Console::default();
    say!(console, "wrote {} ({format})", args.output.display());
    // Variables of other namespaces or models are not carried over: say which.
    let others = checkpoint::inspect(&args.input)?.others;
    if !others.is_empty() {
        say!(
            console,
            "note: left out (not the model's nor its Adam's): {}",
            others.join(", ")
        );
    }
    console.finish()
}

fn run_backends(args: &BackendsArgs) -> Result<()> {
    let statuses = probe_all();
    let mut console = Console::default();
    if args.json {
        console.block(&serde_json::to_string_pretty(&statuses).expect("statuses serialise"));
        return console.finish();
    }
    for status in statuses {
        let state = if status.working {
            "working"
        } else {
            "NOT working"
        };
        let detail = match (&status.adapter, &status.problem) {
            (Some(a), _) => format!("adapter: {} ({}, {})", a.name, a.device_type, a.api),
            (None, Some(problem)) => problem.clone(),
            (None, None) => "cpu".to_string(),
        };
        say!(
            console,
            "{:<8} {:<12} {}",
            status.kind.name(),
            state,
            detail
        );
    }
    console.finish()
}

fn run_bench(args: &BenchArgs) -> Result<()> {
    let options = args.options()?;
    if let Some(path) = &args.json {
        checkpoint::check_destination(path, args.force)?;
    }
    if let Some(path) = &args.plot {
        crate::plot::check_svg_path(path, args.force)?;
    }
    let mut extra_series = Vec::new();
    for path in &args.plot_with {
        extra_series.extend(crate::plot::bench_series(path)?);
    }
    for kind in &options.backends {
        Backend::open(*kind)?;
    }
    let mut console = Console::default();
    if !cfg!(feature = "autograd-ref") {
        say!(
            console,
            "note: the autograd crate's reference row is not in this build (build with --features autograd-ref)"
        );
    }
    let mut printed_header = false;
    let rows = options.backends.len() * options.engines.len() * options.batches.len()
        + if options.autograd && cfg!(feature = "autograd-ref") {
            options.batches.len()
        } else {
            0
        };
    let progress = Progress::rows(args.progress.enabled(false), rows as u64);
    let mut done = 0;
    let report = bench::run(&options, &mut |event| {
        let row = match event {
            bench::BenchEvent::Starting { system, batch } => {
                progress.set_message(format!("running {system} at batch {batch}"));
                return;
            }
            bench::BenchEvent::Measured(row) => row,
        };
        done += 1;
        progress.set_position(done);
        let table = bench::format_table(std::slice::from_ref(row));
        let mut lines = table.lines();
        let header = lines.next().unwrap_or_default();
        progress.suspend(|| {
            if !printed_header {
                say!(console, "{header}");
                printed_header = true;
            }
            for line in lines {
                say!(console, "{line}");
            }
        });
    })?;
    progress.finish();
    say!(
        console,
        "machine: {} ({} cores){}; fused CPU loop {}; burnfit {}, burn {}",
        report.machine.cpu_model,
        report.machine.cores,
        report
            .machine
            .adapter
            .as_ref()
            .map_or(String::new(), |a| format!(", wgpu adapter {a}")),
        report.machine.fused_cpu_loop,
        report.machine.burnfit_version,
        report.machine.burn_version
    );
    if let Some(path) = &args.json {
        let bytes = serde_json::to_vec_pretty(&report).expect("report serialises");
        write_atomically(path, &bytes, args.force)?;
        say!(console, "wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let bytes = serde_json::to_vec(&report).expect("report serialises");
        let mut series = crate::plot::bench_series_from_json(&bytes, path)?;
        series.extend(extra_series);
        crate::plot::bench_chart(&series, path, args.force)?;
        say!(console, "wrote {}", path.display());
    }
    console.finish()
}

/// R² with `decimals`, or `n/a` where it is undefined (a constant target).
fn r2_text(r2: f64, decimals: usize) -> String {
    if r2.is_nan() {
        "n/a".into()
    } else {
        format!("{r2:.decimals$}")
    }
}

/// Prints a CSV fit's quality next to the closed form's.
fn print_comparison(console: &mut Console, table: &crate::data::PreparedTable, c: &FitComparison) {
    let row = |name: &str, q: &crate::report::SplitQuality| {
        let val = q.val.map_or("   (no validation rows)".to_string(), |v| {
            format!(
                "{:>12.6} {:>10.6} {:>10.6} {:>8}",
                v.mse,
                v.rmse,
                v.mae,
                r2_text(v.r2, 5)
            )
        });
        format!(
            "  {name:<18} {:>12.6} {:>10.6} {:>10.6} {:>8} | {val}",
            q.train.mse,
            q.train.rmse,
            q.train.mae,
            r2_text(q.train.r2, 5)
        )
    };
    say!(
        console,
        "fit quality        {:>12} {:>10} {:>10} {:>8} | {:>12} {:>10} {:>10} {:>8}",
        "train MSE",
        "RMSE",
        "MAE",
        "R²",
        "val MSE",
        "RMSE",
        "MAE",
        "R²"
    );
    console.line(row("burnfit (Adam)", &c.model));
    match &c.ols {
        Ok((fit, quality)) => {
            console.line(row("OLS (closed form)", quality));
            if let Some(gap) = c.train_gap() {
                say!(
                    console,
                    "training MSE {:+.3} % relative to the closed form",
                    gap * 100.0
                );
            }
            if let Some((w, b)) = &c.model_coefficients {
                say!(
                    console,
                    "coefficients       {:>14} {:>14}",
                    "burnfit",
                    "OLS"
                );
                for ((name, model), ols) in
                    table.table.feature_names.iter().zip(w).zip(&fit.weights)
                {
                    say!(console, "  {name:<16} {model:>14.6} {ols:>14.6}");
                }
                say!(
                    console,
                    "  {:<16} {b:>14.6} {:>14.6}",
                    "(intercept)",
                    fit.bias
                );
            }
        }
        Err(problem) => say!(console, "OLS (closed form): not available: {problem}"),
    }
}

fn run_ols(args: &OlsArgs) -> Result<()> {
    if let Some(features) = &args.features
        && features.iter().any(|f| f.trim().is_empty())
    {
        return Err(invalid(
            "--features",
            features.join(","),
            "must be column names separated by commas, none of them empty",
        ));
    }
    let mut data = crate::config::TableConfig::new(args.data.clone(), args.target.clone());
    data.features = args.features.clone();
    data.standardize = false;
    if let Some(d) = args.delimiter {
        data.delimiter = d;
    }
    if let Some(f) = args.val_frac {
        data.val_frac = f;
    }
    data.drop_invalid_rows = args.drop_invalid_rows;
    let config = TrainingConfig {
        seed: args.seed.unwrap_or(TrainingConfig::default().seed),
        data: Some(data.clone()),
        ..TrainingConfig::default()
    };
    config.validate()?;
    let table = crate::data::PreparedTable::load(&data, config.seed)?;
    let (fit, quality) = crate::report::ols_fit(&table).map_err(|message| Error::Data {
        path: PathBuf::from(&data.path),
        message,
    })?;
    let mut console = Console::default();
    let t = &table.table;
    say!(
        console,
        "OLS fit of `{}` on {} training rows of {} ({} validation rows)",
        t.target_name,
        table.train.len(),
        t.file_name,
        table.val.len()
    );
    for (name, w) in t.feature_names.iter().zip(&fit.weights) {
        say!(console, "  {name:<16} {w:>16.8}");
    }
    say!(console, "  {:<16} {:>16.8}", "(intercept)", fit.bias);
    let show = |q: crate::fit_quality::FitQuality| {
        format!(
            "MSE {:.6}  RMSE {:.6}  MAE {:.6}  R² {}",
            q.mse,
            q.rmse,
            q.mae,
            r2_text(q.r2, 6)
        )
    };
    if t.dropped_rows > 0 {
        say!(
            console,
            "dropped {} rows with an invalid cell",
            t.dropped_rows
        );
    }
    say!(console, "train: {}", show(quality.train));
    if let Some(val) = quality.val {
        say!(console, "validation: {}", show(val));
    }
    console.finish()
}

/// The checkpoint `predict` uses; `--activation` only for a file that does not record one.
fn load_for_predict(args: &PredictArgs) -> Result<Checkpoint> {
    let checkpoint = Checkpoint::load(&args.checkpoint)?;
    if let (Some(asked), Some(meta)) = (args.activation, &checkpoint.meta)
        && (checkpoint.spec.is_linear() || asked != meta.config.activation)
    {
        return Err(Error::InvalidInput {
            what: "--activation".into(),
            message: format!(
                "{} records its model ({}); --activation is for files that do not",
                args.checkpoint.display(),
                checkpoint.spec.describe()
            ),
        });
    }
    Ok(checkpoint.with_activation(args.activation.unwrap_or_default()))
}

/// `predict --data`: the input rows with a `prediction` column, to `--out` or stdout.
fn run_predict_csv(args: &PredictArgs, data: &Path) -> Result<()> {
    if let Some(out) = &args.out {
        checkpoint::check_destination(out, args.force)?;
    }
    let checkpoint = load_for_predict(args)?;
    let record = checkpoint.meta.as_ref().and_then(|m| m.data.as_ref());
    let features: Vec<String> = match record {
        Some(record) => record.features.clone(),
        None if checkpoint.spec.d_in == 1 => vec!["x".into()],
        None => {
            return Err(Error::InvalidInput {
                what: format!("--checkpoint {}", args.checkpoint.display()),
                message: "records no feature names (no burnfit metadata); cannot match CSV columns"
                    .into(),
            });
        }
    };
    let delimiter = args
        .delimiter
        .or_else(|| {
            checkpoint
                .meta
                .as_ref()?
                .config
                .data
                .as_ref()
                .map(|d| d.delimiter)
        })
        .unwrap_or(',');
    let params = checkpoint.named_params();
    let output = crate::data::predict_csv::predict_rows(data, &features, delimiter, |row| {
        checkpoint.spec.forward_host(&params, row)
    })?;
    match &args.out {
        Some(out) => {
            write_atomically(out, &output.bytes, args.force)?;
            let mut console = Console::default();
            // Nothing but the CSV when --out is stdout itself.
            if !crate::console::is_stdout(out) {
                say!(
                    console,
                    "wrote {} predictions to {}",
                    output.rows,
                    out.display()
                );
            }
            console.finish()
        }
        None => {
            let mut console = Console::default();
            console.raw(&output.bytes);
            console.finish()
        }
    }
}
