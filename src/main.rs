use std::io::Write;

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    // The Vulkan loader prints "error: XDG_RUNTIME_DIR is invalid or not set" when it is unset,
    // which reads like one of burnfit's errors. Before any thread exists, give it a default.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: single-threaded here: nothing else reads or writes the environment yet.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
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
            // The message is what comes before clap's usage block, on one line (a missing
            // argument is named on the line after "not provided:").
            let rendered = error.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            let message = burnfit::console::escape_controls(&message.join(" "));
            let _ = writeln!(
                std::io::stderr(),
                "{message}\nFor more information, try '--help'."
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
