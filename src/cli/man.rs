//! `burnfit man [SUBCOMMAND]`: the man page (roff, clap_mangen) of burnfit or of one subcommand,
//! on stdout: `burnfit man > burnfit.1`, `burnfit man train | man -l -`.

use clap::{Args, CommandFactory};

use crate::console::Console;
use crate::error::{Error, Result};

/// `burnfit man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// A subcommand's page (burnfit-train(1), ..) instead of burnfit(1).
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

pub(super) fn run(args: &ManArgs) -> Result<()> {
    let mut command = super::Cli::command();
    command.build();
    let page = match &args.subcommand {
        None => command,
        Some(name) => {
            let names: Vec<String> = command
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .filter(|n| n != "help")
                .collect();
            let sub = command
                .find_subcommand(name)
                .filter(|_| name != "help")
                .ok_or_else(|| Error::Misused {
                    flag: "man",
                    message: format!(
                        "has no page for `{}`; the subcommands are {}",
                        super::abbreviate(name),
                        names.join(", ")
                    ),
                })?;
            // clap names are `&'static str` (its `string` feature would change clap's
            // features); one page per process, so the leak is a few bytes once.
            let title: &'static str = format!("burnfit-{}", sub.get_name()).leak();
            sub.clone().name(title).version(env!("CARGO_PKG_VERSION"))
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .expect("writing to memory cannot fail");
    let mut console = Console::default();
    console.raw(&roff);
    console.finish()
}
