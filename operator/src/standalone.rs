//! Standalone mode: manifests from files, rendered by the same [`render`] the
//! operator uses, served by a dataplane engine in this process, reloaded on
//! SIGHUP and when the files change.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fairlead_dataplane::DataplaneConfig;
use fairlead_dataplane::engine::{Engine, Workers};
use fairlead_dataplane::metrics::server::MetricsServer;
use tokio::signal::unix::{SignalKind, signal};

use crate::manifest::{self, Fingerprint};
use crate::render::render;
use crate::{Error, Result, SourceError};

/// Manifests loaded and rendered.
#[derive(Debug)]
pub struct Build {
    /// The config of every valid object (version 0).
    pub config: DataplaneConfig,
    /// Objects skipped because fairlead does not read their kind.
    pub warnings: Vec<String>,
    /// Every problem, in file and line order; none means the manifests are valid.
    pub errors: Vec<SourceError>,
    /// Objects read.
    pub objects: usize,
    /// Manifest files read.
    pub files: usize,
}

/// Loads the manifests under `paths` and renders them. Render runs only when
/// every file loads: errors about objects referencing ones that did not load
/// would mislead.
pub fn build(paths: &[PathBuf], namespace: &str) -> Build {
    let manifests = manifest::load(paths, namespace);
    let mut errors = manifests.errors.clone();
    let mut config = DataplaneConfig::default();
    if errors.is_empty() {
        let rendered = render(&manifests.snapshot);
        errors.extend(rendered.errors.iter().map(|e| manifests.locate(e)));
        config = rendered.config;
    }
    errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Build {
        config,
        warnings: manifests.warnings,
        errors,
        objects: manifests.origins.len(),
        files: manifests.files,
    }
}

/// What `fairlead run` needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Manifest files and directories.
    pub files: Vec<PathBuf>,
    /// Namespace of objects that name none.
    pub namespace: String,
    /// Proxy threads (event loops), the first shared with the control
    /// plane; `None`: one per CPU.
    pub threads: Option<NonZeroUsize>,
    /// How often to look for changed inputs.
    pub watch_interval: Duration,
    /// How long connections may finish at shutdown.
    pub shutdown_grace: Duration,
    /// This node's name for VirtualIP priorities; `None`: the host name.
    pub node_name: Option<String>,
    /// Where to serve `/metrics` and `/healthz` (plain HTTP); `None`: nowhere.
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// Serves the manifests until SIGTERM or SIGINT. Invalid manifests at start
/// are printed and give exit code 1; later, a bad change is logged and the
/// running config keeps serving.
pub fn run(options: RunOptions) -> Result<ExitCode> {
    let fingerprint = Fingerprint::of(&options.files);
    let first = build(&options.files, &options.namespace);
    log_warnings(&first);
    if !first.errors.is_empty() {
        for error in &first.errors {
            eprintln!("{error}");
        }
        return Ok(ExitCode::FAILURE);
    }
    // This thread's runtime runs the control plane and is the first proxy
    // worker; Workers adds the others.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "starting the runtime".into(),
            source,
        })?;
    runtime.block_on(serve(options, first.config, fingerprint))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    options: RunOptions,
    config: DataplaneConfig,
    mut fingerprint: Fingerprint,
) -> Result<()> {
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|source| Error::Io {
            what: format!("listening for {name}"),
            source,
        })
    };
    let mut hangup = listen(SignalKind::hangup(), "SIGHUP")?;
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
    let workers = Workers::start(options.threads).map_err(|source| Error::Io {
        what: "starting the worker threads".into(),
        source,
    })?;
    let engine = match &options.node_name {
        Some(node) => Engine::with_node(node.clone()),
        None => Engine::new(),
    };
    let engine = std::sync::Arc::new(engine.serving_on(workers.handles()));
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
    let mut running = DataplaneConfig {
        version: 1,
        ..config
    };
    engine.apply(running.clone()).await?;
    log_applied(&running);
    let mut tick = tokio::time::interval(options.watch_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reason = tokio::select! {
            _ = hangup.recv() => "SIGHUP",
            _ = tick.tick() => {
                let files = options.files.clone();
                let now = tokio::task::spawn_blocking(move || Fingerprint::of(&files)).await;
                match now {
                    Ok(now) if now != fingerprint => {
                        fingerprint = now;
                        "a file changed"
                    }
                    _ => continue,
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        };
        if let Some(next) = reload(&options, &running, reason).await {
            match engine.apply(next.clone()).await {
                Ok(()) => {
                    running = next;
                    log_applied(&running);
                }
                Err(e) => {
                    for line in e.to_string().lines() {
                        tracing::error!("{line}");
                    }
                    tracing::error!("new config rejected; keeping version {}", running.version);
                }
            }
        }
    }
    tracing::info!(
        "stopping; connections get {:?} to finish",
        options.shutdown_grace
    );
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    engine.shutdown(options.shutdown_grace).await;
    drop(workers);
    tracing::info!("stopped");
    Ok(())
}

/// The config to apply after `reason`, versioned after `running`; `None`
/// when the inputs are bad (logged) or render the same config.
async fn reload(
    options: &RunOptions,
    running: &DataplaneConfig,
    reason: &str,
) -> Option<DataplaneConfig> {
    tracing::info!("reloading: {reason}");
    let (files, namespace) = (options.files.clone(), options.namespace.clone());
    let built = tokio::task::spawn_blocking(move || build(&files, &namespace))
        .await
        .ok()?;
    log_warnings(&built);
    if !built.errors.is_empty() {
        for error in &built.errors {
            tracing::error!("{error}");
        }
        tracing::error!("manifests are invalid; keeping version {}", running.version);
        return None;
    }
    let next = DataplaneConfig {
        version: running.version,
        ..built.config
    };
    if next == *running {
        tracing::info!("config unchanged; keeping version {}", running.version);
        return None;
    }
    Some(DataplaneConfig {
        version: running.version + 1,
        ..next
    })
}

fn log_warnings(build: &Build) {
    for warning in &build.warnings {
        tracing::warn!("{warning}");
    }
}

fn log_applied(config: &DataplaneConfig) {
    tracing::info!(
        "applied config version {} ({} frontends, {} backends)",
        config.version,
        config.frontends.len(),
        config.backends.len()
    );
}
