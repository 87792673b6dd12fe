//! Leader election against a mocked API server (tower-test): a scripted
//! Lease store answering GET, POST and PUT like the API server, with
//! resourceVersion conflicts.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

/// The stored Lease (None: absent) and every request seen.
#[derive(Default)]
struct Store {
    lease: Option<Value>,
    requests: Vec<String>,
}

fn mock(store: Arc<Mutex<Store>>) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let bytes = request.into_body().collect().await.unwrap().to_bytes();
            let mut s = store.lock().unwrap();
            s.requests.push(method.clone());
            let (status, body) = match (method.as_str(), s.lease.clone()) {
                ("GET", Some(lease)) => (200, lease),
                ("GET", None) => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
                ("POST", None) | ("PUT", Some(_)) => {
                    let mut new: Value = serde_json::from_slice(&bytes).unwrap();
                    let current = s
                        .lease
                        .as_ref()
                        .map(|l| l["metadata"]["resourceVersion"].clone());
                    if let Some(current) = current
                        && new["metadata"]["resourceVersion"] != current
                    {
                        let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "modified"});
                        (409, conflict)
                    } else {
                        let next = s.requests.len().to_string();
                        new["metadata"]["resourceVersion"] = json!(next);
                        s.lease = Some(new.clone());
                        (200, new)
                    }
                }
                _ => (
                    409,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "exists"}),
                ),
            };
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            send.send_response(response);
        }
    });
    Client::new(service, "fairlead-system")
}

fn elector(client: Client, identity: &str, duration_ms: u64) -> LeaderElector {
    LeaderElector::new(
        client,
        LeaseSettings {
            namespace: "fairlead-system".into(),
            name: "fairlead-operator".into(),
            identity: identity.into(),
            owner: None,
            duration: Duration::from_millis(duration_ms),
            renew_interval: Duration::from_millis(50),
        },
    )
}

fn holder(store: &Mutex<Store>) -> Option<String> {
    let s = store.lock().unwrap();
    s.lease.as_ref()?["spec"]["holderIdentity"]
        .as_str()
        .map(String::from)
}

#[tokio::test]
async fn the_first_replica_creates_the_lease_and_leads() {
    let store = Arc::new(Mutex::new(Store::default()));
    let mut a = elector(mock(store.clone()), "a", 3000);
    let mut reads = 0;
    a.acquire(|| reads += 1).await;
    assert_eq!(reads, 1);
    assert_eq!(holder(&store).as_deref(), Some("a"));
    assert_eq!(store.lock().unwrap().requests, ["GET", "POST"]);
}

#[tokio::test]
async fn a_standby_waits_for_the_holder_to_expire_then_takes_over() {
    let store = Arc::new(Mutex::new(Store::default()));
    let client = mock(store.clone());
    let mut a = elector(client.clone(), "a", 1000);
    a.acquire(|| {}).await;
    let mut b = elector(client, "b", 1000);
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "a's fresh Lease is respected"
    );
    // a stops renewing (dies): b takes over once the record is `duration` old on b's clock.
    let started = Instant::now();
    b.acquire(|| {}).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "took over after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "took over after {waited:?}"
    );
    assert_eq!(holder(&store).as_deref(), Some("b"));
    let s = store.lock().unwrap();
    assert_eq!(s.lease.as_ref().unwrap()["spec"]["leaseTransitions"], 1);
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once_and_the_old_leader_learns_it_lost() {
    let store = Arc::new(Mutex::new(Store::default()));
    let client = mock(store.clone());
    let mut a = elector(client.clone(), "a", 60_000);
    a.acquire(|| {}).await;
    a.release().await.unwrap();
    assert_eq!(holder(&store), None);
    let mut b = elector(client, "b", 60_000);
    let started = Instant::now();
    b.acquire(|| {}).await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(holder(&store).as_deref(), Some("b"));
    // a, still holding on, finds the Lease taken at its next renewal.
    let lost = a.hold().await;
    assert_eq!(
        lost.to_string(),
        "leader Lease fairlead-system/fairlead-operator: another replica holds it"
    );
}

#[tokio::test]
async fn of_two_writes_from_the_same_read_only_one_wins() {
    let store = Arc::new(Mutex::new(Store::default()));
    let client = mock(store.clone());
    let mut a = elector(client.clone(), "a", 60_000);
    a.acquire(|| {}).await;
    a.release().await.unwrap();
    // b read the released Lease, then c took it: b's write carries a stale resourceVersion.
    let mut stale = store.lock().unwrap().lease.clone().unwrap();
    let mut c = elector(client.clone(), "c", 60_000);
    assert!(c.try_acquire_or_renew().await.unwrap());
    stale["spec"]["holderIdentity"] = json!("b");
    let api: Api<Lease> = Api::namespaced(client, "fairlead-system");
    let stale: Lease = serde_json::from_value(stale).unwrap();
    let result = api
        .replace("fairlead-operator", &PostParams::default(), &stale)
        .await;
    assert!(!conflict_is_false(result).unwrap(), "the stale write loses");
    assert_eq!(holder(&store).as_deref(), Some("c"));
}
