//! `burnfit train`: the flags, the run from plan to saved files, and what it prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::backend::BackendChoice;
use crate::checkpoint::{self, Checkpoint, CheckpointWriter, Format};
use crate::config::{TableConfig, TrainingConfig};
use crate::console::Console;
use crate::engine::{Engine, EngineKind, RunReport};
use crate::error::{Error, Result, invalid};
use crate::file_roles::FileRoles;
use crate::metrics_log::MetricsLog;
use crate::model::ModelSpec;
use crate::plan::{Overrides, TrainPlan, TrainRequest};
use crate::progress::{Progress, ProgressMode};
use crate::report::{FitComparison, coefficient_text};
use crate::signals;

use super::observe::{Display, MetricsRecorder, PeriodicSave, TrainObserver, Validation};
use super::train_json::{FilesJson, Finished, TrainJson, ValidationJson, format_name, owned};
use super::{abbreviate, r2_text};

/// `--config`'s help: the keys a config file may hold, read off [`TrainingConfig`] itself.
fn config_help() -> String {
    let keys = |value: serde_json::Value| -> Vec<String> {
        match value {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    // Every optional key present (saved configs leave out the ones at their defaults).
    let config = TrainingConfig {
        loss: crate::loss::LossKind::Huber,
        huber_delta: 2.0,
        l2: 1.0,
        optimizer: crate::optim::OptimizerKind::Rmsprop,
        momentum: 0.5,
        rmsprop_alpha: 0.5,
        weight_decay: 1.0,
        lr_schedule: crate::optim::ScheduleKind::Step,
        warmup_steps: 1,
        lr_step_every: 1,
        lr_gamma: 0.5,
        ..TrainingConfig::default()
    };
    let top: Vec<String> = keys(serde_json::to_value(&config).expect("config serialises"));
    let table = TableConfig {
        out_of_core: true,
        cache_dir: Some(String::new()),
        ..TableConfig::new("", "")
    };
    let data = keys(serde_json::to_value(table).expect("serialises"));
    format!(
        "JSON file (TOML if its name ends in .toml) with any of the settings (keys: {}, data: {{{}}}); flags given here override it",
        top.join(", "),
        data.join(", ")
    )
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
    /// JSON or TOML file with any of the settings (its keys listed in --help); flags given here
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
    /// Also write the checkpoint with the lowest validation loss (val_loss, at every logged
    /// step) to PATH, replaced atomically each time it falls; the extension picks the format, as
    /// for --out. Needs CSV data with validation rows.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub keep_best: Option<PathBuf>,
    /// Draw the loss against the step (log scale; the validation loss too) to FILE (.svg only:
    /// PNG would need system font libraries). With --metrics, the whole history in that file.
    #[arg(long, value_name = "FILE.svg", help_heading = "Output")]
    pub plot: Option<PathBuf>,
    /// Write TensorBoard event files into DIR (created when missing; a new file per run): the
    /// scalars loss, lr, elapsed_s (seconds since training started) and, for CSV data with
    /// validation rows, val_loss, at every logged step (`tensorboard --logdir DIR`).
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub tensorboard: Option<PathBuf>,
    /// For a one-input linear model (the line, or a one-feature CSV): draw a sample of the data,
    /// the fitted line and, for the synthetic line, the true one, to FILE (.svg only).
    #[arg(long, value_name = "FILE.svg", help_heading = "Output")]
    pub plot_fit: Option<PathBuf>,
    /// Replace --out, --plot and --plot-fit even when write-protected (no write permission for
    /// anyone); let a fresh run replace an existing --metrics file, and a resumed run cut a
    /// --metrics file that is not its checkpoint's history.
    #[arg(long, help_heading = "Output")]
    pub force: bool,
    /// Stop early when the validation loss (val_loss: the run's --loss on the CSV's validation
    /// rows, at every --log-every step) has not improved by more than --min-delta for N
    /// evaluations in a row; the run then ends as a finished one. Needs CSV data with validation
    /// rows; a resumed run counts afresh.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Early stopping"
    )]
    pub patience: Option<u64>,
    /// The least fall of val_loss that counts as an improvement for --patience, in the loss's
    /// units (the target's for MAE and Huber, squared for MSE) [default: 0]
    #[arg(
        long,
        value_name = "X",
        allow_negative_numbers = true,
        help_heading = "Early stopping"
    )]
    pub min_delta: Option<f64>,
    /// Show a live progress bar on stderr: `auto` when stdout and stderr are terminals,
    /// `always` when stderr is one, `never`
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, help_heading = "Display")]
    pub progress: ProgressMode,
    /// Print no progress bar and no per-step loss lines (the summary still prints).
    #[arg(long, short, help_heading = "Display")]
    pub quiet: bool,
    /// Print the final report (parameters, losses, fit quality, timings, files written) as one
    /// JSON object on stdout (docs/json-output.md); the lines otherwise printed go to stderr.
    #[arg(long, help_heading = "Display")]
    pub json: bool,
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

