//! VRRP between real processes in network namespaces (needs root): `fairlead
//! run` on three nodes elects one master for a virtual IP, fails over on
//! SIGKILL and on a graceful stop, preempts (or not), follows tracking, and
//! interoperates with Debian's keepalived.

mod common;
mod netns;
mod vip;

use std::path::{Path, PathBuf};
use std::time::Duration;

use netns::{Lab, Proc, now_ms, write};
use vip::{VIP, VIP6};
const INTERVAL_MS: u64 = 100;
/// Time allowed beyond the protocol's own for a client to see the new master:
/// adding the address, the gratuitous ARP, a busy CI machine.
const MARGIN_MS: u64 = 250;

/// Master_Down_Interval of a backup with `priority` (RFC 9568 §6.1, skew in ms).
fn master_down_ms(priority: u64) -> u64 {
    3 * INTERVAL_MS + (256 - priority) * INTERVAL_MS / 256
}

/// The VirtualIP spec of these tests: 100 ms adverts, n1: 120, n2: 110, others 100.
fn manifests(name: &str, vip_extra: &str, backend_extra: &str) -> PathBuf {
    manifests_at(name, &format!("{VIP}/24"), vip_extra, backend_extra)
}

/// [`manifests`] with another virtual address (`address/prefix`).
fn manifests_at(name: &str, address: &str, vip_extra: &str, backend_extra: &str) -> PathBuf {
    let spec = format!(
        "  advertInterval: {INTERVAL_MS}ms\n  priorities: [{{node: n1, priority: 120}}, {{node: n2, priority: 110}}]\n{vip_extra}"
    );
    vip::manifests_for(name, address, &spec, backend_extra)
}

fn start(lab: &Lab, i: usize, dir: &Path) -> Proc {
    vip::start(env!("CARGO_BIN_EXE_fairlead"), lab, i, dir)
}

/// SIGKILLs `master` and returns how long until a client is answered by `next`.
fn kill_and_time(lab: &Lab, master: &Proc, next: &str) -> u64 {
    kill_and_time_at(lab, master, VIP, next)
}

/// [`kill_and_time`] for a client connecting to `address`.
fn kill_and_time_at(lab: &Lab, master: &Proc, address: &str, next: &str) -> u64 {
    let probe = lab.probe(address, 80, next, Duration::from_secs(5));
    let killed = now_ms();
    master.signal("KILL");
    let (answered, _) = probe.wait();
    answered - killed
}

/// `count` nodes running `fairlead run` on `dir`, each with its name server;
/// returns the lab and the processes.
fn nodes(count: usize, dir: &Path) -> (Lab, Vec<Proc>) {
    let mut lab = Lab::new(count);
    for i in 1..=count {
        lab.name_server(i, &format!("n{i}"), "127.0.0.1", 9000);
    }
    let procs = (1..=count).map(|i| start(&lab, i, dir)).collect();
    (lab, procs)
}

#[test]
fn one_master_sigkill_failover_and_preemption_on_return() {
    let dir = manifests("vrrp-kill", "", "");
    let (lab, mut procs) = nodes(3, &dir);
    lab.wait_sole_holder(1, VIP, Duration::from_secs(3));
    lab.assert_steady(1, VIP, Duration::from_millis(600));
    assert_eq!(lab.who_answers(VIP, 80), "n1");

    // SIGKILL: no priority 0, the backup waits out Master_Down_Interval.
    let failover = kill_and_time(&lab, &procs[0], "n2");
    let bound = master_down_ms(110) + MARGIN_MS;
    eprintln!("SIGKILL failover: client answered by n2 after {failover} ms (bound {bound} ms)");
    assert!(
        failover <= bound,
        "failover took {failover} ms, bound {bound} ms"
    );
    assert!(lab.holds(2, VIP) && !lab.holds(3, VIP));
    // Like keepalived, the killed node's address stays until it restarts.
    assert!(lab.holds(1, VIP));

    // n1 returns: removes its leftover address, then preempts n2.
    procs[0] = start(&lab, 1, &dir);
    let removed = "removing a virtual address left by an earlier run";
    assert!(procs[0].lines().iter().any(|l| l.contains(removed)));
    procs[0].wait_for("to=Master", Duration::from_secs(3));
    lab.wait_sole_holder(1, VIP, Duration::from_secs(2));
    lab.assert_steady(1, VIP, Duration::from_millis(500));
    assert_eq!(lab.who_answers(VIP, 80), "n1");
    procs[1].wait_for(
        "to=Backup reason=10.88.0.1 advertised priority 120",
        Duration::from_secs(1),
    );
}

