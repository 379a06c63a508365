//! `burnfit convert`: a checkpoint in another format.

use std::path::PathBuf;

use clap::Args;

use crate::checkpoint::{self, Checkpoint, Format};
use crate::console::Console;
use crate::error::{Error, Result};

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

pub(super) fn run(args: &ConvertArgs) -> Result<()> {
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
    // Variables of other namespaces or models are not carried over: say which (read before
    // the save, which may replace the input). In place, that would lose them: refused.
    let others = checkpoint::inspect(&args.input)?.others;
    // The output resolves to the input (the same path, or a symlink to it; a hard link is
    // replaced by the save's rename, which leaves the input as it was).
    let resolves_to_input = matches!(
        (std::fs::canonicalize(&args.input), std::fs::canonicalize(&args.output)),
        (Ok(a), Ok(b)) if a == b
    );
    if !others.is_empty() && resolves_to_input {
        return Err(Error::ConvertInPlaceDrops {
            path: args.input.clone(),
            others: others.join(", "),
        });
    }
    checkpoint.save_replacing(&args.output, format, args.force)?;
    let mut console = Console::default();
    // Nothing but the checkpoint when OUTPUT is stdout itself.
    if crate::console::is_stdout(&args.output) {
        return console.finish();
    }
    say!(console, "wrote {} ({format})", args.output.display());
    if !others.is_empty() {
        say!(
            console,
            "note: left out (not the model's nor its Adam's): {}",
            others.join(", ")
        );
    }
    console.finish()
}
