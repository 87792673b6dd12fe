//! `deploy/systemd/fairlead.service`: `systemd-analyze verify` finds no problem,
//! the sandboxing keeps its exposure score, and the unit's own ExecStart and
//! ExecReload command lines run the built `fairlead` (serve, reload on SIGHUP),
//! and its capabilities are enough for VRRP as an unprivileged user.
//!
//! The test lives in this crate because Cargo hands the `fairlead` binary's
//! path (`CARGO_BIN_EXE_fairlead`) only to its own package's tests. `verify`
//! fails when ExecStart's program does not exist, and the unit names where a
//! user installs it (/usr/local/bin/fairlead), so the checks run on a copy with
//! ExecStart pointing at the built binary; nothing else is changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Running, free_port, scratch, web_manifests};

const UNIT: &str = include_str!("../../deploy/systemd/fairlead.service");
const INSTALLED_BINARY: &str = "/usr/local/bin/fairlead";
/// Exposure as `systemd-analyze security` scores it, times ten (its
/// `--threshold` unit); the unit scores 2.2 ("OK") today.
const EXPOSURE_LIMIT: &str = "25";

fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect(
            "systemd-analyze is missing: apt-get install systemd (scripts/install-deps.sh does)",
        )
}

/// The unit with ExecStart's program replaced by the built binary, written as
/// `fairlead.service` in a fresh folder (verify reads the unit name from the file name).
fn unit_copy(name: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let unit = dir.join("fairlead.service");
    assert!(text.contains(&format!("ExecStart={INSTALLED_BINARY} ")));
    let text = text.replace(
        &format!("ExecStart={INSTALLED_BINARY} "),
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_fairlead")),
    );
    std::fs::write(&unit, text).unwrap();
    (dir, unit)
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn systemd_analyze_verify_finds_no_problem() {
    let (dir, unit) = unit_copy("systemd-verify", UNIT);
    // --man=no: the Documentation= page is not looked up.
    let out = systemd_analyze(&["verify", "--man=no"], &unit);
    assert!(
        out.status.success() && text(&out).is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        text(&out)
    );

    // Warnings alone do not change verify's exit status: the check above
    // relies on the output, which a misspelt key does produce.
    let (bad_dir, bad) = unit_copy(
        "systemd-verify-bad",
        &UNIT.replace("ProtectSystem=", "ProtectSytem="),
    );
    let out = systemd_analyze(&["verify", "--man=no"], &bad);
    assert!(
        text(&out).contains("Unknown key 'ProtectSytem'"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(bad_dir).unwrap();
}

#[test]
fn sandboxing_keeps_its_exposure_score() {
    let (dir, unit) = unit_copy("systemd-security", UNIT);
    let threshold = format!("--threshold={EXPOSURE_LIMIT}");
    let out = systemd_analyze(&["security", "--offline=yes", &threshold], &unit);
    let report = text(&out);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("no overall exposure line");
    assert!(
        out.status.success(),
        "exposure above {EXPOSURE_LIMIT}/10: {overall}\n{report}"
    );
    // And the check can fail: without the sandboxing the same threshold is exceeded.
    let bare: String = UNIT
        .lines()
        .filter(|l| !l.starts_with("Protect") && !l.starts_with("Restrict"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (bare_dir, bare) = unit_copy("systemd-security-bare", &bare);
    let out = systemd_analyze(&["security", "--offline=yes", &threshold], &bare);
    assert!(!out.status.success(), "{}", text(&out));
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(bare_dir).unwrap();
}

/// The value of `key=` in the unit, split into words (none of ours are quoted).
fn command_line(key: &str) -> Vec<String> {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"));
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn exec_start_serves_and_exec_reload_reloads() {
    let start = command_line("ExecStart");
    assert_eq!(start[0], INSTALLED_BINARY);
    assert_eq!(start[1..], ["run", "-f", "/etc/fairlead"]);
    let dir = scratch("systemd-exec");
    let file = dir.join("lb.yaml");
    let port = free_port();
    std::fs::write(&file, web_manifests(port, "s", 9001, "")).unwrap();
    // ExecStart with the manifests folder in place of /etc/fairlead, and file
    // polling slowed down (as /etc/default/fairlead could) so that only
    // ExecReload can apply the change below.
    let args = start[1..].iter().map(|a| match a.as_str() {
        "/etc/fairlead" => dir.to_str().unwrap(),
        a => a,
    });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fairlead"));
    cmd.args(args)
        .env("FAIRLEAD_WATCH_INTERVAL", "1h")
        .env("FAIRLEAD_THREADS", "1")
        .env("RUST_LOG", "info");
    let service = Running::spawn(cmd);
    service.wait_for("applied config version 1");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    std::fs::write(&file, web_manifests(port, "s", 9002, "")).unwrap();
    let reload = command_line("ExecReload");
    assert_eq!(reload.last().map(String::as_str), Some("$MAINPID"));
    let status = Command::new(&reload[0])
        .args(&reload[1..reload.len() - 1])
        .arg(service.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "{reload:?}: {status}");
    service.wait_for("applied config version 2");

    // systemctl stop sends SIGTERM and waits TimeoutStopSec (30s) at most.
    service.stop();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A network namespace with a veth pair (both ends up, 192.0.2.1/24 on
/// `veth0`), deleted when dropped.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let ns = NetNs(format!("fl-unit-{}", std::process::id()));
        let ip = |args: &str| {
            let status = Command::new("ip")
                .args(["-n", &ns.0])
                .args(args.split(' '))
                .status()
                .unwrap();
            assert!(status.success(), "ip -n {} {args}", ns.0);
        };
        assert!(
            Command::new("ip")
                .args(["netns", "add", &ns.0])
                .status()
                .unwrap()
                .success()
        );
        ip("link set lo up");
        ip("link add veth0 type veth peer name veth1");
        ip("addr add 192.0.2.1/24 dev veth0");
        ip("link set veth0 up");
        ip("link set veth1 up");
        ns
    }

    fn output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The unit's capabilities as setpriv wants them: `-all,+net_admin,...`.
fn unit_capabilities() -> String {
    let ambient = command_line("AmbientCapabilities");
    assert_eq!(ambient, command_line("CapabilityBoundingSet"));
    let mut caps = String::from("-all");
    for cap in ambient {
        caps += &format!(",+{}", cap.trim_start_matches("CAP_").to_lowercase());
    }
    caps
}

/// What the unit grants is enough: as an unprivileged user (nobody) with only
/// the unit's capabilities (ambient and bounding set) and no new privileges,
/// `fairlead run` becomes VRRP master, adds the virtual IP and listens on port
/// 80 of it, in a network namespace of the test's own. (systemd itself does not
/// run here; setpriv applies the same credentials.)
#[test]
fn the_units_capabilities_are_enough_for_vrrp_as_a_user() {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !root {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let caps = unit_capabilities();
    let dir = scratch("systemd-caps");
    std::fs::write(
        dir.join("vip.yaml"),
        "apiVersion: fairlead.io/v1alpha1
kind: VirtualIP
metadata: {name: vip}
spec: {addresses: [192.0.2.100/24], virtualRouterID: 51, advertInterval: 100ms}
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {name: web}
spec: {bind: {virtualIP: vip, port: 80}, defaultBackend: web}
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {name: web}
spec: {servers: [{name: s, address: 127.0.0.1, port: 9001}]}
",
    )
    .unwrap();
    let netns = NetNs::new();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &netns.0, "setpriv"])
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps", &caps, "--ambient-caps", &caps])
        .args(["--bounding-set", &caps, "--no-new-privs"])
        .arg(env!("CARGO_BIN_EXE_fairlead"))
        .args(["run", "-f", dir.to_str().unwrap(), "--node-name", "lb-1"])
        .env("FAIRLEAD_THREADS", "1")
        .env("RUST_LOG", "info");
    let service = Running::spawn(cmd);
    service.wait_for("to=Master");
    let status = std::fs::read_to_string(format!("/proc/{}/status", service.pid())).unwrap();
    assert!(
        status.contains("\nUid:\t65534\t65534\t65534\t65534\n"),
        "{status}"
    );
    let addresses = netns.output(&["ip", "-4", "addr", "show", "dev", "veth0"]);
    assert!(addresses.contains("inet 192.0.2.100/24"), "{addresses}");
    let listening = netns.output(&["ss", "-ltn"]);
    assert!(listening.contains("192.0.2.100:80 "), "{listening}");
    drop(service);
    drop(netns);
    std::fs::remove_dir_all(dir).unwrap();
}