#[test]
fn a_graceful_stop_hands_over_within_about_one_interval() {
    let dir = manifests("vrrp-stop", "", "");
    let (lab, mut procs) = nodes(3, &dir);
    lab.wait_sole_holder(1, VIP, Duration::from_secs(3));
    let probe = lab.probe(VIP, 80, "n2", Duration::from_secs(5));
    let mut client = lab.spawn(
        &lab.client(),
        "python3",
        &["-c", CLIENT, VIP, "80", "2"],
        &[],
    );
    client.wait_for("ready", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let stopped = now_ms();
    procs[0].signal("TERM");
    let (answered, _) = probe.wait();
    let handover = answered - stopped;
    // Priority 0 makes the backup wait its skew time only (57 ms for 110).
    let bound = INTERVAL_MS + MARGIN_MS;
    eprintln!("graceful stop: client answered by n2 after {handover} ms (bound {bound} ms)");
    assert!(handover <= bound, "handover took {handover} ms");
    // n1 kept its address and served until it heard n2 as master: no
    // connection in between went unanswered.
    let summary = client.wait_for("answered", Duration::from_secs(10));
    eprintln!("graceful stop under traffic: {summary}");
    assert!(
        summary.contains(" failed=0") && !summary.contains("n1=0") && !summary.contains("n2=0"),
        "{summary}\n{}",
        client.lines().join("\n")
    );
    procs[0].wait_for("handed over", Duration::from_secs(2));
    assert!(procs[0].wait_exit(Duration::from_secs(5)));
    assert!(!lab.holds(1, VIP), "a stopped master removes its address");
    lab.assert_steady(2, VIP, Duration::from_millis(400));
}

/// Says `ready`, then for argv[3] seconds opens a connection to
/// argv[1]:argv[2] every 3 ms and reads the answering node's name (at most
/// 500 ms each); prints `answered n1=A n2=B failed=F` and each failure.
const CLIENT: &str = r#"
import socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("ready", file=sys.stderr, flush=True)
counts, failures, start = {}, [], time.time()
while time.time() - start < limit:
    t = time.time()
    try:
        with socket.create_connection((host, port), timeout=0.5) as c:
            c.settimeout(0.5)
            name = c.recv(64).decode().strip()
            if not name:
                raise OSError("closed without an answer")
            counts[name] = counts.get(name, 0) + 1
    except OSError as e:
        failures.append("%.3f %s" % (t - start, e))
    time.sleep(0.003)
for f in failures:
    print("failure", f, file=sys.stderr)
print("answered n1=%d n2=%d failed=%d" % (counts.get("n1", 0), counts.get("n2", 0), len(failures)), file=sys.stderr, flush=True)
"#;

#[test]
fn gratuitous_arps_move_the_clients_neighbour_entry_as_configured() {
    let garp = "  gratuitousArp: {count: 3, interval: 150ms}\n";
    let dir = manifests("vrrp-garp", garp, "");
    let (lab, procs) = nodes(2, &dir);
    lab.wait_sole_holder(1, VIP, Duration::from_secs(3));
    assert_eq!(lab.who_answers(VIP, 80), "n1");
    assert_eq!(lab.client_neighbour(VIP), Some(lab.mac(1)));
    // n1's own burst (3 rounds, 150 ms apart) must be over before capturing.
    std::thread::sleep(Duration::from_millis(500));

    // The killed n1 keeps the VIP, and the client sends nothing from here on:
    // only n2's gratuitous ARPs can move the client's entry to n2.
    let capture = lab.capture_garps(VIP, Duration::from_secs(2));
    let killed = now_ms();
    procs[0].signal("KILL");
    let garps = capture.wait();
    assert_eq!(lab.client_neighbour(VIP), Some(lab.mac(2)));
    let n2 = lab.mac(2);
    assert!(garps.iter().all(|(_, mac)| *mac == n2), "{garps:?}");
    let times: Vec<u64> = garps.iter().map(|(at, _)| at - killed).collect();
    eprintln!("gratuitous ARPs at {times:?} ms after the kill");
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(times[0] <= master_down_ms(110) + MARGIN_MS, "{times:?}");
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((140..=250).contains(&gap), "spacing {gap} ms: {times:?}");
    }
}

