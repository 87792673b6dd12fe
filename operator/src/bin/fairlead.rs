//! `fairlead`: check, render or run Frontend/Backend manifests without a cluster.

use std::process::ExitCode;

use clap::Parser;
use fairlead_operator::cli::Cli;

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    fairlead_dataplane::diagnostics::init(cli.log_format);
    // Library code names its provider; this covers any rustls use that does not.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(cli.execute()?)
}
