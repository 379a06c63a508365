//! `burnfit inspect`: what a checkpoint file holds.

use std::path::PathBuf;

use clap::Args;

use crate::checkpoint::{self};
use crate::console::Console;
use crate::error::Result;

/// `burnfit inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: &InspectArgs) -> Result<()> {
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
    // The metadata's config names the optimizer whose state this is (Adam without one).
    let optimizer = inspection
        .metadata
        .as_ref()
        .and_then(|m| m["config"]["optimizer"].as_str())
        .map_or("Adam".to_string(), |name| match name {
            "adamw" => "AdamW".into(),
            "sgd" => "SGD".into(),
            "rmsprop" => "RMSProp".into(),
            other => other.to_string(),
        });
    match inspection.optimizer_updates {
        Some(updates) => say!(
            console,
            "optimizer: {optimizer}, {updates} updates (t = {})",
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
