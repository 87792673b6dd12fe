//! fairlead's dataplane: the configuration model and the proxy engine that runs
//! it — TCP and HTTP/1.1 listeners, routing, load balancing, connection pools —
//! with atomic, hitless config changes. It knows nothing of Kubernetes: it runs
//! a [`DataplaneConfig`] that `render` produced.

pub mod backend;
pub mod balance;
pub mod config;
pub mod engine;
pub mod health;
pub mod http;
mod pool;
pub mod tcp;
pub mod tls;

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
}

/// Result with the dataplane's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
