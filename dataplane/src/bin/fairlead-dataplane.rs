//! `fairlead-dataplane`: the in-cluster dataplane agent (see `agent`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use fairlead_dataplane::agent::{self, Options};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Library code names its provider; this covers any rustls use that does not.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = Options::parse();
    match agent::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
