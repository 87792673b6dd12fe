//! fairlead's dataplane: the configuration model and the proxy engine that runs
//! it — TCP and HTTP/1.1 listeners, routing, load balancing, connection pools —
//! with atomic, hitless config changes. It knows nothing of Kubernetes: it runs
//! a [`DataplaneConfig`] that `render` produced. The [`agent`] (the
//! `fairlead-dataplane` binary) runs an engine behind the HTTPS [`admin`] API
//! through which the operator pushes configs. Virtual IPs are held with VRRP
//! ([`vrrp`]).

pub mod access_log;
pub mod admin;
pub mod agent;
pub mod backend;
pub mod balance;
pub mod config;
pub mod counters;
pub mod diagnostics;
mod drain;
pub mod engine;
pub mod frontend;
pub mod health;
pub mod http;
pub mod log_limit;
pub mod metrics;
mod pool;
pub mod snapshot;
pub mod stats;
pub mod tcp;
pub mod tls;
pub mod vrrp;

pub use config::DataplaneConfig;
pub use engine::Engine;

/// Errors of the dataplane library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config text is not valid JSON for the model.
    #[error("config does not parse: {0}")]
    Parse(String),
    /// The config breaks a rule; one problem per line, each naming object and field.
    #[error("{0}")]
    Invalid(String),
    /// A listener could not be opened; the running config is untouched.
    #[error("frontend {frontend}: bind {addr}: {source}")]
    Bind {
        frontend: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A command-line flag's value is unusable (missing file, bad PEM, ...).
    #[error("{flag}: {reason}")]
    Flag { flag: &'static str, reason: String },
    /// An operating-system resource (runtime, socket, signal handler, file) failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Result with the dataplane's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
