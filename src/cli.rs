//! The command line: argument definitions and what each subcommand prints.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::Tensor;
use clap::{Args, Parser, Subcommand};

use crate::backend::{Backend, BackendChoice, BackendKind, probe_all};
use crate::bench::{self, BenchOptions};
use crate::checkpoint::{self, Checkpoint, Format, write_atomically};
use crate::config::TrainingConfig;
use crate::console::Console;
use crate::engine::{Engine, EngineKind, Flow, LossPoint, Observer};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::model::LinearRegression;
use crate::signals;

/// Train a one-neuron linear regression with burn on ndarray, flex or wgpu, save checkpoints the
/// autograd crate, Python and burn programs can load, and benchmark the backends.
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
    /// Train the model on a fresh noisy-line batch per step and save a checkpoint.
    Train(TrainArgs),
    /// Print the model's prediction for each input.
    Predict(PredictArgs),
    /// Show what a checkpoint file holds.
    Inspect(InspectArgs),
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

fn default_is(text: &str, value: impl std::fmt::Display) -> String {
    format!("{text} [default: {value}]")
}

/// `burnfit train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Backend to train on: `auto` takes a real GPU through wgpu when compiled in and present and
    /// the batch is at least 65,536 samples (below that the CPU backends are faster), otherwise
    /// flex, otherwise ndarray.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// JSON file with any of the settings below (keys: steps, batch, lr, beta1, beta2, epsilon,
    /// seed, true_w, true_b, noise, x_low, x_high, log_every); flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue from a checkpoint (any format): its weights, Adam state, step count and config.
    /// With --resume, --steps counts the steps to add; without it, training runs on to the
    /// checkpoint's own target.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
    /// Optimizer steps, one fresh batch each.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help = default_is("Optimizer steps, one fresh batch each", TrainingConfig::default().steps))]
    pub steps: Option<u64>,
    /// Samples per batch.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help = default_is("Samples per batch", TrainingConfig::default().batch))]
    pub batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long, value_name = "X", allow_negative_numbers = true, help = default_is("Adam learning rate", TrainingConfig::default().lr))]
    pub lr: Option<f32>,
    /// Seed of the data stream and the initial weight.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help = default_is("Seed of the data stream and the initial weight", TrainingConfig::default().seed))]
    pub seed: Option<u64>,
    /// Slope of the line the data is drawn from.
    #[arg(long, value_name = "X", allow_negative_numbers = true, help = default_is("Slope of the line the data is drawn from", TrainingConfig::default().true_w))]
    pub true_w: Option<f32>,
    /// Intercept of the line the data is drawn from.
    #[arg(long, value_name = "X", allow_negative_numbers = true, help = default_is("Intercept of the line the data is drawn from", TrainingConfig::default().true_b))]
    pub true_b: Option<f32>,
    /// Standard deviation of the Gaussian noise on y.
    #[arg(long, value_name = "X", allow_negative_numbers = true, help = default_is("Standard deviation of the Gaussian noise on y", TrainingConfig::default().noise))]
    pub noise: Option<f32>,
    /// Read back and print the loss every N steps.
    #[arg(long, value_name = "N", allow_negative_numbers = true, help = default_is("Read back and print the loss every N steps", TrainingConfig::default().log_every))]
    pub log_every: Option<u64>,
    /// Where to write the checkpoint, atomically; the extension picks the format: .json (the
    /// autograd crate's results.json), .safetensors (weights only) or .bpk (burnpack).
    #[arg(long, value_name = "PATH", default_value = "results.json")]
    pub out: PathBuf,
    /// Write --out in this format whatever its extension.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Also write the checkpoint every K steps, so a killed run can resume from the last save.
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub save_every: Option<u64>,
    /// How each step runs: `autodiff` (burn's module and autodiff, the reference) or `fused`
    /// (the whole step as one hand-written pass: a CubeCL kernel on wgpu, a Rust loop on CPU)
    /// [default: autodiff; with --resume, the engine that wrote the checkpoint]
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
    /// Replace --out even when it is write-protected (no write permission for anyone).
    #[arg(long)]
    pub force: bool,
}

impl TrainArgs {
    /// `base`, then the config file, then the flags.
    pub fn resolve_config(&self, base: TrainingConfig) -> Result<TrainingConfig> {
        let mut config = match &self.config {
            Some(path) => base.overlay_file(path)?,
            None => base,
        };
        macro_rules! apply {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { config.$field = v; } )* };
        }
        apply!(batch, lr, seed, true_w, true_b, noise, log_every);
        if self.resume.is_none()
            && let Some(steps) = self.steps
        {
            config.steps = steps;
        }
        config.validate()?;
        Ok(config)
    }
}

/// `burnfit predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The checkpoint whose model predicts (any format).
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: PathBuf,
    /// Inputs, comma-separated (`--x 1,2.5,-3`), or `-` to read one number per line from stdin.
    #[arg(long, value_name = "X,..", allow_hyphen_values = true)]
    pub x: String,
    /// Backend to run on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
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
    /// Replace the --json file even when it is write-protected.
    #[arg(long)]
    pub force: bool,
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

fn invalid(name: &'static str, value: impl ToString, expected: &'static str) -> Error {
    Error::InvalidSetting {
        name,
        value: value.to_string(),
        expected,
    }
}

/// Runs a parsed command line, printing to stdout.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => run_train(&args),
        Command::Predict(args) => run_predict(&args),
        Command::Inspect(args) => run_inspect(&args),
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
}

