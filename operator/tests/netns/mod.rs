//! Network namespaces for VRRP tests: a bridge, node namespaces with an
//! `eth0` each on 10.88.0.0/24 and fd88::/64 (node i has 10.88.0.i and
//! fd88::i), and a client namespace (10.88.0.200, fd88::200). IPv6 duplicate
//! address detection is off in them, so addresses are usable at once.
//! Everything is removed on drop. Needs root.
//! Labs of one test binary run one at a time: failover timings must not
//! compete with each other for the CPU.

#![allow(dead_code)] // each test file uses part of it

// Also a module of common/: tests that use both hold two copies of it.
#[allow(clippy::duplicate_mod)]
#[path = "../common/child.rs"]
mod child;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A node serving on the virtual IP answers a connection with its name.
const NAME_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3])))
s.listen(128)
while True:
    c, _ = s.accept()
    try:
        c.sendall(sys.argv[1].encode() + b"\n")
    finally:
        c.close()
"#;

/// Says `ready`, then connects every 5 ms until a node named argv[3] answers
/// on argv[1]:argv[2], for at most argv[4] seconds; prints the Unix time in ms
/// of that answer.
const PROBE: &str = r#"
import socket, sys, time
host, port, want, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
print("ready", flush=True)
deadline = time.time() + limit
while time.time() < deadline:
    try:
        with socket.create_connection((host, port), timeout=0.05) as c:
            c.settimeout(0.2)
            name = c.recv(64).decode().strip()
            if name == want or want == "*":
                print(int(time.time() * 1000), name, flush=True)
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.005)
sys.exit(1)
"#;

/// Says `ready`, then for argv[2] seconds prints the Unix time in ms and the
/// sender MAC of every gratuitous ARP (sender and target address both argv[1])
/// reaching the client's eth0.
const ARP_CAPTURE: &str = r#"
import socket, sys, time
address, limit = socket.inet_aton(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0x0806))
print("ready", flush=True)
deadline = time.time() + limit
while (left := deadline - time.time()) > 0:
    s.settimeout(left)
    try:
        f = s.recv(64)
    except socket.timeout:
        break
    if len(f) >= 42 and f[20:22] == b"\x00\x01" and f[28:32] == address and f[38:42] == address:
        print(int(time.time() * 1000), f[22:28].hex(":"), flush=True)
"#;

static LABS: AtomicU32 = AtomicU32::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A bridge with node and client namespaces.
pub struct Lab {
    prefix: String,
    nodes: usize,
    children: Vec<Child>,
    /// Released after the namespaces are removed (fields drop after `drop`).
    _turn: MutexGuard<'static, ()>,
}