impl TrainArgs {
    /// The files a training run reads and writes; `data`: the data file once the plan knows it
    /// (from --data, the config file or the checkpoint). `--out` may replace `--resume`: a run
    /// continues in place.
    pub(super) fn file_roles(&self, data: Option<&Path>) -> FileRoles {
        FileRoles::new()
            .input("--config", self.config.as_deref())
            .input("--resume", self.resume.as_deref())
            .input(
                "--data",
                data.or(self.settings.data.as_deref().map(Path::new)),
            )
            .output("--out", Some(&self.out))
            .output("--metrics", self.metrics.as_deref())
            .output("--keep-best", self.keep_best.as_deref())
            .output("--plot", self.plot.as_deref())
            .output("--plot-fit", self.plot_fit.as_deref())
            .replaceable("--resume", "--out")
    }
}

/// `burnfit train`, in phases: check the outputs, plan the run, open it, train, report, write
/// the files.
pub(super) fn run(args: &TrainArgs) -> Result<()> {
    let format = check_outputs(args)?;
    let keep_best_format = check_early_stopping(args)?;
    // From here on a stop signal ends the run cleanly: during the data file's read with nothing
    // saved (and no half-built cache left), during training with the checkpoint saved. Without
    // the handlers a signal still stops the run, only without the final save.
    let _ = signals::install();
    // With --json, stdout carries the report alone; with `--out /dev/stdout`, the checkpoint.
    let mut console = if args.json || crate::console::is_stdout(&args.out) {
        Console::stderr()
    } else {
        Console::default()
    };
    let plan = TrainPlan::resolve_announcing(&args.request(), &mut |config| {
        if !args.quiet {
            announce_long_read(&mut console, config);
        }
    })?;
    // A signal in a phase of the read that does not look (an out-of-core cache's statistics,
    // the scaling) stops here, before anything is written.
    signals::stop_before_training()?;
    // The data file may come from the config file or the checkpoint: checked again with it.
    let data_path = plan.config.data.as_ref().map(|d| PathBuf::from(&d.path));
    args.file_roles(data_path.as_deref()).check()?;
    check_validation_rows(args, &plan)?;
    let resumed = plan.resumed.is_some();
    let (mut trainer, metrics) = open_run(args, plan, &mut console)?;
    // Nor does the backend's and the engine's setup (seconds on a GPU's first use).
    signals::stop_before_training()?;
    let target = trainer.config().steps;
    let mut observer = TrainObserver {
        display: Display {
            console,
            progress: Progress::steps(args.progress.enabled(args.quiet), trainer.step(), target),
            quiet: args.quiet,
        },
        metrics,
        save: PeriodicSave {
            writer: CheckpointWriter::new(&args.out, format, args.force),
            every: args.save_every,
        },
        validation: Validation::new(
            args.patience,
            args.min_delta.unwrap_or(0.0),
            keep_best_format.map(|(path, format)| CheckpointWriter::new(path, format, args.force)),
        ),
    };
    let remaining = target - trainer.step();
    let run = trainer.run(remaining, &mut observer);
    observer.display.progress.finish();
    let run = run?;
    if let Some(stop) = observer.validation.stopped {
        let best = observer
            .validation
            .best
            .as_ref()
            .map_or(String::new(), |b| {
                format!(" (best {:.6} at step {})", b.val_loss, b.step)
            });
        let s = if stop.patience == 1 { "" } else { "s" };
        observer.display.console.line(format_args!(
            "early stop at step {}: val_loss has not improved by more than {} for {} evaluation{s}{best}",
            stop.step,
            crate::error::shown(stop.min_delta),
            stop.patience,
        ));
    } else if run.stopped {
        observer.save.writer.save(trainer.checkpoint()?)?;
        observer.display.console.warn_if_lost();
        return Err(Error::Interrupted {
            step: trainer.step(),
            saved: Some(args.out.clone()),
            signal: signals::received().unwrap_or(signal_hook::consts::SIGINT),
        });
    }
    let checkpoint = trainer.checkpoint()?;
    let comparison = report(
        &mut observer.display.console,
        trainer.as_ref(),
        &checkpoint,
        &run,
    );
    // Saved first: a report that fails (an out-of-core cache gone unreadable) loses no model.
    observer.save.writer.save(checkpoint.clone())?;
    let comparison = comparison?;
    let console = &mut observer.display.console;
    if !format.keeps_optimizer() {
        console.line(format_args!(
            "note: {format} keeps no optimizer state; resuming from it restarts Adam"
        ));
    }
    console.line(format_args!("saved {} ({format})", args.out.display()));
    if args.keep_best.is_some()
        && let Some(best) = &observer.validation.best
    {
        let saved = best.saved.as_ref().map_or("not saved".to_string(), |p| {
            format!("saved {}", p.display())
        });
        console.line(format_args!(
            "best: step {}, val_loss {:.6}, {saved}",
            best.step, best.val_loss
        ));
    }
    write_plots(
        args,
        trainer.as_ref(),
        &checkpoint,
        observer.metrics.rows,
        console,
    )?;
    let events = observer
        .metrics
        .tensorboard
        .as_ref()
        .map(|e| e.path().to_owned());
    if let Some(path) = &events {
        console.line(format_args!(
            "wrote TensorBoard events to {}",
            path.display()
        ));
    }
    console.warn_if_lost();
    if args.json {
        let mut json = TrainJson::of(
            Finished {
                trainer: trainer.as_ref(),
                checkpoint: &checkpoint,
                run: &run,
                comparison: comparison.as_ref(),
                resumed,
            },
            FilesJson {
                checkpoint: args.out.clone(),
                format: format_name(format),
                metrics: owned(args.metrics.as_deref()),
                plot: owned(args.plot.as_deref()),
                plot_fit: owned(args.plot_fit.as_deref()),
                tensorboard: events,
                keep_best: observer
                    .validation
                    .best
                    .as_ref()
                    .and_then(|b| b.saved.clone()),
            },
        );
        let validation = &observer.validation;
        if validation.is_active() {
            json.validation = Some(ValidationJson {
                best: validation.best.clone(),
                early_stop: validation.stopped,
            });
        }
        let mut stdout = Console::default();
        stdout.block(&serde_json::to_string(&json).expect("the report serialises"));
        stdout.finish()?;
    }
    Ok(())
}