#[test]
fn ipv6_master_failover_neighbour_advertisements_and_preemption() {
    let garp = "  gratuitousArp: {count: 3, interval: 150ms}\n";
    let dir = manifests_at("vrrp-ipv6", &format!("{VIP6}/64"), garp, "");
    let (lab, mut procs) = nodes(3, &dir);
    lab.wait_sole_holder(1, VIP6, Duration::from_secs(3));
    lab.assert_steady(1, VIP6, Duration::from_millis(500));
    assert_eq!(lab.who_answers(VIP6, 80), "n1");
    assert_eq!(lab.client_neighbour(VIP6), Some(lab.mac(1)));

    // The killed n1 keeps the address and still answers neighbour
    // solicitations: only n2's unsolicited advertisements (override flag)
    // move the client's entry.
    let failover = kill_and_time_at(&lab, &procs[0], VIP6, "n2");
    let bound = master_down_ms(110) + MARGIN_MS;
    eprintln!(
        "IPv6 SIGKILL failover: client answered by n2 after {failover} ms (bound {bound} ms)"
    );
    assert!(failover <= bound, "failover took {failover} ms");
    assert_eq!(lab.client_neighbour(VIP6), Some(lab.mac(2)));
    assert!(lab.holds(2, VIP6) && !lab.holds(3, VIP6));

    procs[0] = start(&lab, 1, &dir);
    procs[0].wait_for("to=Master", Duration::from_secs(3));
    lab.wait_sole_holder(1, VIP6, Duration::from_secs(2));
    lab.assert_steady(1, VIP6, Duration::from_millis(500));
    assert_eq!(lab.who_answers(VIP6, 80), "n1");
    // Advertisements come from the link-local address (RFC 9568 §5.1.2.1).
    let line = procs[1].wait_for("to=Backup reason=fe80::", Duration::from_secs(1));
    assert!(line.contains("advertised priority 120"), "{line}");
}

#[test]
fn a_master_whose_link_goes_down_leaves_and_returns_when_it_is_up() {
    for (vip, prefix) in [(VIP, 24), (VIP6, 64)] {
        let name = format!("vrrp-flap-{prefix}");
        let dir = manifests_at(&name, &format!("{vip}/{prefix}"), "", "");
        let (lab, mut procs) = nodes(2, &dir);
        lab.wait_sole_holder(1, vip, Duration::from_secs(3));
        let link = |state: &str| {
            let out = lab.run(&lab.node(1), "ip", &["link", "set", "eth0", state]);
            assert!(out.status.success(), "{out:?}");
        };
        // Like Keepalived's FAULT state: n1 leaves the election and removes
        // the address (the kernel would keep an IPv4 one, and flush an IPv6
        // one behind a master's back).
        link("down");
        procs[0].wait_for("interface down (or gone)", Duration::from_secs(1));
        lab.wait_sole_holder(2, vip, Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(500));
        link("up");
        procs[0].wait_for("VRRP started after a fault", Duration::from_secs(3));
        lab.wait_sole_holder(1, vip, Duration::from_secs(3));
        lab.assert_steady(1, vip, Duration::from_millis(500));
        assert_eq!(lab.who_answers(vip, 80), "n1", "{vip}");
    }
}

#[test]
fn nopreempt_keeps_the_new_master_when_a_better_node_returns() {
    let dir = manifests("vrrp-nopreempt", "  preempt: false\n", "");
    let (lab, mut procs) = nodes(3, &dir);
    lab.wait_sole_holder(1, VIP, Duration::from_secs(3));
    procs[0].signal("KILL");
    // The killed master keeps its address: wait for n2 to hold it too.
    lab.wait_holds(2, VIP, Duration::from_secs(3));
    procs[0] = start(&lab, 1, &dir);
    // n1 (120) hears n2 (110) and, without preemption, stays Backup.
    lab.assert_steady(2, VIP, Duration::from_millis(1500));
    assert!(procs[0].lines().iter().all(|l| !l.contains("to=Master")));
    assert_eq!(lab.who_answers(VIP, 80), "n2");
}