/// A process in a node namespace, with its stderr lines.
pub struct Proc {
    pub child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lab {
    /// Creates the namespaces; panics with the failing command (not root, no iproute2).
    pub fn new(nodes: usize) -> Lab {
        // A test that failed while holding the lock does not poison the others.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let lab = Lab {
            prefix: format!("fl{}x{n}", std::process::id()),
            nodes,
            children: Vec::new(),
            _turn: turn,
        };
        let br = lab.bridge();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        let ends: Vec<(String, usize)> = (1..=nodes)
            .map(|i| (lab.node(i), i))
            .chain([(lab.client(), 200)])
            .collect();
        for (k, (ns, host)) in ends.iter().enumerate() {
            let peer = format!("{}v{k}", lab.prefix);
            ip(&["netns", "add", ns]);
            for dad in ["all", "default"] {
                let setting = format!("net.ipv6.conf.{dad}.accept_dad=0");
                ip(&["netns", "exec", ns, "sysctl", "-qw", &setting]);
            }
            ip(&[
                "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ]);
            ip(&["link", "set", &peer, "netns", &br]);
            ip(&["-n", &br, "link", "set", &peer, "master", "br0", "up"]);
            for address in [format!("10.88.0.{host}/24"), format!("fd88::{host}/64")] {
                ip(&["-n", ns, "addr", "add", &address, "dev", "eth0"]);
            }
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Connects this (the host) namespace to the bridge with `address/24`, so
    /// a process here reaches the nodes. Removed with the bridge namespace.
    pub fn attach_host(&self, address: &str) {
        let (host, peer) = (format!("{}h", self.prefix), format!("{}hp", self.prefix));
        let br = self.bridge();
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &br]);
        ip(&["-n", &br, "link", "set", &peer, "master", "br0", "up"]);
        ip(&["addr", "add", &format!("{address}/24"), "dev", &host]);
        ip(&["link", "set", &host, "up"]);
    }

    /// Isolates node `i`'s bridge port (`on`) or lets it talk again: isolated
    /// ports reach only ports that are not, so two isolated nodes stop
    /// hearing each other while the client and the host still reach both.
    pub fn isolate(&self, i: usize, on: bool) {
        let port = format!("{}v{}", self.prefix, i - 1);
        let state = if on { "on" } else { "off" };
        let args = ["link", "set", "dev", &port, "isolated", state];
        let out = self.run(&self.bridge(), "bridge", &args);
        assert!(out.status.success(), "bridge {args:?}: {out:?}");
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// Node `i`'s namespace (1-based).
    pub fn node(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    pub fn client(&self) -> String {
        format!("{}c", self.prefix)
    }

    /// Runs `program args` in namespace `ns` and waits.
    pub fn run(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .output()
            .unwrap()
    }
    /// Debian's keepalived in namespace `ns` with config `conf`: VRRP only,
    /// in the foreground, logging to stderr; its pid files in `dir`. Returns
    /// it and the path of its VRRP child's pid file.
    pub fn keepalived(&self, ns: &str, conf: &Path, dir: &Path) -> (Proc, PathBuf) {
        let pid = dir.join("keepalived.pid");
        let vrrp_pid = dir.join("vrrp.pid");
        let _ = std::fs::remove_file(&vrrp_pid);
        let args = [
            "--vrrp",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--use-file",
            conf.to_str().unwrap(),
            "--pid",
            pid.to_str().unwrap(),
            "--vrrp_pid",
            vrrp_pid.to_str().unwrap(),
        ];
        (self.spawn(ns, "keepalived", &args, &[]), vrrp_pid)
    }

    /// Starts `program args` in namespace `ns`, capturing stderr lines.
    pub fn spawn(&self, ns: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = child::stderr_lines(&mut child);
        Proc {
            child,
            log,
            seen: Vec::new(),
        }
    }

    /// A server in node `i` answering connections to `address:port` with `name`.
    pub fn name_server(&mut self, i: usize, name: &str, address: &str, port: u16) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.node(i), "python3", "-c", NAME_SERVER])
            .args([name, address, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Sets a sysctl in node `i`'s namespace.
    pub fn sysctl(&self, i: usize, setting: &str) {
        let out = self.run(&self.node(i), "sysctl", &["-qw", setting]);
        assert!(out.status.success(), "sysctl {setting}: {out:?}");
    }

    /// Whether node `i`'s eth0 holds `address` (IPv4 or IPv6).
    pub fn holds(&self, i: usize, address: &str) -> bool {
        let (family, inet) = family(address);
        let node = self.node(i);
        let args = ["-n", &node, family, "-o", "addr", "show", "dev", "eth0"];
        let out = Command::new("ip").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{inet} {address}/"))
    }

    /// The nodes holding `address` now.
    pub fn holders(&self, address: &str) -> Vec<usize> {
        (1..=self.nodes)
            .filter(|i| self.holds(*i, address))
            .collect()
    }

    /// Waits up to `limit` until exactly node `i` holds `address`.
    pub fn wait_sole_holder(&self, i: usize, address: &str, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.holders(address) == [i] {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "node {i} is not the only holder of {address} after {limit:?}: holders {:?}",
            self.holders(address)
        );
    }

    /// Waits up to `limit` until node `i` holds `address`.
    pub fn wait_holds(&self, i: usize, address: &str, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.holds(i, address) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("node {i} does not hold {address} after {limit:?}");
    }

    /// Checks for `period` that exactly node `i` holds `address` (no second master).
    pub fn assert_steady(&self, i: usize, address: &str, period: Duration) {
        let start = Instant::now();
        while start.elapsed() < period {
            assert_eq!(self.holders(address), [i], "holders of {address}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a client probe that waits until node `want` answers on
    /// `address:port` ("*": any node), for at most `limit`; returns once the
    /// probe runs (a Python start can take longer than a failover).
    pub fn probe(&self, address: &str, port: u16, want: &str, limit: Duration) -> Probe {
        let limit = format!("{}", limit.as_secs_f64());
        let (child, stdout) =
            self.client_script(PROBE, &[address, &port.to_string(), want, &limit]);
        Probe { child, stdout }
    }

    /// Runs Python `script` with `args` in the client namespace; returns
    /// once it printed `ready`.
    fn client_script(&self, script: &str, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.client(), "python3", "-c", script])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready", "client script did not start");
        (child, stdout)
    }

    /// Node `i`'s eth0 MAC address, as `ip` prints it.
    pub fn mac(&self, i: usize) -> String {
        let out = self.run(&self.node(i), "cat", &["/sys/class/net/eth0/address"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The MAC the client's neighbour table has for `address`, if any.
    pub fn client_neighbour(&self, address: &str) -> Option<String> {
        let (family, _) = family(address);
        let out = self.run(&self.client(), "ip", &[family, "neigh", "show", address]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_string)
    }

    /// Starts recording the gratuitous ARPs for `address` the client receives,
    /// for `limit`; returns once the capture runs.
    pub fn capture_garps(&self, address: &str, limit: Duration) -> ArpCapture {
        let limit = format!("{}", limit.as_secs_f64());
        let (child, stdout) = self.client_script(ARP_CAPTURE, &[address, &limit]);
        ArpCapture { child, stdout }
    }

    /// The name of the node answering on `address:port` from the client, within 5 s.
    pub fn who_answers(&self, address: &str, port: u16) -> String {
        let (_, name) = self
            .probe(address, port, "*", Duration::from_secs(5))
            .wait();
        name
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in (1..=self.nodes)
            .map(|i| self.node(i))
            .chain([self.client(), self.bridge()])
        {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

/// A running client probe.
pub struct Probe {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

/// A running capture of gratuitous ARPs.
pub struct ArpCapture {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl ArpCapture {
    /// Waits for the capture to end; the Unix time in ms and sender MAC of each one.
    pub fn wait(mut self) -> Vec<(u64, String)> {
        let seen: Vec<_> = (&mut self.stdout)
            .lines()
            .map(|l| {
                let l = l.unwrap();
                let (at, mac) = l.split_once(' ').unwrap();
                (at.parse().unwrap(), mac.to_string())
            })
            .collect();
        assert!(self.child.wait().unwrap().success(), "ARP capture failed");
        seen
    }
}

impl Probe {
    /// Unix time in ms of the first answer from the wanted node, and its name.
    pub fn wait(mut self) -> (u64, String) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "no wanted answer ({status})");
        let (at, name) = line.trim().split_once(' ').unwrap();
        (at.parse().unwrap(), name.to_string())
    }
}

impl Proc {
    /// Waits (up to `limit`) for a stderr line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        while let Some(left) = limit.checked_sub(start.elapsed()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n"));
    }

    /// Every line so far.
    pub fn lines(&mut self) -> &[String] {
        while let Ok(line) = self.log.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    pub fn signal(&self, name: &str) {
        // `ip netns exec` execs the program, so the child's pid is the program's.
        child::signal(&self.child, name);
    }

    /// Waits for the process to exit (bounded), returning whether it succeeded.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("process did not exit within {limit:?}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// `ip`'s family flag and address keyword for `address`.
fn family(address: &str) -> (&'static str, &'static str) {
    if address.contains(':') {
        ("-6", "inet6")
    } else {
        ("-4", "inet")
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