/// Checks every output before any work: writable destinations, known formats, `--save-every`.
/// Returns the checkpoint's format.
fn check_outputs(args: &TrainArgs) -> Result<Format> {
    checkpoint::check_destination(&args.out, args.force)?;
    for path in [&args.plot, &args.plot_fit].into_iter().flatten() {
        crate::plot::check_svg_path(path, args.force)?;
    }
    if let Some(path) = &args.metrics {
        crate::metrics_log::MetricsFormat::from_path(path)?;
    }
    if let Some(dir) = &args.tensorboard {
        crate::tensorboard::check_dir(dir)?;
    }
    let format = match args.format {
        Some(format) => format,
        None => Format::from_path(&args.out)?,
    };
    if args.json && crate::console::is_stdout(&args.out) {
        return Err(Error::Misused {
            flag: "--json",
            message: format!(
                "writes the report to stdout, where --out {} writes the checkpoint: save it to a file",
                args.out.display()
            ),
        });
    }
    if args.save_every == Some(0) {
        return Err(invalid("--save-every", 0, "must be at least 1"));
    }
    Ok(format)
}

/// Checks `--patience`, `--min-delta` and `--keep-best` before any work; returns `--keep-best`
/// with its format.
fn check_early_stopping(args: &TrainArgs) -> Result<Option<(&Path, Format)>> {
    if args.patience == Some(0) {
        return Err(invalid("--patience", 0, "must be at least 1"));
    }
    if let Some(delta) = args.min_delta {
        if !(delta.is_finite() && delta >= 0.0) {
            return Err(invalid(
                "--min-delta",
                crate::error::shown(delta),
                "must be a finite number ≥ 0",
            ));
        }
        if args.patience.is_none() {
            return Err(Error::Misused {
                flag: "--min-delta",
                message: "applies only with --patience".into(),
            });
        }
    }
    let Some(path) = &args.keep_best else {
        return Ok(None);
    };
    // --format is --out's alone: the extension decides here.
    let format = Format::from_path(path).map_err(|_| Error::Misused {
        flag: "--keep-best",
        message: format!(
            "{}: unknown format; use a .json, .safetensors or .bpk file name",
            path.display()
        ),
    })?;
    checkpoint::check_destination(path, args.force)?;
    Ok(Some((path, format)))
}

