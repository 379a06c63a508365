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
