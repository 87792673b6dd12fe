use std::net::SocketAddr;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::fleet::Target;
use crate::push::{
    BackendHealth, DataplaneStatus, LastCheck, ServerHealth, VirtualIpState, VrrpTransition,
};

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(second).unwrap())
}

fn report(pod: &str, state: PushState, status: Option<DataplaneStatus>) -> Report {
    let address: SocketAddr = "127.0.0.2:9443".parse().unwrap();
    Report {
        target: Target {
            pod: pod.into(),
            node: Some(format!("node-{pod}")),
            address,
            incarnation: String::new(),
        },
        state,
        status,
    }
}

fn error(message: &str) -> RenderError {
    RenderError {
        object: "Frontend default/web".into(),
        field: "spec.tls.certificates[0].secret".into(),
        message: message.into(),
    }
}

#[test]
fn a_missing_secret_is_secret_not_found_with_the_message() {
    let e = error("Secret default/site does not exist");
    let verdict = accepted(&[&e]);
    assert!(!verdict.status);
    assert_eq!(verdict.reason, "SecretNotFound");
    assert_eq!(
        verdict.message,
        "spec.tls.certificates[0].secret: Secret default/site does not exist"
    );
}

#[test]
fn reasons_follow_what_render_reports() {
    let reason = |m: &str| accepted(&[&error(m)]).reason;
    assert_eq!(
        reason("Backend \"nope\" does not exist in namespace default"),
        "BackendNotFound"
    );
    assert_eq!(
        reason("Service \"web\" does not exist in namespace default"),
        "ServiceNotFound"
    );
    assert_eq!(
        reason("Backend \"app\" is invalid (see its errors)"),
        "InvalidBackend"
    );
    assert_eq!(reason("70000 is not a port (1-65535)"), "InvalidSpec");
}

#[test]
fn programmed_counts_dataplanes_and_names_the_version() {
    let reports = [
        report("a", PushState::Applied(7), None),
        report("b", PushState::Applied(6), None),
        report("c", PushState::Failed("connect: refused".into()), None),
    ];
    let p = Programming::of(7, &reports);
    let v = programmed(true, &p);
    assert_eq!((v.status, v.reason), (false, "Pending"));
    assert_eq!(v.message, "applied on 1 of 3 dataplanes, version 7");
    let all = Programming::of(7, &reports[..1]);
    let v = programmed(true, &all);
    assert_eq!((v.status, v.reason), (true, "Programmed"));
    assert_eq!(v.message, "applied on 1 of 1 dataplanes, version 7");
    assert_eq!(
        programmed(true, &Programming::of(7, &[])).reason,
        "NoDataplanes"
    );
    assert_eq!(programmed(false, &all).reason, "NotAccepted");
}

#[test]
fn a_rejected_config_is_programmed_false_rejected_with_the_reasons() {
    let reports = [
        report("a", PushState::Applied(3), None),
        report(
            "b",
            PushState::Rejected(3, vec!["bind 0.0.0.0:80: in use".into()]),
            None,
        ),
    ];
    let v = programmed(true, &Programming::of(3, &reports));
    assert_eq!((v.status, v.reason), (false, "Rejected"));
    assert_eq!(
        v.message,
        "dataplane b rejected version 3: bind 0.0.0.0:80: in use; applied on 1 of 2 dataplanes, version 3"
    );
}

#[test]
fn transition_time_moves_only_when_status_flips() {
    let ok = || Verdict {
        status: true,
        reason: "Programmed",
        message: "applied on 1 of 1 dataplanes, version 1".into(),
    };
    let first = condition(PROGRAMMED, ok(), Some(1), &[], &at(100));
    assert_eq!(first.last_transition_time, at(100));
    let mut again = ok();
    again.message = "applied on 2 of 2 dataplanes, version 2".into();
    let second = condition(
        PROGRAMMED,
        again,
        Some(2),
        std::slice::from_ref(&first),
        &at(200),
    );
    assert_eq!(second.last_transition_time, at(100));
    assert_eq!(second.observed_generation, Some(2));
    let flipped = Verdict {
        status: false,
        reason: "Pending",
        message: String::new(),
    };
    let third = condition(PROGRAMMED, flipped, Some(2), &[second], &at(300));
    assert_eq!(third.last_transition_time, at(300));
}

