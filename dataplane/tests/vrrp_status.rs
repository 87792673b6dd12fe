//! The `fairlead-dataplane` binary in a network namespace (needs root): it
//! holds a virtual IP from its persisted config, reports the instance
//! through `GET /v1/status`, and drops and counts bad VRRP packets sent at it
//! over the wire (wrong TTL or hop limit, wrong version, corrupt, another
//! VRID) without changing state; over IPv4 and IPv6.

#[path = "../../operator/tests/netns/mod.rs"]
mod netns;
#[path = "../../tests/tls/pki.rs"]
#[allow(dead_code)] // shared with other tests
mod pki;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fairlead_dataplane::DataplaneConfig;
use fairlead_dataplane::config::{VirtualAddress, VirtualIp};
use netns::Lab;
use pki::{Pki, arg};
use serde_json::Value;

const NAME: &str = "fairlead-dataplane";

/// What the packet senders below share: the Internet checksum.
const CHECKSUM: &str = r#"
import socket, struct, sys

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
"#;

/// Sends VRRP datagrams to 224.0.0.18 from the client namespace: argv[1] is
/// the kind of packet.
const INJECT: &str = r#"
def v2(vrid):
    body = struct.pack("!BBBBBBH4s8s", 0x21, vrid, 200, 1, 0, 1, 0, socket.inet_aton("10.88.0.100"), b"\0" * 8)
    return body[:6] + struct.pack("!H", checksum(body)) + body[8:]

def v3(vrid, source="10.88.0.200"):
    body = struct.pack("!BBBBHH4s", 0x31, vrid, 200, 1, 10, 0, socket.inet_aton("10.88.0.100"))
    pseudo = socket.inet_aton(source) + socket.inet_aton("224.0.0.18") + struct.pack("!BBH", 0, 112, len(body))
    return body[:6] + struct.pack("!H", checksum(pseudo + body)) + body[8:]

kind = sys.argv[1]
packet, ttl = {
    "ttl": (v3(51), 1),
    "version": (v2(51), 255),
    "corrupt": (v3(51)[:-1] + b"\x99", 255),
    "truncated": (v3(51)[:5], 255),
    "other-vrid": (v3(52), 255),
}[kind]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.88.0.200"))
for _ in range(3):
    s.sendto(packet, ("224.0.0.18", 0))
"#;

/// The same over IPv6, to ff02::12 from fd88::200: the checksum covers the
/// IPv6 pseudo-header; "version" is a VRRPv2 packet, which IPv6 never carries.
const INJECT6: &str = r#"
SRC, GROUP = "fd88::200", "ff02::12"
VIP = socket.inet_pton(socket.AF_INET6, "fd88::100")

def advert(first, vrid, interval):
    body = struct.pack("!BBBBHH16s", first, vrid, 200, 1, interval, 0, VIP)
    pseudo = (socket.inet_pton(socket.AF_INET6, SRC) + socket.inet_pton(socket.AF_INET6, GROUP)
              + struct.pack("!I3xB", len(body), 112))
    return body[:6] + struct.pack("!H", checksum(pseudo + body)) + body[8:]

kind = sys.argv[1]
packet, hops = {
    "ttl": (advert(0x31, 51, 10), 1),
    "version": (advert(0x21, 51, 1), 255),
    "corrupt": (advert(0x31, 51, 10)[:-1] + b"\x99", 255),
    "truncated": (advert(0x31, 51, 10)[:5], 255),
    "other-vrid": (advert(0x31, 52, 10), 255),
}[kind]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
s.bind((SRC, 0))
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex("eth0"))
for _ in range(3):
    s.sendto(packet, (GROUP, 0, 0, socket.if_nametoindex("eth0")))
"#;

