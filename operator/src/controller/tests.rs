//! Reconcile error paths against a mocked API server (tower-test): every
//! request the status sync makes is answered by a scripted verifier.

use std::sync::{Arc, Mutex};

use fairlead_crds::{Backend, Frontend};
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

use super::sync::{Objects, StatusSync};
use super::*;
use crate::fleet::{PushState, Report};
use crate::render::{Snapshot, render};

/// What the mock API server saw: (method, path, body) of each request.
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A client whose API server answers status patches with `patch_status`
/// (echoing `objects` on 200) and accepts Events.
fn mock_client(patch_status: u16, objects: Vec<Value>) -> (Client, Seen) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let bytes = request.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            log.lock()
                .unwrap()
                .push((method, path.clone(), body.clone()));
            let (status, answer) = if path.contains("/events") {
                (201, body)
            } else if patch_status == 200 {
                let name = path.rsplit('/').nth(1).unwrap_or_default();
                let object = (objects.iter())
                    .find(|o| o["metadata"]["name"] == name)
                    .cloned()
                    .unwrap_or(Value::Null);
                (200, object)
            } else {
                let status = json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "the object has been modified", "reason": "Conflict",
                    "code": patch_status,
                });
                (patch_status, status)
            };
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            send.send_response(response);
        }
    });
    (Client::new(service, "default"), seen)
}

fn syncer(client: Client) -> StatusSync {
    let reporter = Reporter {
        controller: "fairlead-operator".into(),
        instance: Some("test".into()),
    };
    StatusSync::new(client.clone(), Recorder::new(client, reporter))
}

fn frontend_with_missing_secret() -> Frontend {
    serde_json::from_value(json!({
        "apiVersion": "fairlead.io/v1alpha1", "kind": "Frontend",
        "metadata": {"name": "https-in", "namespace": "default", "generation": 3},
        "spec": {
            "mode": "http", "bind": {"port": 8443},
            "tls": {"certificates": [{"secret": "site"}]},
            "defaultBackend": "app"
        }
    }))
    .unwrap()
}

fn backend() -> Backend {
    serde_json::from_value(json!({
        "apiVersion": "fairlead.io/v1alpha1", "kind": "Backend",
        "metadata": {"name": "app", "namespace": "default", "generation": 1},
        "spec": {"servers": [{"name": "srv1", "address": "127.0.0.1", "port": 9001}]}
    }))
    .unwrap()
}

fn condition<'a>(body: &'a Value, type_: &str) -> &'a Value {
    (body["status"]["conditions"].as_array().unwrap().iter())
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {body}"))
}

fn status_patches(seen: &Seen) -> Vec<(String, Value)> {
    (seen.lock().unwrap().iter())
        .filter(|(method, path, _)| method == "PATCH" && path.ends_with("/status"))
        .map(|(_, path, body)| (path.clone(), body.clone()))
        .collect()
}

#[tokio::test]
async fn a_missing_secret_gives_accepted_false_secret_not_found() {
    let (f, b) = (frontend_with_missing_secret(), backend());
    let rendered = render(&Snapshot {
        frontends: vec![f.clone()],
        backends: vec![b.clone()],
        ..Default::default()
    });
    let answers = vec![
        serde_json::to_value(&f).unwrap(),
        serde_json::to_value(&b).unwrap(),
    ];
    let (client, seen) = mock_client(200, answers);
    let reports = [report("dp-0", PushState::Applied(1))];
    let objects = Objects {
        frontends: vec![Arc::new(f)],
        backends: vec![Arc::new(b)],
        ..Default::default()
    };
    let programming = Programming::of(1, &reports);
    let failures =
        (syncer(client).sync(&objects, &rendered.errors, &programming, &reports, &[])).await;
    assert!(failures.is_empty(), "{failures:?}");
    let patches = status_patches(&seen);
    let (_, frontend) = (patches.iter())
        .find(|(path, _)| path.contains("/frontends/https-in/"))
        .expect("the Frontend's status is written");
    let accepted = condition(frontend, "Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "SecretNotFound");
    assert_eq!(
        accepted["message"],
        "spec.tls.certificates[0].secret: Secret default/site does not exist"
    );
    assert_eq!(accepted["observedGeneration"], 3);
    assert_eq!(condition(frontend, "Programmed")["reason"], "NotAccepted");
    assert_eq!(frontend["kind"], "Frontend");
    let (_, backend) = (patches.iter())
        .find(|(path, _)| path.contains("/backends/app/"))
        .expect("the Backend's status is written");
    assert_eq!(condition(backend, "Accepted")["status"], "True");
    let programmed = condition(backend, "Programmed");
    assert_eq!(programmed["status"], "True");
    assert_eq!(
        programmed["message"],
        "applied on 1 of 1 dataplanes, version 1"
    );
    let events = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p, _)| m == "POST" && p.contains("/events"))
        .count();
    assert_eq!(
        events, 1,
        "one Warning Event for the Frontend turning not Accepted"
    );
}