/// `--patience` and `--keep-best` watch the validation loss: refused before training when the
/// run has no validation rows.
fn check_validation_rows(args: &TrainArgs, plan: &TrainPlan) -> Result<()> {
    if plan.table.as_ref().is_some_and(|t| t.val_rows() > 0) {
        return Ok(());
    }
    let why = match &plan.table {
        None => "needs validation rows: train on a CSV file (--data)",
        Some(_) => "needs validation rows: this run holds none (--val-frac 0)",
    };
    for (flag, given) in [
        ("--patience", args.patience.is_some()),
        ("--keep-best", args.keep_best.is_some()),
    ] {
        if given {
            return Err(Error::Misused {
                flag,
                message: why.into(),
            });
        }
    }
    Ok(())
}

/// Opens the planned run: the metrics file (locked), the backend, the engine; prints the notes,
/// the data line and the `training on` line.
fn open_run(
    args: &TrainArgs,
    plan: TrainPlan,
    console: &mut Console,
) -> Result<(Box<dyn Engine>, MetricsRecorder)> {
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
        console.line(data_line(table));
        if let Some(line) = out_of_core_line(table) {
            console.line(line);
        }
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
    if args.plot_fit.is_some() && spec != ModelSpec::linear(1) {
        return Err(invalid(
            "--plot-fit",
            spec.describe(),
            "draws one-input linear models only (the line, or a CSV with one feature)",
        ));
    }
    let with_val = table.as_ref().is_some_and(|t| t.val_rows() > 0)
        && (args.metrics.is_some() || args.plot.is_some() || args.tensorboard.is_some());
    let extra: &[&str] = if with_val {
        &[crate::metrics_log::VAL_LOSS]
    } else {
        &[]
    };
    // The backend is open (a GPU's first use takes seconds): a signal meanwhile stops here,
    // before the metrics file is touched.
    signals::stop_before_training()?;
    let log = match (&args.metrics, &resumed) {
        (None, _) => None,
        (Some(path), None) => Some(MetricsLog::create(path, extra, args.force)?),
        (Some(path), Some(checkpoint)) => Some(MetricsLog::resume(path, extra, checkpoint.step())?),
    };
    let trainer =
        crate::session::open_engine_with(engine, config, backend, table, resumed.as_ref())?;
    let events = args
        .tensorboard
        .as_deref()
        .map(crate::tensorboard::EventWriter::create)
        .transpose()?;
    let c = trainer.config();
    // The loss is named only when it is not the default, so MSE runs print what they always did.
    let loss = match c.loss {
        crate::loss::LossKind::Mse => String::new(),
        crate::loss::LossKind::Huber => format!(", loss huber (δ {})", c.huber_delta),
        other => format!(", loss {}", other.name()),
    };
    console.line(format_args!(
        "training on {} with the {} engine: {} model, steps {}..{}, batch {}, lr {}, seed {}{loss}",
        trainer.backend().describe(),
        trainer.kind(),
        spec.describe(),
        trainer.step() + 1,
        c.steps,
        c.batch,
        crate::error::shown(c.lr),
        c.seed
    ));
    Ok((
        trainer,
        MetricsRecorder::new(log, with_val).with_tensorboard(events),
    ))
}

