//! The command line: one file per subcommand (its flags and what it prints), and here the
//! command list, the one input/output check every subcommand passes, and the dispatch.

use std::path::Path;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::file_roles::FileRoles;

pub use backends::BackendsArgs;
pub use bench::BenchArgs;
pub use completions::CompletionsArgs;
pub use convert::ConvertArgs;
pub use evaluate::EvaluateArgs;
pub use inspect::InspectArgs;
pub use man::ManArgs;
pub use ols::OlsArgs;
pub use plot::PlotArgs;
pub use predict::PredictArgs;
pub use train::TrainArgs;

/// Train regression models (a linear model or an MLP, on a synthetic task or your CSV) with burn
/// on ndarray, flex or wgpu, save checkpoints the autograd crate, Python and burn programs can
/// load, and benchmark the backends.
#[derive(Debug, Parser)]
#[command(name = "burnfit", version = VERSION.as_str(), about, long_about = None)]
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
    /// Score a model on a labelled CSV file: MSE, RMSE, MAE, R².
    Evaluate(EvaluateArgs),
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
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(CompletionsArgs),
    /// Print the man page (roff) of burnfit or of one subcommand.
    Man(ManArgs),
}

/// `--version`: the crate's version and the backends compiled into this build.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let backends: Vec<&str> = crate::backend::BackendKind::compiled()
        .into_iter()
        .map(|k| k.name())
        .collect();
    format!(
        "{} (backends: {})",
        env!("CARGO_PKG_VERSION"),
        backends.join(", ")
    )
});

/// `println!` through a [`Console`]: never panics on a closed or full stdout.
macro_rules! say {
    ($console:expr, $($arg:tt)*) => { $console.line(format_args!($($arg)*)) };
}

mod backends;
mod bench;
mod completions;
mod convert;
mod evaluate;
mod inspect;
mod man;
mod observe;
mod ols;
mod plot;
mod predict;
mod train;
mod train_json;

pub(crate) fn default_is(text: &str, value: impl std::fmt::Display) -> String {
    format!("{text} [default: {value}]")
}

/// At most 40 characters of a user's input, for an error message (a 5 MB line must not make a
/// 5 MB message).
pub(crate) fn abbreviate(text: &str) -> String {
    const KEEP: usize = 40;
    match text.char_indices().nth(KEEP) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// R² with `decimals`, or `n/a` where it is undefined (a constant target).
pub(crate) fn r2_text(r2: f64, decimals: usize) -> String {
    if r2.is_nan() {
        "n/a".into()
    } else {
        format!("{r2:.decimals$}")
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
            Command::Evaluate(args) => FileRoles::new()
                .input("--checkpoint", Some(&args.checkpoint))
                .input("--data", Some(&args.data)),
            Command::Plot(args) => FileRoles::new()
                .input("METRICS", Some(&args.metrics))
                .output("--out", Some(&args.out)),
            // Converting in place is safe: the input is read whole before it is replaced.
            Command::Convert(args) => FileRoles::new()
                .input("INPUT", Some(&args.input))
                .output("OUTPUT", Some(&args.output))
                .replaceable("INPUT", "OUTPUT"),
            Command::Bench(args) => FileRoles::new()
                .input("--data", args.workload.data.as_deref().map(Path::new))
                .inputs("--plot-with", &args.plot_with)
                .output("--json", args.json.as_deref())
                .output("--plot", args.plot.as_deref()),
            Command::Ols(args) => FileRoles::new()
                .input("--data", args.data.as_deref().map(std::path::Path::new))
                .inputs("--merge", &args.merge)
                .output("--save-summary", args.save_summary.as_deref()),
            Command::Inspect(_)
            | Command::Backends(_)
            | Command::Completions(_)
            | Command::Man(_) => FileRoles::new(),
        }
    }
}

/// Runs a parsed command line, printing to stdout.
pub fn run(cli: Cli) -> Result<()> {
    // No output may overwrite an input or another output: one check for every subcommand.
    cli.command.file_roles().check()?;
    match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Ols(args) => ols::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Evaluate(args) => evaluate::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Plot(args) => plot::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Backends(args) => backends::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }
}
