//! `burnfit completions SHELL`: a completion script for the shell, generated from the command
//! line's own definition (clap_complete), so it always knows every subcommand and flag.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::console::Console;
use crate::error::Result;

/// `burnfit completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash (source it, or put it in /etc/bash_completion.d/burnfit), zsh (as `_burnfit`
    /// on $fpath), fish (~/.config/fish/completions/burnfit.fish), powershell (in $PROFILE), elvish.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

pub(super) fn run(args: &CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut super::Cli::command(),
        "burnfit",
        &mut script,
    );
    let mut console = Console::default();
    console.raw(&script);
    console.finish()
}
