//! The `fairlead` command line: `check`, `render` and `run`.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fairlead_dataplane::diagnostics::LogFormat;

use crate::Result;
use crate::standalone::{self, Build, RunOptions};

/// fairlead: HAProxy + Keepalived, made Kubernetes-native. These commands run
/// the Frontend/Backend manifests you would `kubectl apply`, without a cluster.
#[derive(Debug, Parser)]
#[command(name = "fairlead", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as text or JSON (one object per line); RUST_LOG sets the level.
    #[arg(
        long,
        global = true,
        env = "FAIRLEAD_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate manifests like `haproxy -c`: prints "Configuration file is
    /// valid" and exits 0, or one line per error (file:line: Kind ns/name:
    /// field: reason) and exits 1.
    Check(Inputs),
    /// Print the dataplane config the manifests render to, as stable JSON;
    /// exits 1 with one line per error when they do not render.
    Render(Inputs),
    /// Run a load balancer serving the manifests; reload on SIGHUP and when an
    /// input file changes, keeping the running config when a new one is bad;
    /// stop gracefully on SIGTERM or SIGINT. Logs go to stderr (RUST_LOG,
    /// default info).
    Run(RunArgs),
}

/// Where the manifests are.
#[derive(Debug, Args)]
pub struct Inputs {
    /// Manifest file or directory; directories are walked recursively for
    /// .yaml, .yml and .json files, skipping names that start with a dot.
    /// Repeat the flag, or separate paths with commas.
    #[arg(
        short = 'f',
        long = "filename",
        visible_alias = "file",
        env = "FAIRLEAD_FILES",
        value_name = "PATH",
        value_delimiter = ',',
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Namespace of objects whose metadata names none.
    #[arg(
        short = 'n',
        long,
        env = "FAIRLEAD_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
}

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where the manifests are.
    #[command(flatten)]
    pub inputs: Inputs,
    /// Proxy threads, each with its own event loop and a socket per
    /// listener (SO_REUSEPORT), like HAProxy's nbthread; the first also
    /// reloads and checks health [default: one per CPU].
    #[arg(long, env = "FAIRLEAD_THREADS", value_name = "N")]
    pub threads: Option<NonZeroUsize>,
    /// How often to look for changed, added or removed input files (1s, 500ms, 1m).
    #[arg(long, env = "FAIRLEAD_WATCH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub watch_interval: Duration,
    /// On SIGTERM or SIGINT, how long established connections may finish
    /// before they are closed.
    #[arg(long, env = "FAIRLEAD_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// This node's name: picks its priority in each VirtualIP's `priorities`
    /// [default: the host name].
    #[arg(long, env = "FAIRLEAD_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Serve Prometheus metrics on this address (plain HTTP: /metrics and
    /// /healthz) [default: not served].
    #[arg(long, env = "FAIRLEAD_METRICS_ADDRESS", value_name = "ADDR:PORT")]
    pub metrics_address: Option<std::net::SocketAddr>,
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    match fairlead_crds::duration::parse(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be greater than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl Cli {
    /// Runs the command; the exit code says whether the manifests were valid.
    pub fn execute(self) -> Result<ExitCode> {
        match self.command {
            Command::Check(inputs) => Ok(check(&inputs)),
            Command::Render(inputs) => Ok(render(&inputs)),
            Command::Run(args) => standalone::run(RunOptions {
                files: args.inputs.files,
                namespace: args.inputs.namespace,
                threads: args.threads,
                watch_interval: args.watch_interval,
                shutdown_grace: args.shutdown_grace,
                node_name: args.node_name,
                metrics_address: args.metrics_address,
            }),
        }
    }
}

fn check(inputs: &Inputs) -> ExitCode {
    let build = standalone::build(&inputs.files, &inputs.namespace);
    if report(&build) {
        return ExitCode::FAILURE;
    }
    let config = &build.config;
    println!(
        "Configuration file is valid ({} frontends, {} backends, {} objects from {} files)",
        config.frontends.len(),
        config.backends.len(),
        build.objects,
        build.files
    );
    ExitCode::SUCCESS
}

fn render(inputs: &Inputs) -> ExitCode {
    let build = standalone::build(&inputs.files, &inputs.namespace);
    if report(&build) {
        return ExitCode::FAILURE;
    }
    println!("{}", build.config.to_json_pretty());
    ExitCode::SUCCESS
}

/// Prints warnings and errors to stderr; true when there were errors.
fn report(build: &Build) -> bool {
    for warning in &build.warnings {
        eprintln!("warning: {warning}");
    }
    for error in &build.errors {
        eprintln!("{error}");
    }
    !build.errors.is_empty()
}