impl TrainObserver<'_> {
    fn save(&self, mut checkpoint: Checkpoint) -> Result<()> {
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

impl Observer for TrainObserver<'_> {
    fn on_loss(&mut self, p: LossPoint) {
        self.console
            .line(format_args!("step {:>6}  loss {:.6}", p.step, p.loss));
    }

    fn checkpoint_every(&self) -> Option<u64> {
        self.save_every
    }

    fn after_step(&mut self, trainer: &dyn Engine) -> Result<Flow> {
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
                    self.console.line(line);
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
    let format = match args.format {
        Some(format) => format,
        None => Format::from_path(&args.out)?,
    };
    if args.save_every == Some(0) {
        return Err(invalid("--save-every", 0, "must be at least 1"));
    }
    let resumed = args.resume.as_deref().map(Checkpoint::load).transpose()?;
    let base = match resumed.as_ref().map(|c| c.meta.as_ref()) {
        Some(Some(meta)) => meta.config.clone(),
        Some(None) => {
            console.line(format_args!(
                "note: {} has no burnfit metadata (an autograd file?); using the seed workload's config",
                args.resume
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            ));
            TrainingConfig::default()
        }
        None => TrainingConfig::default(),
    };
    let mut config = args.resolve_config(base)?;
    if let Some(checkpoint) = &resumed {
        let done = checkpoint.step();
        let more = match args.steps {
            Some(more) => more,
            None if config.steps > done => config.steps - done,
            None => {
                return Err(invalid(
                    "--steps",
                    "(none)",
                    "the checkpoint has reached its target step count; pass --steps N to train N more",
                ));
            }
        };
        if more == 0 {
            return Err(invalid("--steps", 0, "must be at least 1"));
        }
        config.steps = done.checked_add(more).ok_or_else(|| {
            invalid(
                "--steps",
                more,
                "too many: the checkpoint's step count plus --steps must stay below 2^64",
            )
        })?;
    }
    let backend = Backend::choose_for(args.backend, config.batch)?;
    let engine = args
        .engine
        .or_else(|| {
            let meta = resumed.as_ref()?.meta.as_ref()?;
            EngineKind::from_name(meta.engine.as_deref()?)
        })
        .unwrap_or_default();
    let mut trainer = engine.open(config, backend, resumed.as_ref())?;
    let target = trainer.config().steps;
    console.line(format_args!(
        "training on {} with the {} engine: steps {}..{}, batch {}, lr {}, seed {}",
        trainer.backend().describe(),
        trainer.kind(),
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
    };
    let remaining = target - trainer.step();
    let run = trainer.run(remaining, &mut observer)?;
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
    console.line(format_args!(
        "final w = {:.6}  b = {:.6}",
        checkpoint.params[0].data[0], checkpoint.params[1].data[0]
    ));
    console.line(format_args!(
        "{} steps in {:.3} s (first step {:.1} ms)",
        run.steps,
        run.total.as_secs_f64(),
        run.first_step.as_secs_f64() * 1e3
    ));
    observer.save_or_rescue(checkpoint)?;
    let console = &mut observer.console;
    if !format.keeps_optimizer() {
        console.line(format_args!(
            "note: {format} keeps no optimizer state; resuming from it restarts Adam"
        ));
    }
    console.line(format_args!("saved {} ({format})", args.out.display()));
    console.warn_if_lost();
    Ok(())
}

fn run_predict(args: &PredictArgs) -> Result<()> {
    // A list is checked before any work; stdin is streamed in chunks, so an endless stream
    // (`yes 1 | burnfit predict --x -`) prints as it goes in bounded memory.
    let listed = (args.x != "-").then(|| parse_list(&args.x)).transpose()?;
    let checkpoint = Checkpoint::load(&args.checkpoint)?;
    let backend = Backend::choose(args.backend)?;
    let model = LinearRegression::from_host(&checkpoint.params, &backend.device);
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
            const CHUNK: usize = 65_536;
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut any = false;
            for (i, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.map_err(|e| Error::Stdin(e.to_string()))?;
                if line.trim().is_empty() {
                    continue;
                }
                chunk.push(parse_number(format!("on stdin line {}", i + 1), &line)?);
                if chunk.len() == CHUNK {
                    predict(std::mem::take(&mut chunk), &mut console)?;
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
    match (&inspection.model, &inspection.model_error) {
        (Some([w, b]), _) => say!(console, "model: w = {w}, b = {b}"),
        (None, Some(problem)) => say!(console, "model: not loadable: {problem}"),
        (None, None) => say!(console, "model: not found"),
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
    let mut checkpoint = Checkpoint::load(&args.input)?;
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
    let report = bench::run(&options, &mut |row| {
        let table = bench::format_table(std::slice::from_ref(row));
        let mut lines = table.lines();
        let header = lines.next().unwrap_or_default();
        if !printed_header {
            say!(console, "{header}");
            printed_header = true;
        }
        for line in lines {
            say!(console, "{line}");
        }
    })?;
    say!(
        console,
        "machine: {} ({} cores){}; burnfit {}, burn {}",
        report.machine.cpu_model,
        report.machine.cores,
        report
            .machine
            .adapter
            .as_ref()
            .map_or(String::new(), |a| format!(", wgpu adapter {a}")),
        report.machine.burnfit_version,
        report.machine.burn_version
    );
    if let Some(path) = &args.json {
        let bytes = serde_json::to_vec_pretty(&report).expect("report serialises");
        write_atomically(path, &bytes, args.force)?;
        say!(console, "wrote {}", path.display());
    }
    console.finish()
}
