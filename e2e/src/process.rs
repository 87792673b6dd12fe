//! Processes that cannot outlive the test, and commands with a deadline.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Runs `"$@"` and kills it when the harness's end of the stdin pipe closes, also
/// when the test process dies without running destructors (a cluster kept in a
/// `static` never is dropped), then removes the directory `$1` if not empty.
/// Passes SIGTERM on to the process and exits with its status.
const WATCHDOG: &str = r#"dir=$1; shift
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
{ read -r _ <&3; kill -KILL "$child" 2>/dev/null; [ -z "$dir" ] || rm -rf "$dir"; } &
trap 'kill -TERM "$child" 2>/dev/null' TERM
wait "$child"; status=$?
# A trapped signal interrupts wait: wait again for the real status.
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
exit "$status""#;

/// A long-running process (etcd, kube-apiserver, an operator, a dataplane) in its
/// own process group under a watchdog shell, with stdout and stderr in a log
/// file. Dropping it kills it.
pub struct Process {
    name: String,
    log: PathBuf,
    shell: Child,
    done: bool,
    // Held open, never written: closing it (by the test process exiting) fires the watchdog.
    _lifeline: ChildStdin,
}

impl Process {
    /// Starts `program args...` with extra `env`; `cleanup_dir` (if any) is removed when the watchdog fires.
    pub(crate) fn start<I, S>(
        name: &str,
        program: &Path,
        args: I,
        env: &[(&str, &str)],
        log: PathBuf,
        cleanup_dir: Option<&Path>,
    ) -> anyhow::Result<Process>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(cleanup_dir.unwrap_or(Path::new("")))
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let lifeline = shell.stdin.take().context("stdin of the watchdog shell")?;
        Ok(Process {
            name: name.to_owned(),
            log,
            shell,
            done: false,
            _lifeline: lifeline,
        })
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far (empty if unreadable).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log, headed by its path, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log_text();
        let all: Vec<&str> = log.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        format!(
            "--- last {} lines of {} ---\n{}\n",
            tail.len(),
            self.log.display(),
            tail.join("\n")
        )
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.shell.try_wait().ok().flatten()
    }

    /// SIGKILL to the whole process group (the watchdog shell and the process), then reaps the shell.
    pub fn kill(&mut self) {
        if !self.done {
            let group = format!("-{}", self.shell.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.shell.kill();
        let _ = self.shell.wait();
        self.done = true;
    }

    /// SIGTERM to the process; returns its exit status if it ends within
    /// `grace`, else kills it and fails.
    pub fn terminate(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if self.done {
            bail!("{} was already stopped", self.name);
        }
        // To the watchdog shell only, which passes it on and reports the exit status.
        let _ = Command::new("kill")
            .args(["-TERM", &self.shell.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                self.kill();
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        bail!("{} did not exit within {grace:?} of SIGTERM", self.name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs `cmd` with `stdin` fed in, collecting its output; kills it after `timeout`.
pub fn run_bounded(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<Output> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let feed = child
        .stdin
        .take()
        .zip(stdin.map(<[u8]>::to_vec))
        .map(|(mut pipe, data)| {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })
        });
    let readers = [
        child.stdout.take().map(drain),
        child.stderr.take().map(drain),
    ];
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(feed) = feed {
        let _ = feed.join();
    }
    let [stdout, stderr] = readers.map(|r| r.and_then(|h| h.join().ok()).unwrap_or_default());
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
