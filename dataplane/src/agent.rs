//! The `fairlead-dataplane` agent: an engine, the last good config restored
//! from the state directory, and the admin API the operator pushes to.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Parser};
use tokio::signal::unix::{SignalKind, signal};

use crate::admin::{self, AdminServer, Api, Auth, Credentials, StateDir};
use crate::diagnostics::LogFormat;
use crate::engine::Workers;
use crate::metrics::server::MetricsServer;
use crate::tls::{certs, provider};
use crate::{Engine, Error, Result};

/// fairlead-dataplane: runs the load balancer config the fairlead operator
/// pushes to its HTTPS admin API, and keeps serving the last good one across
/// restarts. Logs go to stderr (RUST_LOG, default info).
#[derive(Clone, Debug, Parser)]
#[command(name = "fairlead-dataplane", version)]
#[command(group(ArgGroup::new("auth").required(true).multiple(true).args(["token_file", "client_ca"])))]
pub struct Options {
    /// Address of the admin API (HTTPS).
    #[arg(
        long,
        env = "FAIRLEAD_ADMIN_ADDRESS",
        default_value = "0.0.0.0:9443",
        value_name = "ADDR:PORT"
    )]
    pub admin_address: SocketAddr,
    /// PEM certificate (chain) of the admin API; the operator verifies the
    /// name `fairlead-dataplane` in it.
    #[arg(long, env = "FAIRLEAD_TLS_CERT", value_name = "PATH")]
    pub tls_cert: PathBuf,
    /// PEM private key of that certificate.
    #[arg(long, env = "FAIRLEAD_TLS_KEY", value_name = "PATH")]
    pub tls_key: PathBuf,
    /// PEM CA certificate(s): callers presenting a client certificate that
    /// chains to one are allowed. Without --token-file a client certificate
    /// is required for /v1/*; /healthz and /readyz need none (kubelet probes).
    #[arg(long, env = "FAIRLEAD_CLIENT_CA", value_name = "PATH")]
    pub client_ca: Option<PathBuf>,
    /// File holding the bearer token callers send (`Authorization: Bearer
    /// <token>`); surrounding whitespace is trimmed.
    #[arg(long, env = "FAIRLEAD_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Directory where the last good config is kept (config.json) and
    /// restored from at start; created when missing.
    #[arg(
        long,
        env = "FAIRLEAD_STATE_DIR",
        default_value = "/var/lib/fairlead",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,
    /// Name of this node (in a DaemonSet, spec.nodeName): reported in the
    /// status, and the node that virtual IP priorities and node selectors
    /// refer to [default: the host name].
    #[arg(long, env = "FAIRLEAD_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Proxy threads, each with its own event loop and a socket per
    /// listener (SO_REUSEPORT), like HAProxy's nbthread; the first also runs
    /// the admin API, health checks and VRRP [default: one per CPU].
    #[arg(long, env = "FAIRLEAD_THREADS", value_name = "N")]
    pub threads: Option<NonZeroUsize>,
    /// How often the files of --tls-cert, --tls-key, --client-ca and
    /// --token-file are read again; changed contents replace the credentials
    /// without a restart (a mounted Secret changes in place). 0s: never.
    #[arg(long, env = "FAIRLEAD_CREDENTIALS_RELOAD", default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub credentials_reload: Duration,
    /// On SIGTERM or SIGINT, how long established connections may finish
    /// before they are closed (500ms, 10s, 1m).
    #[arg(long, env = "FAIRLEAD_SHUTDOWN_GRACE", default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Serve Prometheus metrics on this address (plain HTTP: /metrics and
    /// /healthz, no authentication) [default: not served].
    #[arg(long, env = "FAIRLEAD_METRICS_ADDRESS", value_name = "ADDR:PORT")]
    pub metrics_address: Option<SocketAddr>,
    /// Log lines as text or JSON (one object per line); RUST_LOG sets the level.
    #[arg(long, env = "FAIRLEAD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

