//! The `polypay` binary: parses the command line and runs it. See the library docs of
//! `polypay_host` for the architecture.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    polypay_host::memory::limit_arenas();
    let cli = polypay_host::cli::Cli::parse();
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
