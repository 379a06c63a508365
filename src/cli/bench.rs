//! `burnfit bench`: the training loop timed on every backend and engine.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::backend::{Backend, BackendKind};
use crate::bench::{self, BenchOptions};
use crate::checkpoint::{self, write_atomically};
use crate::config::{ModelKind, Task, TrainingConfig};
use crate::console::Console;
use crate::engine::EngineKind;
use crate::error::{Error, Result, invalid};
use crate::model::Activation;
use crate::plan::Overrides;
use crate::progress::{Progress, ProgressMode};

use super::default_is;

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
    /// What to train (default: the seed workload, the line with the linear model).
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// `bench`'s workload: the same flags, names and checks as `train`'s.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Workload (as for train)")]
pub struct WorkloadArgs {
    /// The synthetic task: line or sine.
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Train on this CSV file instead of a synthetic task (or a Parquet file, `.parquet`, in a
    /// build with the `parquet` feature).
    #[arg(long, value_name = "FILE.csv")]
    pub data: Option<String>,
    /// The CSV column to predict (required with --data).
    #[arg(long, value_name = "COLUMN")]
    pub target: Option<String>,
    /// The CSV feature columns, comma-separated [default: every column but the target]
    #[arg(long, value_delimiter = ',', value_name = "A,B,..")]
    pub features: Option<Vec<String>>,
    /// The model: linear or mlp.
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    /// The MLP's hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "W,..")]
    pub hidden: Option<Vec<usize>>,
    /// The MLP's activation.
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// The CSV field delimiter, one ASCII character [default: ,]
    #[arg(value_parser = crate::plan::delimiter_value, long, value_name = "CHAR")]
    pub delimiter: Option<char>,
    /// Scale each feature to mean 0, std 1 over the training rows (the default)
    #[arg(long, overrides_with = "no_standardize")]
    pub standardize: bool,
    /// Train on the raw features.
    #[arg(long)]
    pub no_standardize: bool,
    /// Fraction of the rows held out for validation, a seeded random split [default: 0.2]
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub val_frac: Option<f64>,
    /// Skip rows with an empty or non-numeric cell instead of stopping.
    #[arg(long)]
    pub drop_invalid_rows: bool,
    /// Train out of core: batches streamed from the table's binary cache on disk (built on a
    /// first run, outside the timings). Automatic when the table would not fit in memory
    #[arg(long)]
    pub out_of_core: bool,
    /// Where an out-of-core run keeps its cache [default: beside the CSV file]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<String>,
}

impl WorkloadArgs {
    /// The training config these flags describe, checked as `train` checks it.
    pub fn config(&self) -> Result<TrainingConfig> {
        let overrides = Overrides {
            task: self.task,
            data: self.data.clone(),
            target: self.target.clone(),
            features: self.features.clone(),
            model: self.model,
            hidden: self.hidden.clone(),
            activation: self.activation,
            delimiter: self.delimiter,
            standardize: self.standardize,
            no_standardize: self.no_standardize,
            val_frac: self.val_frac,
            drop_invalid_rows: self.drop_invalid_rows,
            out_of_core: self.out_of_core,
            cache_dir: self.cache_dir.clone(),
            ..Default::default()
        };
        let mut config = TrainingConfig::default();
        overrides.apply_to(&mut config)?;
        config.validate()?;
        Ok(config)
    }
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
        options.workload = self.workload.config()?;
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

pub(super) fn run(args: &BenchArgs) -> Result<()> {
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
        + if options.autograd && options.is_seed_workload() && cfg!(feature = "autograd-ref") {
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
            bench::BenchEvent::Note(note) => {
                progress.suspend(|| say!(console, "note: {note}"));
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
    say!(console, "workload: {}", report.workload);
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
    if report.rows.iter().all(|row| row.note.is_some()) {
        console.flush();
        let unwritten: Vec<&str> = [
            ("--json", args.json.is_some()),
            ("--plot", args.plot.is_some()),
        ]
        .iter()
        .filter(|(_, asked)| *asked)
        .map(|(flag, _)| *flag)
        .collect();
        return Err(Error::NothingMeasured {
            unwritten: if unwritten.is_empty() {
                String::new()
            } else {
                format!("; no {} written", unwritten.join(" or "))
            },
        });
    }
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
