use std::io::Write;

use clap::Parser;

fn main() {
    let cli = burnfit::cli::Cli::parse();
    if let Err(error) = burnfit::cli::run(cli) {
        // A closed stderr must not turn an error into a panic.
        // One line, whatever a file name or file content in the message holds.
        let message = burnfit::console::escape_controls(&error.to_string());
        let _ = writeln!(std::io::stderr(), "error: {message}");
        std::process::exit(error.exit_code());
    }
}
