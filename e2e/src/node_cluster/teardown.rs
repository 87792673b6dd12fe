//! Removing everything a node cluster run made, from its id and directory
//! alone, so the same code serves `Drop` and the sweep of runs whose test
//! process was killed: processes in the run's cgroups (containers) and
//! processes naming the run directory (shims, kubelets, containerds, the control
//! plane), shim sockets, mounts under the run directory, cgroups, network
//! namespaces, kubelet and CNI files outside it, the directory; and what
//! every kubelet shares (the kernel sysctls it changes, its device plugin
//! socket at a fixed path), restored or removed once no run is left.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::kubelet::cgroup_hierarchies;
use super::network::{self, PREFIX};

/// Where runs live: `<BASE>/<id>/`, beside the saved sysctls and their lock.
pub const BASE: &str = "/tmp/fairlead-nodes";
/// Host sysctls the kubelet sets (container_manager_linux.go, setupKernelTunables).
const KUBELET_SYSCTLS: [&str; 6] = [
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
];
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Where every kubelet puts its device plugin socket, whatever its root dir.
const KUBELET_DEVICE_PLUGINS: &str = "/var/lib/kubelet/device-plugins";

/// The run directory, holding `owner` (pid and start time of the test process).
pub fn run_dir(id: &str) -> PathBuf {
    Path::new(BASE).join(id)
}

/// Creates a run directory with a new id and registers the current process as its owner.
pub fn new_run() -> anyhow::Result<(String, PathBuf)> {
    std::fs::create_dir_all(BASE).with_context(|| format!("creating {BASE}"))?;
    for attempt in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let id = format!(
            "{:06x}",
            (nanos ^ std::process::id().rotate_left(12) ^ attempt.wrapping_mul(0x9e37_79b9))
                & 0xff_ffff
        );
        let dir = run_dir(&id);
        if dir.exists() {
            continue;
        }
        // Prepared under a hidden name and renamed, so a sweep never sees a run without its owner.
        let staging = Path::new(BASE).join(format!(".new-{id}"));
        std::fs::create_dir_all(&staging)?;
        let me = std::process::id();
        std::fs::write(staging.join("owner"), format!("{me} {}", start_time(me)))?;
        if std::fs::rename(&staging, &dir).is_ok() {
            return Ok((id, dir));
        }
        let _ = std::fs::remove_dir_all(&staging);
    }
    anyhow::bail!("no free run id under {BASE}")
}

/// A process's start time (field 22 of /proc/PID/stat), telling a reused pid apart.
fn start_time(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().nth(19).unwrap_or("").to_owned()
}

/// Whether the process that owns run `dir` still runs.
fn owner_alive(dir: &Path) -> bool {
    let Ok(owner) = std::fs::read_to_string(dir.join("owner")) else {
        return false;
    };
    let mut parts = owner.split_whitespace();
    let (Some(pid), Some(started)) = (parts.next(), parts.next()) else {
        return false;
    };
    pid.parse().is_ok_and(|pid| start_time(pid) == started)
}

/// Ids of runs under [`BASE`], with whether their owner runs.
fn runs() -> Vec<(String, bool)> {
    let Ok(entries) = std::fs::read_dir(BASE) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_dir().then_some(())?;
            let id = e.file_name().into_string().ok()?;
            is_run_id(&id).then_some(())?;
            Some((id, owner_alive(&e.path())))
        })
        .collect()
}

/// Tears down every run whose owner is gone, and namespaces named like a run
/// that has no directory. Returns what could not be removed.
pub fn sweep() -> Vec<String> {
    let mut errors = Vec::new();
    for (id, alive) in runs() {
        if !alive {
            eprintln!("fairlead-e2e: removing node cluster run {id} left by a killed test");
            errors.extend(teardown(&id));
        }
    }
    for ns in network::namespaces_of("") {
        // Only names this module makes: fl-<id>-ctl, fl-<id>-client, fl-<id>-node<i>.
        let Some((id, role)) = ns[PREFIX.len()..].split_once('-') else {
            continue;
        };
        let ours = role == "ctl"
            || role == "client"
            || role
                .strip_prefix("node")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
        if is_run_id(id) && ours && !run_dir(id).exists() {
            errors.extend(network::delete(id));
        }
    }
    errors
}