#[test]
fn tracking_moves_the_vip_while_the_local_backend_is_down() {
    let check = "  healthCheck: {interval: 100ms, timeout: 100ms, fall: 2, rise: 2}\n";
    let dir = manifests(
        "vrrp-track",
        "  track: {frontends: true, weight: -50}\n",
        check,
    );
    let mut lab = Lab::new(3);
    for i in 2..=3 {
        lab.name_server(i, &format!("n{i}"), "127.0.0.1", 9000);
    }
    // n1's backend is a separate process so the test can stop and restart it.
    let mut procs: Vec<Proc> = Vec::new();
    let mut n1_backend = lab.spawn(&lab.node(1), "python3", &["-c", ECHO_NAME, "n1"], &[]);
    n1_backend.wait_for("listening", Duration::from_secs(5));
    for i in 1..=3 {
        procs.push(start(&lab, i, &dir));
    }
    lab.wait_sole_holder(1, VIP, Duration::from_secs(3));
    assert_eq!(lab.who_answers(VIP, 80), "n1");

    // Every server of n1's frontend down: priority 120 - 50 = 70 < 110.
    drop(n1_backend);
    procs[0].wait_for("tracking lowers the VRRP priority", Duration::from_secs(3));
    lab.wait_sole_holder(2, VIP, Duration::from_secs(2));
    assert_eq!(lab.who_answers(VIP, 80), "n2");

    // Back up: n1 returns to 120 and preempts.
    let mut n1_backend = lab.spawn(&lab.node(1), "python3", &["-c", ECHO_NAME, "n1"], &[]);
    n1_backend.wait_for("listening", Duration::from_secs(5));
    procs[0].wait_for(
        "tracking restores the VRRP priority",
        Duration::from_secs(3),
    );
    lab.wait_sole_holder(1, VIP, Duration::from_secs(2));
    assert_eq!(lab.who_answers(VIP, 80), "n1");
}

/// A name server on 127.0.0.1:9000 that says when it listens (on stderr).
const ECHO_NAME: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9000))
s.listen(128)
print("listening", file=sys.stderr, flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[1].encode() + b"\n")
    c.close()
"#;

#[test]
fn a_tracked_interface_going_down_moves_the_vip() {
    let dir = manifests(
        "vrrp-track-if",
        "  track: {frontends: false, interfaces: [trk0], weight: -50}\n",
        "",
    );
    let mut lab = Lab::new(2);
    for i in 1..=2 {
        lab.name_server(i, &format!("n{i}"), "127.0.0.1", 9000);
        // A veth pair: trk0 is up while its peer is (carrier).
        for cmd in [
            &[
                "link", "add", "trk0", "type", "veth", "peer", "name", "trk0p",
            ][..],
            &["link", "set", "trk0", "up"],
            &["link", "set", "trk0p", "up"],
        ] {
            assert!(lab.run(&lab.node(i), "ip", cmd).status.success());
        }
    }
    let mut procs: Vec<Proc> = (1..=2).map(|i| start(&lab, i, &dir)).collect();
    lab.wait_sole_holder(1, VIP, Duration::from_secs(3));

    // Carrier lost: the peer goes down.
    assert!(
        lab.run(&lab.node(1), "ip", &["link", "set", "trk0p", "down"])
            .status
            .success()
    );
    procs[0].wait_for("interface trk0 is down", Duration::from_secs(2));
    lab.wait_sole_holder(2, VIP, Duration::from_secs(2));
    assert_eq!(lab.who_answers(VIP, 80), "n2");

    assert!(
        lab.run(&lab.node(1), "ip", &["link", "set", "trk0p", "up"])
            .status
            .success()
    );
    procs[0].wait_for(
        "tracking restores the VRRP priority",
        Duration::from_secs(2),
    );
    lab.wait_sole_holder(1, VIP, Duration::from_secs(2));
    assert_eq!(lab.who_answers(VIP, 80), "n1");
}

