//! fairlead and Debian's keepalived in one virtual router (needs root and
//! keepalived): each takes over when the other's master dies, and each
//! preempts the other when it returns with the higher priority; over IPv4
//! (VRRPv2 and v3) and IPv6 (v3).

mod common;
mod netns;
mod vip;

use std::path::{Path, PathBuf};
use std::time::Duration;

use netns::{Lab, Proc, write};

use vip::{VIP, VIP6};

/// fairlead's manifests: `version`, `interval`, and `priority` for node `n1`.
fn fairlead_manifests(name: &str, version: u8, interval: &str, priority: u8) -> PathBuf {
    vip::manifests(name, &fairlead_spec(version, interval, priority), "")
}

fn fairlead_spec(version: u8, interval: &str, priority: u8) -> String {
    format!(
        "  version: {version}\n  advertInterval: {interval}\n  priorities: [{{node: n1, priority: {priority}}}]\n"
    )
}

/// keepalived.conf for node 2: the same VRID and address, `vrrp_version`
/// 2 or 3, `advert_int` in seconds.
fn keepalived_conf(dir: &Path, version: u8, advert_int: &str, priority: u8) -> PathBuf {
    keepalived_conf_for(dir, &format!("{VIP}/24"), version, advert_int, priority, "")
}

/// [`keepalived_conf`] with another virtual address (`address/prefix`) and
/// `extra` lines in the instance.
fn keepalived_conf_for(
    dir: &Path,
    address: &str,
    version: u8,
    advert_int: &str,
    priority: u8,
    extra: &str,
) -> PathBuf {
    write(
        dir,
        "keepalived.conf",
        &format!(
            "global_defs {{
    router_id n2
    vrrp_version {version}
    vrrp_garp_master_delay 0
}}
vrrp_instance VI {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int}
    virtual_ipaddress {{
        {address}
    }}
{extra}}}
"
        ),
    );
    dir.join("keepalived.conf")
}

fn start_fairlead(lab: &Lab, dir: &Path) -> Proc {
    vip::start(env!("CARGO_BIN_EXE_fairlead"), lab, 1, dir)
}

/// keepalived (VRRP only, foreground, logging to stderr) on node 2.
struct Keepalived {
    proc: Proc,
    vrrp_pid: PathBuf,
}

impl Keepalived {
    fn start(lab: &Lab, dir: &Path, conf: &Path) -> Keepalived {
        let (mut proc, vrrp_pid) = lab.keepalived(&lab.node(2), conf, dir);
        proc.wait_for("Entering BACKUP STATE", Duration::from_secs(10));
        Keepalived { proc, vrrp_pid }
    }

    /// SIGKILL to the VRRP process first (its parent would otherwise tell it
    /// to stop cleanly), then to the parent: a crash, no priority 0.
    fn crash(mut self) {
        let pid = std::fs::read_to_string(&self.vrrp_pid).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
        self.proc.signal("KILL");
        self.proc.wait_exit(Duration::from_secs(5));
    }
}

fn lab() -> Lab {
    lab_for(VIP)
}

/// Two nodes: fairlead's (1) name server behind its proxy, keepalived's (2)
/// on `vip` itself, as keepalived does not proxy.
fn lab_for(vip: &str) -> Lab {
    let mut lab = Lab::new(2);
    lab.name_server(1, "n1", "127.0.0.1", 9000);
    lab.sysctl(2, "net.ipv4.ip_nonlocal_bind=1");
    lab.sysctl(2, "net.ipv6.ip_nonlocal_bind=1");
    lab.name_server(2, "n2", vip, 80);
    lab
}

#[test]
fn vrrp_v2_keepalived_master_dies_then_preempts_fairlead() {
    let dir = fairlead_manifests("keepalived-v2", 2, "1s", 120);
    let lab = lab();
    let conf = keepalived_conf(&dir, 2, "1", 130);
    let interval = Duration::from_secs(1);
    keepalived_master_dies_then_preempts_fairlead(&lab, &dir, &conf, interval, VIP, 24);
}