#[test]
fn backend_servers_merge_the_dataplanes_views() {
    let server = |state: &str, ok: bool| ServerHealth {
        name: "srv1".into(),
        address: "10.0.0.1".into(),
        port: 80,
        state: state.into(),
        last_check: Some(LastCheck {
            ok,
            reason: if ok {
                "HTTP 200".into()
            } else {
                "connection refused".into()
            },
        }),
    };
    let status = |state: &str, ok: bool| DataplaneStatus {
        version: 1,
        backends: vec![BackendHealth {
            name: "default/app".into(),
            servers: vec![server(state, ok)],
        }],
        ..Default::default()
    };
    let p = Programming::of(1, &[]);
    let down = [
        report("a", PushState::Applied(1), Some(status("down", false))),
        report("b", PushState::Applied(1), Some(status("down", false))),
    ];
    let s = backend_status("default/app", Some(1), None, &[], &p, &down, &at(1));
    assert_eq!(s.servers.len(), 1);
    assert_eq!(s.servers[0].state, "Down");
    assert_eq!(s.servers[0].message.as_deref(), Some("connection refused"));
    let mixed = [
        report("a", PushState::Applied(1), Some(status("up", true))),
        report("b", PushState::Applied(1), Some(status("down", false))),
    ];
    let s = backend_status("default/app", Some(1), None, &[], &p, &mixed, &at(1));
    assert_eq!(s.servers[0].state, "Mixed");
    assert_eq!(
        s.servers[0].message.as_deref(),
        Some(
            "down on 1 of 2 dataplanes, up on 1 of 2 dataplanes; last failed check: connection refused"
        )
    );
}

#[test]
fn virtual_ip_status_names_the_master_and_each_node() {
    let status = |state: &str, priority: i32| DataplaneStatus {
        virtual_ips: vec![VirtualIpState {
            name: "default/vip1".into(),
            state: state.into(),
            priority,
            vrid: None,
            heard_vrids: Vec::new(),
            master: None,
            last_transition: None,
            became_master_at_unix_ms: None,
        }],
        ..Default::default()
    };
    let reports = [
        report("b", PushState::Applied(1), Some(status("Backup", 100))),
        report("a", PushState::Applied(1), Some(status("Master", 101))),
        report("c", PushState::Applied(1), None),
    ];
    let p = Programming::of(1, &reports);
    let s = virtual_ip_status("default/vip1", Some(4), None, &[], &p, &reports, &at(1));
    assert_eq!(s.master.as_deref(), Some("node-a"));
    let nodes: Vec<(&str, &str, i32)> = (s.nodes.iter())
        .map(|n| (n.node.as_str(), n.state.as_str(), n.priority))
        .collect();
    assert_eq!(
        nodes,
        [("node-a", "Master", 101), ("node-b", "Backup", 100)]
    );
    let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "MasterElected")
    );
    assert_eq!(ready.observed_generation, Some(4));
}

/// A dataplane report of VirtualIP default/vip1: `state` since `since`, read
/// at `read` (Unix ms).
fn vrrp_report(pod: &str, state: &str, since: u64, read: u64) -> Report {
    let status = DataplaneStatus {
        virtual_ips: vec![VirtualIpState {
            name: "default/vip1".into(),
            state: state.into(),
            priority: 100,
            vrid: None,
            heard_vrids: Vec::new(),
            master: None,
            last_transition: Some(VrrpTransition {
                at_unix_ms: since,
                from: "Backup".into(),
            }),
            became_master_at_unix_ms: None,
        }],
        read_at_unix_ms: read,
        ..Default::default()
    };
    report(pod, PushState::Applied(1), Some(status))
}

/// Reports of default/vip1 where each (node, state, became Master at) is one node's.
fn became_reports(nodes: &[(&str, &str, Option<u64>)]) -> Vec<Report> {
    (nodes.iter())
        .map(|&(pod, state, became)| {
            let mut r = vrrp_report(pod, state, 0, 0);
            let v = &mut r.status.as_mut().unwrap().virtual_ips[0];
            v.became_master_at_unix_ms = became;
            r
        })
        .collect()
}

