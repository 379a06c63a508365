use clap::Parser;

fn main() {
    let cli = burnfit::cli::Cli::parse();
    if let Err(error) = burnfit::cli::run(cli) {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
}
