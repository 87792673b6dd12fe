//! `fairlead-dataplane`: the in-cluster dataplane agent (see `agent`).

use std::process::ExitCode;

use clap::Parser;
use fairlead_dataplane::agent::{self, Options};
use fairlead_dataplane::diagnostics;

fn main() -> ExitCode {
    let options = Options::parse();
    diagnostics::init(options.log_format);
    // Library code names its provider; this covers any rustls use that does not.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match agent::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