#[tokio::test]
async fn a_failed_status_write_is_returned_for_retry() {
    for code in [409, 500] {
        let b = backend();
        let rendered = render(&Snapshot {
            backends: vec![b.clone()],
            ..Default::default()
        });
        let (client, seen) = mock_client(code, Vec::new());
        let objects = Objects {
            backends: vec![Arc::new(b)],
            ..Default::default()
        };
        let programming = Programming::of(1, &[]);
        let failures = syncer(client)
            .sync(&objects, &rendered.errors, &programming, &[], &[])
            .await;
        assert_eq!(failures.len(), 1, "HTTP {code}");
        let message = failures[0].to_string();
        assert!(
            message.starts_with("writing the status of Backend default/app: "),
            "{message}"
        );
        assert_eq!(status_patches(&seen).len(), 1);
    }
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    let b = backend();
    let rendered = render(&Snapshot {
        backends: vec![b.clone()],
        ..Default::default()
    });
    let reports = [report("dp-0", PushState::Applied(2))];
    let programming = Programming::of(2, &reports);
    let (client, seen) = mock_client(200, vec![serde_json::to_value(&b).unwrap()]);
    let mut sync = syncer(client);
    let objects = |b: Backend| Objects {
        backends: vec![Arc::new(b)],
        ..Default::default()
    };
    assert!(
        sync.sync(
            &objects(b.clone()),
            &rendered.errors,
            &programming,
            &reports,
            &[]
        )
        .await
        .is_empty()
    );
    let written = status_patches(&seen);
    assert_eq!(written.len(), 1);
    // The object as the API server now stores it.
    let mut stored = b;
    stored.status = Some(serde_json::from_value(written[0].1["status"].clone()).unwrap());
    assert!(
        sync.sync(
            &objects(stored),
            &rendered.errors,
            &programming,
            &reports,
            &[]
        )
        .await
        .is_empty()
    );
    assert_eq!(
        status_patches(&seen).len(),
        1,
        "nothing written the second time"
    );
}

#[tokio::test]
async fn a_rejected_push_sets_programmed_false_rejected_and_warns_on_the_pod() {
    let b = backend();
    let rendered = render(&Snapshot {
        backends: vec![b.clone()],
        ..Default::default()
    });
    let reports = [
        report("dp-0", PushState::Applied(5)),
        report(
            "dp-1",
            PushState::Rejected(5, vec!["bind 0.0.0.0:80: address in use".into()]),
        ),
    ];
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "dp-1", "namespace": "fairlead-system", "uid": "u1"}
    }))
    .unwrap();
    let (client, seen) = mock_client(200, vec![serde_json::to_value(&b).unwrap()]);
    let objects = Objects {
        backends: vec![Arc::new(b)],
        ..Default::default()
    };
    let programming = Programming::of(5, &reports);
    let mut sync = syncer(client);
    let failures = sync
        .sync(
            &objects,
            &rendered.errors,
            &programming,
            &reports,
            &[Arc::new(pod.clone())],
        )
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let patches = status_patches(&seen);
    let programmed = condition(&patches[0].1, "Programmed");
    assert_eq!(programmed["status"], "False");
    assert_eq!(programmed["reason"], "Rejected");
    assert_eq!(
        programmed["message"],
        "dataplane dp-1 rejected version 5: bind 0.0.0.0:80: address in use; applied on 1 of 2 dataplanes, version 5"
    );
    let events: Vec<Value> = (seen.lock().unwrap().iter())
        .filter(|(m, p, _)| m == "POST" && p.contains("/events"))
        .map(|(_, _, body)| body.clone())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "Rejected");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["regarding"]["name"], "dp-1");
    // The same rejection is announced once.
    let again = sync
        .sync(
            &Objects::default(),
            &[],
            &programming,
            &reports,
            &[Arc::new(pod)],
        )
        .await;
    assert!(again.is_empty());
    let posts = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p, _)| m == "POST" && p.contains("/events"))
        .count();
    assert_eq!(posts, 1);
}

