//! `fairlead`: check, render or run Frontend/Backend manifests without a cluster.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use fairlead_operator::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Library code names its provider; this covers any rustls use that does not.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    Ok(cli.execute()?)
}
