//! `burnfit backends`: the compiled-in backends and whether each works here.

use clap::Args;

use crate::backend::probe_all;
use crate::console::Console;
use crate::error::Result;

/// `burnfit backends`.
#[derive(Debug, Args)]
pub struct BackendsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &BackendsArgs) -> Result<()> {
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
