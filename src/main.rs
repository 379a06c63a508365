use std::io::Write;

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    let cli = match burnfit::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            error.exit()
        }
        Err(error) => {
            // clap's usage errors span several lines; burnfit's errors are one line (plus the
            // hint where to read more).
            let rendered = error.render().to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            let _ = writeln!(
                std::io::stderr(),
                "{first}\nFor more information, try '--help'."
            );
            std::process::exit(2);
        }
    };
    if let Err(error) = burnfit::cli::run(cli) {
        // One line, whatever a file name or file content in the message holds.
        let message = burnfit::console::escape_controls(&error.to_string());
        let _ = writeln!(std::io::stderr(), "error: {message}");
        std::process::exit(error.exit_code());
    }
}