impl Error {
    /// The process exit code for this error: 2 for unusable flags, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Flag { .. } => 2,
            _ => 1,
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT, then stops the admin API and
/// shuts the engine down within the grace period.
pub fn run(options: Options) -> Result<()> {
    // This thread's runtime runs the control plane and is the first proxy
    // worker; Workers adds the others.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "starting the runtime".into(),
            source,
        })?;
    runtime.block_on(async {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|source| Error::Io {
                what: format!("listening for {name}"),
                source,
            })
        };
        let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
        let agent = Agent::start(&options).await?;
        let signal = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!("{signal}: stopping");
        agent.stop().await;
        Ok(())
    })
}

/// A running agent.
pub struct Agent {
    api: Arc<Api>,
    admin: AdminServer,
    metrics: Option<MetricsServer>,
    reload: Option<tokio::task::JoinHandle<()>>,
    shutdown_grace: Duration,
    /// Proxy worker threads, stopped after the engine.
    workers: Workers,
}

impl Agent {
    /// Reads the credentials, restores the persisted config, then serves the
    /// admin API. Errors name the flag at fault.
    pub async fn start(options: &Options) -> Result<Agent> {
        let files = credential_files(options).await;
        let credentials = credentials(options)?;
        let state = StateDir::open(&options.state_dir).map_err(|e| Error::Flag {
            flag: "--state-dir",
            reason: format!("{}: {e}", options.state_dir.display()),
        })?;
        // Bind first so a taken port fails before any frontend opens; the
        // listener accepts only once the persisted config runs.
        let listener = tokio::net::TcpListener::bind(options.admin_address)
            .await
            .map_err(|source| Error::Io {
                what: format!("--admin-address {}", options.admin_address),
                source,
            })?;
        let workers = Workers::start(options.threads).map_err(|source| Error::Io {
            what: "starting the worker threads".into(),
            source,
        })?;
        let engine = match &options.node_name {
            Some(name) => Engine::with_node(name.clone()),
            None => Engine::new(),
        };
        let engine = Arc::new(engine.serving_on(workers.handles()));
        let metrics = match options.metrics_address {
            None => None,
            Some(addr) => {
                let io = |source| Error::Io {
                    what: format!("--metrics-address {addr}"),
                    source,
                };
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
                Some(MetricsServer::start(listener, engine.clone()).map_err(io)?)
            }
        };
        let api = Arc::new(Api::new(engine, credentials, state));
        api.restore().await;
        let admin = admin::serve(listener, api.clone()).map_err(|source| Error::Io {
            what: "admin API listener".into(),
            source,
        })?;
        let reload = (!options.credentials_reload.is_zero())
            .then(|| tokio::spawn(reload_credentials(options.clone(), files, api.clone())));
        tracing::info!(node = api.engine().node(), "dataplane agent started");
        Ok(Agent {
            api,
            admin,
            metrics,
            reload,
            shutdown_grace: options.shutdown_grace,
            workers,
        })
    }

    /// The address the metrics listener listens on, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// The address the admin API listens on.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// Stops the admin API, then the engine (connections get the grace period).
    pub async fn stop(self) {
        if let Some(reload) = self.reload {
            reload.abort();
        }
        self.admin.stop().await;
        if let Some(metrics) = self.metrics {
            metrics.stop().await;
        }
        tracing::info!(
            "stopping the engine; connections get {:?} to finish",
            self.shutdown_grace
        );
        self.api.engine().shutdown(self.shutdown_grace).await;
        drop(self.workers);
        tracing::info!("stopped");
    }
}

/// Every `--credentials-reload`, reads the credential files; when they differ
/// from `seen`, swaps in new credentials, or logs why not and keeps the old.
async fn reload_credentials(options: Options, mut seen: Vec<Option<Vec<u8>>>, api: Arc<Api>) {
    let mut tick = tokio::time::interval(options.credentials_reload);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tick.tick().await;
        let files = credential_files(&options).await;
        if files == seen {
            continue;
        }
        seen = files;
        match credentials(&options) {
            Ok(credentials) => {
                api.set_credentials(credentials);
                tracing::info!("admin API credentials reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "admin API credentials not reloaded; the ones in use stay");
            }
        }
    }
}