/// `data: FILE — N rows (...), features [...], target ...`.
fn data_line(table: &crate::data::PreparedTable) -> String {
    let dropped = table.dropped_rows();
    format!(
        "data: {} — {} rows ({} training, {} validation){}, features [{}], target `{}`{}",
        table.file_name(),
        table.rows(),
        table.train_rows(),
        table.val_rows(),
        if dropped > 0 {
            let s = if dropped == 1 { "" } else { "s" };
            format!(", {dropped} invalid row{s} dropped")
        } else {
            String::new()
        },
        table
            .feature_names()
            .iter()
            .map(|n| abbreviate(n))
            .collect::<Vec<_>>()
            .join(", "),
        abbreviate(table.target_name()),
        if table.scaling.is_some() {
            ", standardized"
        } else {
            ""
        }
    )
}

/// Data files from this size get a line before the pass over them, which prints nothing until
/// it ends (~1 minute for 10 GB here).
const LONG_READ_BYTES: u64 = 1 << 30;

/// Says what is read, before a long silent read: a data file of at least [`LONG_READ_BYTES`],
/// or any file trained out of core (its cache is checked, or built on a first run). A file
/// that cannot be read says nothing here: the read itself names the problem.
fn announce_long_read(console: &mut Console, config: &crate::config::TrainingConfig) {
    let Some(data) = &config.data else { return };
    let Ok(meta) = std::fs::metadata(&data.path) else {
        return;
    };
    let size = crate::data::table::bytes_text(meta.len());
    if data.out_of_core && crate::data::table::parquet_file::is_parquet(Path::new(&data.path)) {
        // Refused next (out of core is for CSV files): the refusal alone is the output.
        return;
    }
    if data.out_of_core {
        console.line(format!(
            "out of core: reading {} ({size}) to check its row cache, or to build it on a first run",
            data.path
        ));
    } else if meta.len() >= LONG_READ_BYTES {
        console.line(format!("reading {} ({size}) before training", data.path));
    }
}

/// `out of core: cache FILE (reused | built in T, N MB/s of CSV)` for an out-of-core table.
fn out_of_core_line(table: &crate::data::PreparedTable) -> Option<String> {
    use crate::data::cache::CacheOrigin;
    let rows = table.out_of_core()?;
    let how = match rows.origin {
        CacheOrigin::Reused => "reused".to_string(),
        CacheOrigin::Built { took } => format!(
            "built in {}, {:.0} MB/s of CSV",
            duration_text(took),
            rows.cache.header().source_bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
        ),
    };
    Some(format!(
        "out of core: batches streamed from the cache {} ({how})",
        rows.cache.path().display()
    ))
}

/// What the run reached: the line's w and b, a CSV fit's quality next to the closed form's, or
/// an MLP's final loss; and the timing line. Returns the CSV fit's comparison.
fn report(
    console: &mut Console,
    trainer: &dyn Engine,
    checkpoint: &Checkpoint,
    run: &RunReport,
) -> Result<Option<FitComparison>> {
    let mut compared = None;
    if checkpoint.spec == ModelSpec::linear(1) {
        console.line(format_args!(
            "final w = {}  b = {}",
            six_places(checkpoint.params[0].data[0]),
            six_places(checkpoint.params[1].data[0])
        ));
    }
    if let Some(table) = trainer.table() {
        let comparison = FitComparison::of(table, checkpoint)?;
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
            let trained = table.training_space_mse(&checkpoint.spec, &params)?;
            if comparison.model.train.mse > 1.01 * trained {
                console.line(format_args!(
                    "note: the saved model (f32, the data's units) has training MSE {:.6}, the trained one {trained:.6}: a feature's mean is large next to its spread (a timestamp?); subtract an offset from it before fitting to keep the precision",
                    comparison.model.train.mse
                ));
            }
        }
        compared = Some(comparison);
    } else if checkpoint.spec != ModelSpec::linear(1)
        && let Some(loss) = run.final_loss()
    {
        console.line(format_args!(
            "final loss {loss:.6} (step {})",
            trainer.step()
        ));
    }
    console.line(format_args!(
        "{} steps in {} (first step {})",
        run.steps,
        duration_text(run.total),
        duration_text(run.first_step)
    ));
    Ok(compared)
}

