//! The process's own log lines (not access logs): `tracing` to stderr, as
//! text or one JSON object per line, filtered by `RUST_LOG` (default `info`).
//!
//! Libraries that log through the `log` crate arrive here too. Warnings that
//! a client triggers at will (rustls logs `Illegal SNI extension` for every
//! handshake naming an IP address) are limited to a trickle whatever
//! `RUST_LOG` says; their debug and trace lines are not (asking for those is
//! a deliberate act).

use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::log_limit::LogLimit;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log collectors.
    Json,
}

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(ClientTriggered);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry
            .with(layer.with_ansi(std::io::stderr().is_terminal()))
            .init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).init(),
    }
}

/// Targets of libraries whose warnings a client's input can trigger.
const CLIENT_TRIGGERED: [&str; 2] = ["rustls", "tokio_rustls"];

/// Lines of those targets at info and above, in total, per second.
static LIMIT: LogLimit = LogLimit::per_second(1);

/// Lets through a trickle ([`LIMIT`]) of the info, warning and error events
/// of [`CLIENT_TRIGGERED`] targets.
struct ClientTriggered;

impl<S: Subscriber> Layer<S> for ClientTriggered {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if *metadata.level() > Level::INFO {
            return true;
        }
        if !is_client_triggered(metadata.target()) {
            // `log` records arrive with target `log` and theirs in a field.
            if metadata.target() != "log" {
                return true;
            }
            let mut target = LogTarget(false);
            event.record(&mut target);
            if !target.0 {
                return true;
            }
        }
        LIMIT.check().is_some()
    }
}

fn is_client_triggered(target: &str) -> bool {
    CLIENT_TRIGGERED.iter().any(|name| {
        target
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Whether a `log` record's `log.target` field is client-triggered.
struct LogTarget(bool);

impl Visit for LogTarget {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.0 = is_client_triggered(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_triggered_targets_are_whole_crate_names() {
        assert!(is_client_triggered("rustls"));
        assert!(is_client_triggered("rustls::msgs::handshake"));
        assert!(is_client_triggered("tokio_rustls::server"));
        assert!(!is_client_triggered("rustls_pemfile"));
        assert!(!is_client_triggered("hyper_rustls"));
        assert!(!is_client_triggered("fairlead_dataplane::admin"));
    }
}