#[test]
fn an_interface_without_an_address_faults_until_it_gets_one() {
    let dir = manifests("vrrp-fault", "  interface: flt0\n", "");
    let mut lab = Lab::new(1);
    lab.name_server(1, "n1", "127.0.0.1", 9000);
    for cmd in [
        &[
            "link", "add", "flt0", "type", "veth", "peer", "name", "flt0p",
        ][..],
        &["link", "set", "flt0", "up"],
        &["link", "set", "flt0p", "up"],
    ] {
        assert!(lab.run(&lab.node(1), "ip", cmd).status.success());
    }
    let mut proc = vip::spawn(env!("CARGO_BIN_EXE_fairlead"), &lab, 1, &dir);
    proc.wait_for(
        "interface flt0 has no IPv4 address of its own",
        Duration::from_secs(3),
    );
    let on_flt0 = || {
        let out = lab.run(
            &lab.node(1),
            "ip",
            &["-4", "-o", "addr", "show", "dev", "flt0"],
        );
        String::from_utf8_lossy(&out.stdout).contains(&format!("inet {VIP}/"))
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!on_flt0(), "a faulty speaker holds nothing");

    // The address arrives (DHCP, a late network unit): the next retry starts it.
    let add = ["addr", "add", "10.66.0.1/24", "dev", "flt0"];
    assert!(lab.run(&lab.node(1), "ip", &add).status.success());
    proc.wait_for("VRRP started after a fault", Duration::from_secs(3));
    proc.wait_for("to=Master", Duration::from_secs(3));
    assert!(on_flt0(), "the master holds the VIP on flt0");
}

#[test]
fn two_virtual_routers_with_several_addresses_each_elect_their_own_master() {
    let dir = common::scratch("vrrp-two");
    let vip = |name: &str, vrid: u8, addresses: &str, owner: &str| {
        format!(
            "---
apiVersion: fairlead.io/v1alpha1
kind: VirtualIP
metadata: {{name: {name}}}
spec:
  addresses: [{addresses}]
  virtualRouterID: {vrid}
  advertInterval: {INTERVAL_MS}ms
  priorities: [{{node: {owner}, priority: 150}}]
"
        )
    };
    let text = vip("a", 61, "10.88.0.101/24, 10.88.0.102/24", "n1")
        + &vip("b", 62, "10.88.0.111/24, 10.88.0.112/24", "n2");
    write(&dir, "vips.yaml", &text);
    let lab = Lab::new(2);
    let _procs: Vec<Proc> = (1..=2).map(|i| start(&lab, i, &dir)).collect();
    for (address, owner) in [
        ("10.88.0.101", 1),
        ("10.88.0.102", 1),
        ("10.88.0.111", 2),
        ("10.88.0.112", 2),
    ] {
        lab.wait_sole_holder(owner, address, Duration::from_secs(3));
    }
    lab.assert_steady(1, "10.88.0.102", Duration::from_millis(300));
    lab.assert_steady(2, "10.88.0.111", Duration::from_millis(300));
}

#[test]
fn unicast_peers_elect_and_fail_over() {
    let peers = "  peers: {mode: unicast, addresses: [10.88.0.1, 10.88.0.2]}\n";
    let dir = manifests("vrrp-unicast", peers, "");
    let (lab, procs) = nodes(2, &dir);
    lab.wait_sole_holder(1, VIP, Duration::from_secs(3));
    lab.assert_steady(1, VIP, Duration::from_millis(500));
    let failover = kill_and_time(&lab, &procs[0], "n2");
    let bound = master_down_ms(110) + MARGIN_MS;
    eprintln!("unicast SIGKILL failover: {failover} ms (bound {bound} ms)");
    assert!(failover <= bound, "failover took {failover} ms");
}

#[test]
fn ipv6_unicast_peers_know_each_other_by_their_global_addresses() {
    let peers = "  peers: {mode: unicast, addresses: [\"fd88::1\", \"fd88::2\"]}\n";
    let dir = manifests_at("vrrp-unicast6", &format!("{VIP6}/64"), peers, "");
    let (lab, mut procs) = nodes(2, &dir);
    lab.wait_sole_holder(1, VIP6, Duration::from_secs(3));
    lab.assert_steady(1, VIP6, Duration::from_millis(500));
    let failover = kill_and_time_at(&lab, &procs[0], VIP6, "n2");
    let bound = master_down_ms(110) + MARGIN_MS;
    eprintln!("IPv6 unicast SIGKILL failover: {failover} ms (bound {bound} ms)");
    assert!(failover <= bound, "failover took {failover} ms");
    procs[0] = start(&lab, 1, &dir);
    lab.wait_sole_holder(1, VIP6, Duration::from_secs(2));
    procs[1].wait_for(
        "to=Backup reason=fd88::1 advertised priority 120",
        Duration::from_secs(1),
    );
}
