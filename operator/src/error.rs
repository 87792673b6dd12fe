//! The crate's error type, and [`SourceError`]: one problem in the user's
//! manifests, located by file, line, object and field.

use std::fmt;
use std::path::PathBuf;

/// Errors of the operator library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifests do not load or do not render; one problem per line.
    #[error("{}", lines(.0))]
    Invalid(Vec<SourceError>),
    /// The embedded dataplane refused the config or could not start.
    #[error(transparent)]
    Dataplane(#[from] fairlead_dataplane::Error),
    /// A call to the Kubernetes API failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done, naming the object.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// A watch cache stopped before it listed its objects once.
    #[error("the watch of {kind} stopped before it was synced")]
    WatchStopped {
        /// The kind watched.
        kind: &'static str,
    },
    /// The leader Lease was lost (another replica took it, or renewing failed for too long).
    #[error("leader Lease {lease}: {message}")]
    LeadershipLost {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What happened.
        message: String,
    },
    /// The dataplane credentials Secret is unusable.
    #[error("Secret {secret}: {message}")]
    Credentials {
        /// `namespace/name` of the Secret.
        secret: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// An operating-system resource (runtime, signal handler) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn lines(errors: &[SourceError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// One problem in a manifest: `file:line: Backend default/app: spec.servers[1].port: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line where the problem, or the object holding it, starts;
    /// `None` when it concerns the whole file.
    pub line: Option<usize>,
    /// The object, as `Kind namespace/name`, when known.
    pub object: Option<String>,
    /// The field path within the object, as `spec.servers[1].port`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        for part in [&self.object, &self.field].into_iter().flatten() {
            write!(f, ": {part}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_error_shows_every_known_part() {
        let mut e = SourceError {
            file: "a.yaml".into(),
            line: Some(3),
            object: Some("Backend default/app".into()),
            field: Some("spec.servers[1].port".into()),
            message: "70000 is not a port (1-65535)".into(),
        };
        assert_eq!(
            e.to_string(),
            "a.yaml:3: Backend default/app: spec.servers[1].port: 70000 is not a port (1-65535)"
        );
        e.line = None;
        e.object = None;
        e.field = None;
        assert_eq!(e.to_string(), "a.yaml: 70000 is not a port (1-65535)");
    }
}