/// Six lowercase hex digits, as [`new_run`] makes them.
fn is_run_id(id: &str) -> bool {
    id.len() == 6 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes everything run `id` made; returns what failed (empty when all is gone).
pub fn teardown(id: &str) -> Vec<String> {
    let dir = run_dir(id);
    let mut errors = Vec::new();
    let cgroup_prefix = format!("{PREFIX}{id}-");
    // Containers first (the kubelets may restart them until they are gone themselves).
    let needle = format!("{}/", dir.display());
    kill_until_gone(&mut errors, "run processes", || {
        let mut pids = processes_naming(&needle);
        pids.extend(processes_in_cgroups(&cgroup_prefix));
        pids
    });
    remove_shim_sockets(&dir);
    errors.extend(unmount_under(&dir));
    errors.extend(remove_cgroups(&cgroup_prefix));
    errors.extend(network::delete(id));
    remove_host_files(&dir, id);
    if let Err(e) = restore_host_state(id) {
        errors.push(format!("restoring host state: {e:#}"));
    }
    if mounts_under(&dir).is_empty() {
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && dir.exists()
        {
            errors.push(format!("removing {}: {e}", dir.display()));
        }
    } else {
        // Never delete through a mount (a hostPath volume is the host's own files).
        errors.push(format!("{} still has mounts; left in place", dir.display()));
    }
    errors
}

/// SIGKILLs what `find` returns until it returns nothing (bounded).
fn kill_until_gone(errors: &mut Vec<String>, what: &str, find: impl Fn() -> Vec<u32>) {
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let mut pids = find();
        pids.retain(|p| *p != std::process::id());
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            errors.push(format!("{what} still running after SIGKILL: {pids:?}"));
            return;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids whose command line contains `needle`.
pub fn processes_naming(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Top-level cgroup directories whose name starts with `prefix`, in every hierarchy.
fn cgroup_roots(prefix: &str) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for hierarchy in cgroup_hierarchies() {
        let Ok(entries) = std::fs::read_dir(&hierarchy) else {
            continue;
        };
        roots.extend(
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .filter(|p| p.is_dir()),
        );
    }
    roots
}

/// Every directory below `root` (itself included), deepest first.
fn cgroup_tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        out.push(dir);
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Pids in any cgroup under the roots named `prefix*`.
pub fn processes_in_cgroups(prefix: &str) -> Vec<u32> {
    cgroup_roots(prefix)
        .iter()
        .flat_map(|root| cgroup_tree(root))
        .flat_map(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn remove_cgroups(prefix: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for root in cgroup_roots(prefix) {
        for dir in cgroup_tree(&root) {
            // A cgroup whose last process just died may be busy for a moment.
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Err(e) = std::fs::remove_dir(&dir) {
                if Instant::now() > deadline {
                    errors.push(format!("removing cgroup {}: {e}", dir.display()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    errors
}

/// Shims listen on `/run/containerd/s/<hash>` (outside the run); each task's
/// bundle names its socket in a file `address`. Remove those sockets.
fn remove_shim_sockets(dir: &Path) {
    let Ok(nodes) = std::fs::read_dir(dir) else {
        return;
    };
    for node in nodes.filter_map(|e| e.ok()) {
        let tasks = node
            .path()
            .join("containerd/state/io.containerd.runtime.v2.task/k8s.io");
        let Ok(bundles) = std::fs::read_dir(tasks) else {
            continue;
        };
        for bundle in bundles.filter_map(|e| e.ok()) {
            let address =
                std::fs::read_to_string(bundle.path().join("address")).unwrap_or_default();
            if let Some(socket) = address.trim().strip_prefix("unix://")
                && socket.starts_with("/run/containerd/s/")
            {
                let _ = std::fs::remove_file(socket);
            }
        }
    }
}

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    let inside = format!("{dir}/");
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|m| *m == dir || m.starts_with(&inside))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    mounts
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(d) = octal {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts everything under `dir` (bounded rounds: mounts may stack).
fn unmount_under(dir: &Path) -> Vec<String> {
    for _ in 0..10 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return Vec::new();
        }
        for mount in mounts {
            let _ = Command::new("umount")
                .args(["-l", &mount])
                .stderr(Stdio::null())
                .status();
        }
    }
    mounts_under(dir)
        .into_iter()
        .map(|m| format!("could not unmount {m}"))
        .collect()
}

/// The kubelet links container logs in /var/log/containers; libcni caches
/// results in /var/lib/cni/results under the network's name (`fl-<id>-node<i>`),
/// and containerd's loopback setup as `cni-loopback-<sandbox id>-lo`.
fn remove_host_files(dir: &Path, id: &str) {
    if let Ok(entries) = std::fs::read_dir("/var/log/containers") {
        for entry in entries.filter_map(|e| e.ok()) {
            if std::fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(dir)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let network = format!("{PREFIX}{id}-");
    let sandboxes = sandbox_ids(dir);
    if let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") {
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let loopback = name
                .strip_prefix("cni-loopback-")
                .and_then(|rest| rest.strip_suffix("-lo"))
                .is_some_and(|sandbox| sandboxes.iter().any(|s| s == sandbox));
            if name.starts_with(&network) || loopback {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Ids of the Pod sandboxes the run's containerds made.
fn sandbox_ids(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let Ok(nodes) = std::fs::read_dir(dir) else {
        return ids;
    };
    for node in nodes.filter_map(|e| e.ok()) {
        for part in ["root", "state"] {
            let sandboxes = node
                .path()
                .join("containerd")
                .join(part)
                .join("io.containerd.grpc.v1.cri/sandboxes");
            if let Ok(entries) = std::fs::read_dir(sandboxes) {
                ids.extend(entries.filter_map(|e| e.ok()?.file_name().into_string().ok()));
            }
        }
    }
    ids
}

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys").join(name.replace('.', "/"))
}

/// Holds an exclusive lock on `<BASE>/.lock` while alive.
fn lock() -> anyhow::Result<File> {
    std::fs::create_dir_all(BASE)?;
    let file = File::create(Path::new(BASE).join(".lock"))?;
    file.lock()?;
    Ok(file)
}

/// Saves the kubelet's sysctls' values unless a live run saved them already,
/// and notes whether /var/lib/kubelet is ours to remove at the end.
pub fn save_host_state() -> anyhow::Result<()> {
    let _lock = lock()?;
    let saved = Path::new(BASE).join("sysctls.saved");
    if saved.exists() {
        return Ok(());
    }
    if !Path::new("/var/lib/kubelet").exists() {
        std::fs::write(Path::new(BASE).join("kubelet-dir.ours"), "")?;
    }
    let mut text = String::new();
    for name in KUBELET_SYSCTLS {
        let value = std::fs::read_to_string(sysctl_path(name))
            .with_context(|| format!("reading sysctl {name}"))?;
        text.push_str(&format!("{name}={}\n", value.trim()));
    }
    std::fs::write(&saved, text)?;
    Ok(())
}

/// The current values of the sysctls the kubelet changes.
pub fn kubelet_sysctls() -> Vec<(String, String)> {
    KUBELET_SYSCTLS
        .iter()
        .map(|name| {
            let value = std::fs::read_to_string(sysctl_path(name)).unwrap_or_default();
            ((*name).to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// Writes the saved values back and removes the kubelets' device plugin
/// socket when no other live run is left (the last run out restores); `id` is
/// the run being torn down.
fn restore_host_state(id: &str) -> anyhow::Result<()> {
    let _lock = lock()?;
    let saved = Path::new(BASE).join("sysctls.saved");
    if runs().iter().any(|(other, alive)| other != id && *alive) {
        return Ok(());
    }
    let ours = Path::new(BASE).join("kubelet-dir.ours");
    if ours.exists() {
        for file in ["kubelet.sock", "kubelet_internal_checkpoint"] {
            let _ = std::fs::remove_file(Path::new(KUBELET_DEVICE_PLUGINS).join(file));
        }
        // Only if empty: anything else there is not ours.
        let _ = std::fs::remove_dir(KUBELET_DEVICE_PLUGINS);
        let _ = std::fs::remove_dir("/var/lib/kubelet");
        std::fs::remove_file(&ours)?;
    }
    let Ok(text) = std::fs::read_to_string(&saved) else {
        return Ok(());
    };
    for line in text.lines() {
        if let Some((name, value)) = line.split_once('=') {
            std::fs::write(sysctl_path(name), value)
                .with_context(|| format!("restoring sysctl {name}={value}"))?;
        }
    }
    std::fs::remove_file(&saved)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{is_run_id, unescape_mount_path};

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mount_path("/plain\\"), "/plain\\");
        assert_eq!(unescape_mount_path("/x\\09"), "/x\\09");
    }

    #[test]
    fn run_ids_are_six_hex_digits() {
        assert!(is_run_id("0a9f3c"));
        assert!(!is_run_id("0A9F3C"));
        assert!(!is_run_id("0a9f3"));
        assert!(!is_run_id(".new-0a9f3c"));
    }
}