/// The contents of the credential files (None: unreadable).
async fn credential_files(options: &Options) -> Vec<Option<Vec<u8>>> {
    let paths: Vec<PathBuf> = [&options.client_ca, &options.token_file]
        .into_iter()
        .flatten()
        .chain([&options.tls_cert, &options.tls_key])
        .cloned()
        .collect();
    let mut contents = Vec::new();
    for path in paths {
        contents.push(tokio::fs::read(path).await.ok());
    }
    contents
}

/// The admin TLS config and who may call, from the files the flags name.
fn credentials(options: &Options) -> Result<Credentials> {
    let cert = read("--tls-cert", &options.tls_cert)?;
    let key = read("--tls-key", &options.tls_key)?;
    let key = certs::parse_key(&key).map_err(|reason| Error::Flag {
        flag: "--tls-key",
        reason,
    })?;
    let chain = certs::parse_chain(&cert).map_err(|reason| Error::Flag {
        flag: "--tls-cert",
        reason,
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Flag {
            flag: "--tls-key",
            reason: format!("private key is not usable: {e}"),
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| Error::Flag {
        flag: "--tls-key",
        reason: format!("does not match the --tls-cert certificate: {e}"),
    })?;
    let token = match &options.token_file {
        None => None,
        Some(path) => match read("--token-file", path)?.trim() {
            "" => {
                return Err(Error::Flag {
                    flag: "--token-file",
                    reason: format!("{}: the file is empty", path.display()),
                });
            }
            token => Some(token.to_owned()),
        },
    };
    let client_ca = match &options.client_ca {
        None => None,
        Some(path) => Some(
            certs::parse_chain(&read("--client-ca", path)?).map_err(|reason| Error::Flag {
                flag: "--client-ca",
                reason,
            })?,
        ),
    };
    let auth = Auth::new(token, client_ca.is_some());
    if auth.is_empty() {
        return Err(Error::Flag {
            flag: "--token-file",
            reason: "no authentication configured: give --token-file and/or --client-ca".into(),
        });
    }
    let tls =
        admin::server_config(Arc::new(certified), client_ca).map_err(|reason| Error::Flag {
            flag: "--client-ca",
            reason,
        })?;
    Ok(Credentials {
        tls: Arc::new(tls),
        auth,
    })
}

fn read(flag: &'static str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Flag {
        flag,
        reason: format!("{}: {e}", path.display()),
    })
}

/// Parses `500ms`, `10s`, `1m`, `1h`, or sums of them (`1m30s`).
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let value: u64 = (rest[..digits].parse())
            .map_err(|_| format!("{text:?}: expected a number, then ms, s, m or h"))?;
        rest = &rest[digits..];
        let (unit, len) = match rest.as_bytes() {
            [b'm', b's', ..] => (Duration::from_millis(1), 2),
            [b's', ..] => (Duration::from_secs(1), 1),
            [b'm', ..] => (Duration::from_secs(60), 1),
            [b'h', ..] => (Duration::from_secs(3600), 1),
            _ => return Err(format!("{text:?}: expected a unit: ms, s, m or h")),
        };
        let part = u32::try_from(value)
            .ok()
            .and_then(|v| unit.checked_mul(v))
            .ok_or_else(|| format!("{text:?}: too large"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{text:?}: too large"))?;
        rest = &rest[len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 s").is_err());
    }

    #[test]
    fn flags_need_cert_key_and_some_auth() {
        let base = ["fairlead-dataplane", "--tls-cert", "c", "--tls-key", "k"];
        let err = Options::try_parse_from(base).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--token-file"), "{err}");
        let with_token = base.iter().chain(&["--token-file", "t"]);
        let options = Options::try_parse_from(with_token).unwrap();
        assert_eq!(options.admin_address, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(options.state_dir, PathBuf::from("/var/lib/fairlead"));
        assert_eq!(options.shutdown_grace, Duration::from_secs(10));
        let err = Options::try_parse_from(["fairlead-dataplane", "--token-file", "t"]).unwrap_err();
        assert!(err.to_string().contains("--tls-cert"), "{err}");
    }
}