#[test]
fn a_master_between_two_reads_is_a_move_there_and_back() {
    let named = |from: &str, to: &str| (Some(from.to_string()), Some(to.to_string()));
    let moves = |previous, current, reports: &[Report], since| {
        master_moves("default/vip1", previous, current, reports, since)
    };
    // node-a was master, node-b took over at 2_000 and node-a preempted it
    // back at 3_000, all between two reads.
    let reports = became_reports(&[("a", "Master", Some(3_000)), ("b", "Backup", Some(2_000))]);
    let (seen, last) = moves(Some("node-a"), Some("node-a"), &reports, 1_000);
    assert_eq!(seen, [named("node-a", "node-b"), named("node-b", "node-a")]);
    assert_eq!(last.as_deref(), Some("node-a"));
    assert_eq!(newest_became_master("default/vip1", &reports), 3_000);
    // Nothing new since the last read: no move.
    assert_eq!(moves(Some("node-a"), Some("node-a"), &reports, 3_000).0, []);
    // A plain failover; and a master gone with nobody taking over.
    let reports = became_reports(&[("a", "Fault", Some(100)), ("b", "Master", Some(2_000))]);
    let (seen, _) = moves(Some("node-a"), Some("node-b"), &reports, 1_000);
    assert_eq!(seen, [named("node-a", "node-b")]);
    let reports = became_reports(&[("a", "Fault", Some(100))]);
    let (seen, last) = moves(Some("node-a"), None, &reports, 1_000);
    assert_eq!(
        (seen, last),
        (vec![(Some("node-a".to_string()), None)], None)
    );
}

#[test]
fn no_master_is_a_move_only_when_every_dataplane_says_so() {
    let named = |from: &str, to: &str| (Some(from.to_string()), Some(to.to_string()));
    let moves =
        |previous, reports: &[Report]| master_moves("default/vip1", previous, None, reports, 1_000);
    // node-a was killed (no report); node-b has not taken over yet.
    let mut reports = became_reports(&[("a", "Master", Some(100)), ("b", "Backup", None)]);
    reports[0].status = None;
    let (seen, last) = moves(Some("node-a"), &reports);
    assert_eq!((seen, last.as_deref()), (vec![], Some("node-a")));
    // Its Pod is no longer ready, so it is not among the reports at all.
    assert_eq!(moves(Some("node-a"), &reports[1..]).0, []);
    // node-b took over, then node-a (restarted, not reporting yet)
    // preempted it: only the move to node-b is known so far.
    let became = &mut reports[1].status.as_mut().unwrap().virtual_ips[0];
    became.became_master_at_unix_ms = Some(2_000);
    let (seen, last) = moves(Some("node-a"), &reports);
    assert_eq!(seen, [named("node-a", "node-b")]);
    assert_eq!(last.as_deref(), Some("node-b"));
    // Both report, both Backup (node-b read after it stepped down for
    // node-a, node-a read a moment before it took over): not a move.
    let reports = became_reports(&[("a", "Backup", Some(100)), ("b", "Backup", Some(2_000))]);
    assert_eq!(moves(Some("node-b"), &reports).0, []);
    // Nobody can be master (both in Fault): that is a move.
    let reports = became_reports(&[("a", "Fault", Some(100)), ("b", "Fault", Some(2_000))]);
    let (seen, last) = moves(Some("node-b"), &reports);
    assert_eq!(
        (seen, last),
        (vec![(Some("node-b".to_string()), None)], None)
    );
}

fn ready_of(reports: &[Report]) -> (Option<String>, String, String) {
    let p = Programming::of(1, reports);
    let s = virtual_ip_status("default/vip1", Some(1), None, &[], &p, reports, &at(1));
    let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
    (s.master, ready.reason.clone(), ready.message.clone())
}

#[test]
fn two_masters_at_once_are_a_split_brain_not_a_master() {
    let reports = [
        vrrp_report("a", "Master", 1_000, 60_000),
        vrrp_report("b", "Master", 30_000, 61_000),
        vrrp_report("c", "Backup", 1_000, 60_500),
    ];
    let (master, reason, message) = ready_of(&reports);
    assert_eq!((master, reason.as_str()), (None, "MultipleMasters"));
    assert!(
        message.starts_with("node-a, node-b are all Master and hold the addresses"),
        "{message}"
    );
}

#[test]
fn a_handover_seen_through_a_stale_report_names_the_new_master() {
    // b took over at 59.5 s; a's report, read at 59.9 s, still says Master.
    let reports = [
        vrrp_report("a", "Master", 1_000, 59_900),
        vrrp_report("b", "Master", 59_500, 61_000),
    ];
    let (master, reason, _) = ready_of(&reports);
    assert_eq!(
        (master.as_deref(), reason.as_str()),
        (Some("node-b"), "MasterElected")
    );
    // Both still Master a second later: a real split brain.
    let reports = [
        vrrp_report("a", "Master", 1_000, 60_600),
        vrrp_report("b", "Master", 59_500, 61_000),
    ];
    assert_eq!(ready_of(&reports).1, "MultipleMasters");
}