/// keepalived (130) on node 2 and fairlead (120) on node 1 hold `vip`, with
/// adverts every `interval`: fairlead follows keepalived, takes over when it
/// crashes, and is preempted when it returns, naming keepalived's address
/// (IPv6: link-local) as the reason.
fn keepalived_master_dies_then_preempts_fairlead(
    lab: &Lab,
    dir: &Path,
    conf: &Path,
    interval: Duration,
    vip: &str,
    prefix_len: u8,
) {
    // Master_Down_Interval is about 3.5 intervals.
    let master_down = interval * 4;
    let keepalived = Keepalived::start(lab, dir, conf);
    let mut fairlead = start_fairlead(lab, dir);
    // keepalived (130), started first, becomes master; fairlead (120) reads
    // its advertisements and stays Backup past its own Master_Down_Interval.
    lab.wait_sole_holder(2, vip, master_down + Duration::from_secs(2));
    lab.assert_steady(2, vip, master_down.max(Duration::from_secs(1)));
    assert_eq!(lab.who_answers(vip, 80), "n2");
    assert!(fairlead.lines().iter().all(|l| !l.contains("to=Master")));

    keepalived.crash();
    fairlead.wait_for("to=Master", master_down + Duration::from_millis(500));
    lab.wait_holds(1, vip, Duration::from_secs(1));
    let _ = std::fs::remove_file(dir.join("keepalived.pid"));
    lab.run(
        &lab.node(2),
        "ip",
        &["addr", "del", &format!("{vip}/{prefix_len}"), "dev", "eth0"],
    );
    assert_eq!(lab.who_answers(vip, 80), "n1");

    // keepalived returns with the higher priority and preempts fairlead.
    let mut keepalived = Keepalived::start(lab, dir, conf);
    keepalived.proc.wait_for(
        "Entering MASTER STATE",
        master_down + Duration::from_secs(2),
    );
    let source = if vip.contains(':') {
        "fe80::"
    } else {
        "10.88.0.2"
    };
    let line = fairlead.wait_for(
        &format!("to=Backup reason={source}"),
        Duration::from_secs(2),
    );
    assert!(line.contains("advertised priority 130"), "{line}");
    lab.wait_sole_holder(2, vip, Duration::from_secs(2));
    assert_eq!(lab.who_answers(vip, 80), "n2");
}

#[test]
fn vrrp_v3_fairlead_master_dies_then_preempts_keepalived() {
    let dir = fairlead_manifests("keepalived-v3", 3, "100ms", 130);
    let lab = lab();
    let conf = keepalived_conf(&dir, 3, "0.1", 120);
    fairlead_master_dies_then_preempts_keepalived(&lab, &dir, &conf, VIP, 24);
}

/// fairlead (130) on node 1 and keepalived (120) on node 2 hold `vip`:
/// keepalived follows fairlead, takes over when it is SIGKILLed and is
/// preempted when it returns.
fn fairlead_master_dies_then_preempts_keepalived(
    lab: &Lab,
    dir: &Path,
    conf: &Path,
    vip: &str,
    prefix_len: u8,
) {
    let mut keepalived = Keepalived::start(lab, dir, conf);
    let mut fairlead = start_fairlead(lab, dir);
    // keepalived may win the first election alone; fairlead (130) preempts
    // it, and keepalived (120) stays Backup on its advertisements.
    fairlead.wait_for("to=Master", Duration::from_secs(3));
    lab.wait_sole_holder(1, vip, Duration::from_secs(3));
    lab.assert_steady(1, vip, Duration::from_millis(1000));
    assert_eq!(lab.who_answers(vip, 80), "n1");

    fairlead.signal("KILL");
    fairlead.wait_exit(Duration::from_secs(5));
    // 3 × 100 ms + skew (53 ms) after fairlead's last advertisement.
    keepalived
        .proc
        .wait_for("Entering MASTER STATE", Duration::from_secs(2));
    lab.wait_holds(2, vip, Duration::from_secs(1));
    lab.run(
        &lab.node(1),
        "ip",
        &["addr", "del", &format!("{vip}/{prefix_len}"), "dev", "eth0"],
    );
    assert_eq!(lab.who_answers(vip, 80), "n2");

    // fairlead returns with the higher priority and preempts keepalived.
    let mut fairlead = start_fairlead(lab, dir);
    fairlead.wait_for("to=Master", Duration::from_secs(2));
    keepalived
        .proc
        .wait_for("Entering BACKUP STATE", Duration::from_secs(2));
    lab.wait_sole_holder(1, vip, Duration::from_secs(2));
    assert_eq!(lab.who_answers(vip, 80), "n1");
}

