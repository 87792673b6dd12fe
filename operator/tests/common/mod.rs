//! Shared by the CLI tests: a `fairlead run` process, free ports, scratch folders.

#![allow(dead_code)] // each test file uses part of it

mod child;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `fairlead run` process and its log lines.
pub struct Running {
    child: std::process::Child,
    log: mpsc::Receiver<String>,
}

impl Running {
    /// `fairlead run -f PATH --threads 1 ARGS...`, logging at info.
    pub fn start(path: &Path, args: &[&str]) -> Running {
        Running::start_with_log(path, args, "info")
    }

    /// As [`Running::start`], with `RUST_LOG` set to `filter`.
    pub fn start_with_log(path: &Path, args: &[&str], filter: &str) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fairlead"));
        cmd.args(["run", "-f", path.to_str().unwrap(), "--threads", "1"])
            .args(args)
            .env("RUST_LOG", filter);
        Running::spawn(cmd)
    }

    /// Spawns `cmd` (with `NO_COLOR=1`), reading its stderr lines.
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = child::stderr_lines(&mut child);
        Running { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (10 s at most between lines) for a log line containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(10)) {
            if line.contains(needle) {
                return line;
            }
            seen.push(line);
        }
        panic!("no log line with {needle:?}; saw:\n{}", seen.join("\n"));
    }

    /// The log lines written so far and not yet read by [`Running::wait_for`].
    pub fn lines_so_far(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    pub fn signal(&self, name: &str) {
        child::signal(&self.child, name);
    }

    /// SIGTERM, then expects a clean exit.
    pub fn stop(mut self) {
        self.signal("TERM");
        self.wait_for("stopped");
        assert!(self.child.wait().unwrap().success());
    }
}

/// A test that fails midway must not leave fairlead running.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (there is a small race until fairlead binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An empty folder for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fairlead-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Frontend `web` on 127.0.0.1:`port` sending to Backend `app`, whose one
/// server `server` is 127.0.0.1:`server_port`; `backend_extra` adds lines
/// (indented two spaces) to the Backend's spec.
pub fn web_manifests(port: u16, server: &str, server_port: u16, backend_extra: &str) -> String {
    format!(
        "apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: web}}
spec:
  bind: {{address: 127.0.0.1, port: {port}}}
  defaultBackend: app
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {{name: app}}
spec:
  servers: [{{name: {server}, address: 127.0.0.1, port: {server_port}}}]
{backend_extra}"
    )
}