/// A duration with 3–4 significant digits in the unit that suits it: `412 µs`, `3.25 ms`,
/// `1.234 s` (a fused run of 1000 steps takes well under a millisecond).
fn duration_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// `--plot` (the whole history when a metrics file holds it, a resumed run's earlier rows too)
/// and `--plot-fit`.
fn write_plots(
    args: &TrainArgs,
    trainer: &dyn Engine,
    checkpoint: &Checkpoint,
    rows: Vec<crate::metrics_log::MetricsRow>,
    console: &mut Console,
) -> Result<()> {
    if let Some(path) = &args.plot {
        let rows = match &args.metrics {
            Some(metrics) => crate::metrics_log::read_metrics(metrics)?,
            None => rows,
        };
        crate::plot::loss_chart(&crate::plot::loss_series(&rows), path, args.force)?;
        console.line(format_args!("wrote {}", path.display()));
    }
    if let Some(path) = &args.plot_fit {
        plot_fit(trainer, checkpoint, path, args.force)?;
        console.line(format_args!("wrote {}", path.display()));
    }
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
            // Every row in memory; out of core, every k-th (the chart draws a few thousand).
            if let Some(m) = table.in_memory() {
                let t = &m.table;
                let points: Vec<(f64, f64)> =
                    (0..t.rows()).map(|r| (t.row(r)[0], t.y[r])).collect();
                return crate::plot::fit_chart(&points, fitted, None, out, force);
            }
            let every = table.rows().div_ceil(4 * crate::plot::FIT_SAMPLE).max(1);
            let mut points = Vec::new();
            let mut i = 0usize;
            for split in [crate::data::Split::Train, crate::data::Split::Val] {
                table.for_each_row(split, |x, y| {
                    if i.is_multiple_of(every) {
                        points.push((x[0], y));
                    }
                    i += 1;
                })?;
            }
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
    let trained_by = match c.optimizer {
        "adam" => "Adam",
        "adamw" => "AdamW",
        "sgd" => "SGD",
        "rmsprop" => "RMSProp",
        other => other,
    };
    console.line(row(&format!("burnfit ({trained_by})"), &c.model));
    let closed_form = if c.l2 == 0.0 { "OLS" } else { "ridge" };
    match &c.ols {
        Ok((fit, quality)) => {
            console.line(row(&format!("{closed_form} (closed form)"), quality));
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
                    closed_form
                );
                for ((name, model), ols) in table.feature_names().iter().zip(w).zip(&fit.weights) {
                    say!(
                        console,
                        "  {name:<16} {:>14} {:>14}",
                        coefficient_text(*model, 6),
                        coefficient_text(*ols, 6)
                    );
                }
                say!(
                    console,
                    "  {:<16} {:>14} {:>14}",
                    "(intercept)",
                    coefficient_text(*b, 6),
                    coefficient_text(fit.bias, 6)
                );
            }
        }
        Err(problem) => say!(
            console,
            "{closed_form} (closed form): not available: {problem}"
        ),
    }
}

/// `x` to six decimal places, without the sign of a value that rounds to zero (`0.000000`, not
/// `-0.000000`).
fn six_places(x: f32) -> String {
    let text = format!("{x:.6}");
    match text.strip_prefix('-') {
        Some(magnitude) if magnitude.bytes().all(|b| b == b'0' || b == b'.') => {
            magnitude.to_owned()
        }
        _ => text,
    }
}

#[cfg(test)]
mod six_places_tests {
    #[test]
    fn a_value_that_rounds_to_zero_has_no_sign() {
        assert_eq!(super::six_places(-0.0000001), "0.000000");
        assert_eq!(super::six_places(-0.0), "0.000000");
        assert_eq!(super::six_places(-0.000001), "-0.000001");
        assert_eq!(super::six_places(2.5), "2.500000");
    }
}
