//! `burnfit plot`: a metrics file's loss chart.

use std::path::PathBuf;

use clap::Args;

use crate::console::Console;
use crate::error::Result;

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

pub(super) fn run(args: &PlotArgs) -> Result<()> {
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