#[test]
fn ipv6_keepalived_master_dies_then_preempts_fairlead() {
    let spec = fairlead_spec(3, "100ms", 120);
    let dir = vip::manifests_for("keepalived-v6-a", &format!("{VIP6}/64"), &spec, "");
    let lab = lab_for(VIP6);
    let conf = keepalived_conf_for(&dir, &format!("{VIP6}/64"), 3, "0.1", 130, "");
    let interval = Duration::from_millis(100);
    keepalived_master_dies_then_preempts_fairlead(&lab, &dir, &conf, interval, VIP6, 64);
}

#[test]
fn ipv6_fairlead_master_dies_then_preempts_keepalived() {
    let spec = fairlead_spec(3, "100ms", 130);
    let dir = vip::manifests_for("keepalived-v6-b", &format!("{VIP6}/64"), &spec, "");
    let lab = lab_for(VIP6);
    let conf = keepalived_conf_for(&dir, &format!("{VIP6}/64"), 3, "0.1", 120, "");
    fairlead_master_dies_then_preempts_keepalived(&lab, &dir, &conf, VIP6, 64);
}

#[test]
fn vrrp_v2_password_authentication_both_ways() {
    // n1: fairlead 130, n2: keepalived 120, n3: fairlead 110, one password.
    let secret = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: vrrp}\nstringData: {password: s3cret}\n";
    let spec = "  version: 2\n  advertInterval: 1s\n  authSecret: vrrp\n  priorities: [{node: n1, priority: 130}, {node: n3, priority: 110}]\n";
    let dir = vip::manifests("keepalived-auth", spec, secret);
    let auth = "    authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n";
    let conf = keepalived_conf_for(&dir, &format!("{VIP}/24"), 2, "1", 120, auth);
    let mut lab = Lab::new(3);
    for i in [1, 3] {
        lab.name_server(i, &format!("n{i}"), "127.0.0.1", 9000);
    }
    lab.sysctl(2, "net.ipv4.ip_nonlocal_bind=1");
    lab.name_server(2, "n2", VIP, 80);
    let mut n1 = start_fairlead(&lab, &dir);
    n1.wait_for("to=Master", Duration::from_secs(5));
    let mut keepalived = Keepalived::start(&lab, &dir, &conf);
    let n3 = vip::start(env!("CARGO_BIN_EXE_fairlead"), &lab, 3, &dir);
    // Past keepalived's Master_Down_Interval (3.53 s): it takes fairlead's
    // authenticated advertisements as a master's.
    lab.assert_steady(1, VIP, Duration::from_secs(4));
    assert_eq!(lab.who_answers(VIP, 80), "n1");

    n1.signal("KILL");
    n1.wait_exit(Duration::from_secs(5));
    keepalived
        .proc
        .wait_for("Entering MASTER STATE", Duration::from_secs(5));
    lab.run(
        &lab.node(1),
        "ip",
        &["addr", "del", &format!("{VIP}/24"), "dev", "eth0"],
    );
    // n3 (110) takes keepalived's (120) as a master's past its own 3.57 s.
    lab.wait_sole_holder(2, VIP, Duration::from_secs(1));
    lab.assert_steady(2, VIP, Duration::from_secs(4));
    assert_eq!(lab.who_answers(VIP, 80), "n2");
    drop(n3);
    let lines = keepalived.proc.lines().join("\n");
    assert!(!lines.to_lowercase().contains("passw"), "{lines}");
}