#[test]
fn same_content_keeps_its_version_and_a_newer_dataplane_is_outbid() {
    let mut v = Versioner::default();
    let config = DataplaneConfig::default();
    assert_eq!(v.next(config.clone(), 0).map(|c| c.version), Some(1));
    assert_eq!(
        v.next(config.clone(), 1),
        None,
        "same content, same version"
    );
    // A dataplane runs 9 (pushed by the previous leader): the same content gets 10.
    assert_eq!(v.next(config.clone(), 9).map(|c| c.version), Some(10));
    let mut changed = config;
    changed.schema_version += 1;
    assert_eq!(v.next(changed, 10).map(|c| c.version), Some(11));
}

fn report(pod: &str, state: PushState) -> Report {
    Report {
        target: Target {
            pod: pod.into(),
            node: None,
            address: "127.0.0.1:9443".parse().unwrap(),
            incarnation: String::new(),
        },
        state,
        status: None,
    }
}

#[test]
fn only_ready_pods_with_an_ip_are_targets() {
    let pod = |ready: &str, ip: Option<&str>| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "dp", "namespace": "fairlead-system", "uid": "u"},
            "spec": {"nodeName": "lb-1", "containers": [{"name": "dataplane",
                "ports": [{"name": "admin", "containerPort": 9444}]}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": [{"name": "dataplane", "restartCount": 2, "ready": true,
                    "image": "i", "imageID": ""}]}
        }))
        .unwrap()
    };
    let target = Target::from_pod(&pod("True", Some("127.0.0.5"))).unwrap();
    assert_eq!(target.address, "127.0.0.5:9444".parse().unwrap());
    assert_eq!(target.node.as_deref(), Some("lb-1"));
    assert_eq!(target.incarnation, "u/127.0.0.5/2");
    assert_eq!(Target::from_pod(&pod("False", Some("127.0.0.5"))), None);
    assert_eq!(Target::from_pod(&pod("True", None)), None);
}

#[tokio::test]
async fn a_moved_master_is_written_and_announced_as_a_failover() {
    use crate::push::{DataplaneStatus, VirtualIpState};
    let vip: fairlead_crds::VirtualIP = serde_json::from_value(json!({
        "apiVersion": "fairlead.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": "vip1", "namespace": "default", "generation": 1},
        "spec": {"addresses": ["192.0.2.100/24"], "virtualRouterID": 51},
        "status": {"observedGeneration": 1, "master": "lb-1",
            "nodes": [{"node": "lb-1", "state": "Master", "priority": 101}]}
    }))
    .unwrap();
    let state = |node: &str, state: &str| {
        let mut r = report(node, PushState::Applied(1));
        r.target.node = Some(node.into());
        r.status = Some(DataplaneStatus {
            version: 1,
            virtual_ips: vec![VirtualIpState {
                name: "default/vip1".into(),
                state: state.into(),
                priority: 100,
                vrid: None,
                heard_vrids: Vec::new(),
                master: None,
                last_transition: None,
                became_master_at_unix_ms: None,
            }],
            ..Default::default()
        });
        r
    };
    let reports = [state("lb-1", "Fault"), state("lb-2", "Master")];
    let (client, seen) = mock_client(200, vec![serde_json::to_value(&vip).unwrap()]);
    let objects = Objects {
        virtual_ips: vec![Arc::new(vip)],
        ..Default::default()
    };
    let programming = Programming::of(1, &reports);
    let failures = syncer(client)
        .sync(&objects, &[], &programming, &reports, &[])
        .await;
    assert!(failures.is_empty(), "{failures:?}");
    let patches = status_patches(&seen);
    assert_eq!(patches[0].1["status"]["master"], "lb-2");
    assert_eq!(
        patches[0].1["status"]["nodes"],
        json!([{"node": "lb-1", "state": "Fault", "priority": 100},
               {"node": "lb-2", "state": "Master", "priority": 100}])
    );
    let events: Vec<Value> = (seen.lock().unwrap().iter())
        .filter(|(m, p, _)| m == "POST" && p.contains("/events"))
        .map(|(_, _, body)| body.clone())
        .collect();
    let failover = events
        .iter()
        .find(|e| e["reason"] == "Failover")
        .expect("a Failover Event");
    assert_eq!(failover["note"], "master moved from lb-1 to lb-2");
    assert_eq!(failover["regarding"]["name"], "vip1");
}
