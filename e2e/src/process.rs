//! Server processes that cannot outlive the test, and commands with a deadline.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Runs `"$@"` and kills it when the harness's end of the stdin pipe closes, also
/// when the test process dies without running destructors (a cluster kept in a
/// `static` never is dropped), then removes the directory given as `$1`.
const WATCHDOG: &str = r#"dir=$1; shift
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
{ read -r _ <&3; kill -KILL "$child" 2>/dev/null; rm -rf "$dir"; } &
wait "$child""#;

/// A server process (etcd, kube-apiserver) in its own process group, under a
/// watchdog shell, with stdout and stderr in a log file.
pub struct Server {
    pub name: &'static str,
    pub log: PathBuf,
    shell: Child,
    // Held open, never written: closing it (by the test process exiting) fires the watchdog.
    _lifeline: ChildStdin,
}

impl Server {
    /// Starts `program args...`; `cleanup_dir` is removed if the watchdog fires.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        log: PathBuf,
        cleanup_dir: &Path,
    ) -> anyhow::Result<Server> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(cleanup_dir)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let lifeline = shell.stdin.take().context("stdin of the watchdog shell")?;
        Ok(Server {
            name,
            log,
            shell,
            _lifeline: lifeline,
        })
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.shell.try_wait().ok().flatten()
    }

    /// The log so far (empty if unreadable).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL to the whole process group (watchdog shell and server), then reaps the shell.
    pub fn kill(&mut self) {
        let group = format!("-{}", self.shell.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        if !matches!(killed, Ok(s) if s.success()) {
            let _ = self.shell.kill();
        }
        let _ = self.shell.wait();
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