fn status(lab: &Lab, pki: &Pki) -> Value {
    let out = lab.run(
        &lab.node(1),
        "curl",
        &[
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            &arg(&pki.path("ca.crt")),
            "--resolve",
            &format!("{NAME}:9443:127.0.0.1"),
            "-H",
            "Authorization: Bearer t0ken",
            &format!("https://{NAME}:9443/v1/status"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn status_reports_the_instance_and_bad_packets_are_dropped_and_counted() {
    let vip = check_status_and_drops("10.88.0.100", 24, INJECT);
    assert_eq!(vip["master"], "10.88.0.1");
    assert_eq!(vip["address"], "10.88.0.1");
}

#[test]
fn ipv6_bad_packets_are_dropped_and_counted() {
    let vip = check_status_and_drops("fd88::100", 64, INJECT6);
    // IPv6 advertisements come from the link-local address.
    let own = vip["address"].as_str().unwrap();
    assert!(own.starts_with("fe80::"), "{vip}");
    assert_eq!(vip["master"], own);
}

/// Starts the dataplane in node 1 with a virtual IP `address/prefix_len` of
/// priority 150, waits until it is Master, checks its status, sends it the
/// bad packets of `inject` (each kind 3 times), checks they were counted and
/// nothing changed; returns the instance's status.
fn check_status_and_drops(address: &str, prefix_len: u8, inject: &str) -> Value {
    let lab = Lab::new(1);
    let pki = Pki::new("dataplane CA");
    pki.issue("server", NAME, &[NAME]);
    std::fs::write(pki.path("token"), "t0ken\n").unwrap();
    let state = pki.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut vip = VirtualIp::new(
        "default/vip",
        51,
        vec![VirtualAddress {
            address: address.parse().unwrap(),
            prefix_len,
        }],
    );
    vip.advert_interval_ms = 100;
    vip.priorities.insert("n1".into(), 150);
    let config = DataplaneConfig {
        version: 7,
        virtual_ips: vec![vip],
        ..Default::default()
    };
    std::fs::write(state.join("config.json"), config.to_json_pretty()).unwrap();

    let mut dataplane = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.node(1),
            env!("CARGO_BIN_EXE_fairlead-dataplane"),
        ])
        .args(["--admin-address", "127.0.0.1:9443", "--node-name", "n1"])
        .args(["--tls-cert", &arg(&pki.path("server.crt"))])
        .args(["--tls-key", &arg(&pki.path("server.key"))])
        .args(["--token-file", &arg(&pki.path("token"))])
        .args(["--state-dir", &arg(&state)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.wait_sole_holder(1, address, Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = loop {
        let s = status(&lab, &pki);
        if s["virtualIPs"][0]["state"] == "Master" {
            break s;
        }
        assert!(Instant::now() < deadline, "never Master: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let vip = &before["virtualIPs"][0];
    assert_eq!(before["node"], "n1");
    assert_eq!(before["version"], 7);
    assert_eq!(vip["name"], "default/vip");
    assert_eq!(vip["priority"], 150);
    assert_eq!(vip["configuredPriority"], 150);
    assert_eq!(vip["lastTransition"]["from"], "Backup");
    assert_eq!(vip["lastTransition"]["to"], "Master");
    assert_eq!(
        vip["lastTransition"]["reason"],
        "no advertisement from a master within the master-down interval"
    );
    assert!(vip["counters"]["sent"].as_u64().unwrap() >= 1);

    for kind in ["ttl", "version", "corrupt", "truncated", "other-vrid"] {
        let script = format!("{CHECKSUM}{inject}");
        let out = lab.run(&lab.client(), "python3", &["-c", &script, kind]);
        assert!(out.status.success(), "inject {kind}: {out:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = status(&lab, &pki);
        if s["virtualIPs"][0]["counters"]["droppedMalformed"] == 6 {
            break s;
        }
        assert!(Instant::now() < deadline, "not all counted: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let counters = &after["virtualIPs"][0]["counters"];
    assert_eq!(counters["droppedTtl"], 3, "{counters}");
    assert_eq!(counters["droppedVersion"], 3, "{counters}");
    assert_eq!(counters["droppedVrid"], 3, "{counters}");
    assert_eq!(counters["received"], 15, "{counters}");
    assert_eq!(after["virtualIPs"][0]["state"], "Master");
    assert_eq!(
        after["virtualIPs"][0]["lastTransition"],
        vip["lastTransition"]
    );
    assert!(dataplane.try_wait().unwrap().is_none(), "still running");
    dataplane.kill().unwrap();
    dataplane.wait().unwrap();
    after["virtualIPs"][0].clone()
}
