//! Container images of the debug binaries, for tests that run Pods, and a
//! throwaway containerd that checks they load and start.
//!
//! Each image is the dev-profile binary (built as `cargo test` builds) packed
//! FROM scratch by `scripts/build-image.py --ldd` (with the glibc libraries it
//! links), written to `<target dir>/fairlead-e2e-images/` and reused while it
//! is newer than the binary and the script and was built with the same options.
//!
//! ```no_run
//! let image = fairlead_e2e::images::dataplane_image().unwrap();
//! // ctr -n k8s.io images import <image.archive>, then run <image.name>
//! assert_eq!(image.name, "docker.io/fairlead/dataplane:0.1.0-dev");
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::process::{Process, run_bounded};
use crate::setup::repo_path;
use crate::workspace_binary;

/// The tag of the test images: the workspace version with `-dev`.
pub const DEV_TAG: &str = concat!(env!("CARGO_PKG_VERSION"), "-dev");
/// How long `build-image.py` may take (a debug binary is some 100 MB).
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// An image archive and the name it imports as.
#[derive(Clone, Debug)]
pub struct Image {
    /// Full reference, e.g. `docker.io/fairlead/dataplane:0.1.0-dev`.
    pub name: String,
    /// OCI layout + docker-archive tar for `ctr images import` or `docker load`.
    pub archive: PathBuf,
    /// The binary packed (in the shared target dir: a later build replaces it).
    pub binary: PathBuf,
    script_args: Vec<OsString>,
}

/// `fairlead-dataplane` as `docker.io/fairlead/dataplane:0.1.0-dev`: root (see
/// `scripts/build-images.sh`), entrypoint `/fairlead-dataplane`, port 9443.
pub fn dataplane_image() -> anyhow::Result<Image> {
    dataplane_image_tagged(DEV_TAG)
}

/// The dataplane image under another tag (an upgrade needs two): the same
/// binary, so only the name and the archive differ.
pub fn dataplane_image_tagged(tag: &str) -> anyhow::Result<Image> {
    let binary = workspace_binary("fairlead-dataplane", "fairlead-dataplane")?;
    build(
        &format!("docker.io/fairlead/dataplane:{tag}"),
        &binary,
        &[
            "--user=0:0",
            "--entrypoint=/fairlead-dataplane",
            "--port=9443/tcp",
            "--dir=/var/lib/fairlead:0755",
        ],
    )
}

/// `fairlead-operator` as `docker.io/fairlead/operator:0.1.0-dev`: user 65532,
/// entrypoint `/fairlead-operator`, port 8080.
pub fn operator_image() -> anyhow::Result<Image> {
    let binary = workspace_binary("fairlead-operator", "fairlead-operator")?;
    build(
        &format!("docker.io/fairlead/operator:{DEV_TAG}"),
        &binary,
        &[
            "--user=65532:65532",
            "--entrypoint=/fairlead-operator",
            "--port=8080/tcp",
        ],
    )
}

/// `demo-backend` as `docker.io/fairlead/demo-backend:0.1.0-dev`: user 65532,
/// entrypoint `/demo-backend` (its flags: `--listen`, `--name`, `--mode`), port 8080.
pub fn demo_backend_image() -> anyhow::Result<Image> {
    let binary = workspace_binary("fairlead-tests", "demo-backend")?;
    build(
        &format!("docker.io/fairlead/demo-backend:{DEV_TAG}"),
        &binary,
        &[
            "--user=65532:65532",
            "--entrypoint=/demo-backend",
            "--port=8080/tcp",
        ],
    )
}

fn build(name: &str, binary: &Path, options: &[&str]) -> anyhow::Result<Image> {
    let file_name = binary
        .file_name()
        .context("binary without a file name")?
        .to_string_lossy()
        .into_owned();
    let mut script_args: Vec<OsString> = vec![
        format!("--name={name}").into(),
        "--ldd".into(),
        OsString::from(format!("--file={}:/{file_name}", binary.display())),
    ];
    script_args.extend(options.iter().map(OsString::from));
    // <target>/debug/<binary> -> <target>/fairlead-e2e-images/
    let dir = binary
        .parent()
        .and_then(Path::parent)
        .context("binary outside a target dir")?
        .join("fairlead-e2e-images");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tag = name.rsplit(':').next().unwrap_or("latest");
    let image = Image {
        name: name.to_owned(),
        archive: dir.join(format!("{file_name}-{tag}.tar")),
        binary: binary.to_owned(),
        script_args,
    };
    let recorded = image.archive.with_extension("args");
    let args_text = format!("{:?}", image.script_args);
    if fresh(&image.archive, binary)?
        && std::fs::read_to_string(&recorded).ok().as_deref() == Some(args_text.as_str())
    {
        return Ok(image);
    }
    // Another test process may build the same image: each writes its own file
    // and renames it into place.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let partial = dir.join(format!(
        ".{file_name}-{tag}-{}-{}.tar",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = image.rebuild_to(&partial).and_then(|()| {
        std::fs::write(&recorded, &args_text)?;
        std::fs::rename(&partial, &image.archive)?;
        Ok(())
    });
    let _ = std::fs::remove_file(&partial);
    result.with_context(|| format!("building image {name}"))?;
    Ok(image)
}

/// Whether `archive` exists and is newer than `binary` and the build script.
fn fresh(archive: &Path, binary: &Path) -> anyhow::Result<bool> {
    let modified = |p: &Path| -> anyhow::Result<SystemTime> {
        Ok(std::fs::metadata(p)
            .with_context(|| format!("reading {}", p.display()))?
            .modified()?)
    };
    let Ok(built) = modified(archive) else {
        return Ok(false);
    };
    Ok(built > modified(binary)? && built > modified(&repo_path("scripts/build-image.py"))?)
}

impl Image {
    /// Runs `build-image.py` again with this image's inputs, writing to `out`
    /// (with SOURCE_DATE_EPOCH=0, so the same inputs give the same bytes).
    pub fn rebuild_to(&self, out: &Path) -> anyhow::Result<()> {
        let mut cmd = Command::new(repo_path("scripts/build-image.py"));
        cmd.args(&self.script_args)
            .arg("--out")
            .arg(out)
            .env("SOURCE_DATE_EPOCH", "0");
        let output = run_bounded(cmd, None, BUILD_TIMEOUT)?;
        if !output.status.success() {
            bail!(
                "scripts/build-image.py failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }
}

/// A containerd of its own (root, state, socket and runc root in a temporary
/// directory; the CRI plugin off), for checking that images import and run.
/// Needs root, and `containerd`, `ctr` and `runc` (Debian packages containerd
/// and runc). Dropping it kills its containers and itself and removes the directory.
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    process: Process,
}

/// How long one `ctr` command may take.
const CTR_TIMEOUT: Duration = Duration::from_secs(120);

impl Containerd {
    /// Starts containerd and waits (up to 30 s) until `ctr version` answers.
    pub fn start() -> anyhow::Result<Containerd> {
        for tool in ["containerd", "ctr", "runc"] {
            if !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()?
                .status
                .success()
            {
                bail!("{tool} is missing: apt-get install containerd runc");
            }
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fairlead-containerd-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let socket = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {socket:?}\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt:?}\n",
            root = dir.join("root"),
            state = dir.join("state"),
            opt = dir.join("opt"),
        );
        std::fs::write(dir.join("config.toml"), config)?;
        let process = Process::start(
            "containerd",
            Path::new("containerd"),
            [OsString::from("--config"), dir.join("config.toml").into()],
            &[],
            dir.join("containerd.log"),
            Some(&dir),
        );
        let process = match process {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut containerd = Containerd {
            dir,
            socket,
            process,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = containerd.process.exited() {
                bail!(
                    "containerd exited ({status})\n{}",
                    containerd.process.log_tail(30)
                );
            }
            if containerd.socket.exists() && containerd.ctr(["version"])?.status.success() {
                return Ok(containerd);
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer within 30 s\n{}",
                    containerd.process.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `ctr --address <socket> -n k8s.io ARGS...` (bounded).
    pub fn ctr<I, S>(&self, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["-n", "k8s.io"])
            .args(args);
        run_bounded(cmd, None, CTR_TIMEOUT)
    }

    /// Like [`Containerd::ctr`]; stdout, or an error with the output when it fails.
    pub fn ctr_ok<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.ctr(&args)?;
        if !out.status.success() {
            bail!(
                "ctr {args:?} failed ({}): {}{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.process.log_tail(20)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ctr images import` of the archive; fails unless the image is then listed by its name.
    pub fn import(&self, image: &Image) -> anyhow::Result<()> {
        self.ctr_ok([
            OsString::from("images"),
            "import".into(),
            (&image.archive).into(),
        ])?;
        let names = self.ctr_ok(["images", "ls", "-q"])?;
        if !names.lines().any(|n| n == image.name) {
            bail!("{} is not listed after import; images: {names}", image.name);
        }
        Ok(())
    }

    /// `ctr run` options that keep runc's state and the I/O fifos in this
    /// containerd's directory and make no cgroup; put them before the image name.
    pub fn run_options(&self) -> Vec<OsString> {
        vec![
            OsString::from("--runc-root"),
            self.dir.join("runc").into(),
            "--fifo-dir".into(),
            self.dir.join("fifo").into(),
            "--cgroup=".into(),
        ]
    }

    /// The log so far.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Kills every task and deletes every container, bounded by the ctr timeout.
    fn remove_containers(&self) {
        let Ok(tasks) = self.ctr_ok(["tasks", "ls", "-q"]) else {
            return;
        };
        for id in tasks.lines() {
            let _ = self.ctr(["tasks", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(["tasks", "delete", "-f", id]);
        }
        if let Ok(containers) = self.ctr_ok(["containers", "ls", "-q"]) {
            for id in containers.lines() {
                let _ = self.ctr(["containers", "delete", id]);
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_containers();
        self.process.kill();
        // A container's rootfs left mounted (a task that would not die) must
        // not keep the directory from being removed.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.to_string_lossy().into_owned();
        for mount_point in mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
        {
            let _ = Command::new("umount").args(["-l", mount_point]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
