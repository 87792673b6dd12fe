//! The operator's Prometheus metrics and its plain-HTTP endpoint:
//! `/metrics`, `/healthz` (the process serves) and `/readyz` (see [`Readiness`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tokio::net::TcpListener;

use crate::{Error, Result};

/// Buckets in seconds, from 1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `state` label of `fairlead_operator_dataplanes`.
pub const DATAPLANE_STATES: [&str; 4] = ["applied", "pending", "rejected", "failed"];

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounter,
    errors: IntCounterVec,
    reconcile_duration: Histogram,
    push_duration: HistogramVec,
    dataplane_push_duration: HistogramVec,
    dataplanes: IntGaugeVec,
    leader: IntGauge,
    pool_addresses: IntGaugeVec,
    services_served: IntGauge,
    allocation_failures: IntCounterVec,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let reconciles = IntCounter::new(
            "fairlead_operator_reconciles_total",
            "Render-and-push rounds run.",
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "fairlead_operator_reconcile_errors_total",
                "Errors, by kind (watch, status, push).",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "fairlead_operator_reconcile_duration_seconds",
                "Time of one render-and-push round, without waiting for the dataplanes.",
            )
            .buckets(BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let push_duration = HistogramVec::new(
            HistogramOpts::new(
                "fairlead_operator_push_duration_seconds",
                "Time of one config push to one dataplane, by result (applied, rejected, stale, error).",
            )
            .buckets(BUCKETS.to_vec()),
            &["result"],
        )
        .expect("valid metric");
        let dataplane_push_duration = HistogramVec::new(
            HistogramOpts::new(
                "fairlead_operator_dataplane_push_duration_seconds",
                "Time of one config push, by dataplane Pod (series of Pods gone are removed).",
            )
            .buckets(BUCKETS.to_vec()),
            &["dataplane"],
        )
        .expect("valid metric");
        let dataplanes = IntGaugeVec::new(
            Opts::new(
                "fairlead_operator_dataplanes",
                "Dataplanes pushed to, by state (applied, pending, rejected, failed).",
            ),
            &["state"],
        )
        .expect("valid metric");
        for state in DATAPLANE_STATES {
            dataplanes.with_label_values(&[state]).set(0);
        }
        let leader = IntGauge::new(
            "fairlead_operator_leader",
            "1 while this replica holds the leader Lease.",
        )
        .expect("valid metric");
        let pool_addresses = IntGaugeVec::new(
            Opts::new(
                "fairlead_operator_pool_addresses",
                "Addresses of each AddressPool, by state (allocated, free; free saturates at 2^63-1).",
            ),
            &["pool", "state"],
        )
        .expect("valid metric");
        let services_served = IntGauge::new(
            "fairlead_operator_load_balancer_services",
            "Services of type LoadBalancer served with an address.",
        )
        .expect("valid metric");
        let allocation_failures = IntCounterVec::new(
            Opts::new(
                "fairlead_operator_allocation_failures_total",
                "Times a Service of type LoadBalancer went without an address or unserved, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for m in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(pool_addresses.clone()),
            Box::new(services_served.clone()),
            Box::new(allocation_failures.clone()),
            Box::new(errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(push_duration.clone()),
            Box::new(dataplane_push_duration.clone()),
            Box::new(dataplanes.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        Metrics {
            registry,
            reconciles,
            errors,
            reconcile_duration,
            push_duration,
            dataplane_push_duration,
            dataplanes,
            leader,
            pool_addresses,
            services_served,
            allocation_failures,
        }
    }

    /// Sets the pools' usage, (allocated, free) by pool name; pools gone are dropped.
    pub fn set_pools(&self, pools: &std::collections::BTreeMap<String, (u64, u64)>) {
        self.pool_addresses.reset();
        for (pool, (allocated, free)) in pools {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            (self
                .pool_addresses
                .with_label_values(&[pool.as_str(), "allocated"]))
            .set(gauge(*allocated));
            (self
                .pool_addresses
                .with_label_values(&[pool.as_str(), "free"]))
            .set(gauge(*free));
        }
    }

    /// Sets how many Services of type LoadBalancer are served.
    pub fn set_services_served(&self, n: usize) {
        self.services_served
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a Service that went without an address or unserved, by reason.
    pub fn allocation_failure(&self, reason: &str) {
        self.allocation_failures.with_label_values(&[reason]).inc();
    }

    /// Counts one round and its duration.
    pub fn observe_reconcile(&self, took: Duration) {
        self.reconciles.inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Counts an error of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    /// Records one push and its result.
    pub fn observe_push(&self, result: &str, took: Duration) {
        (self.push_duration.with_label_values(&[result])).observe(took.as_secs_f64());
    }

    /// Records one push to dataplane Pod `pod`.
    pub fn observe_dataplane_push(&self, pod: &str, took: Duration) {
        (self.dataplane_push_duration.with_label_values(&[pod])).observe(took.as_secs_f64());
    }

    /// Drops the push latency series of a dataplane Pod that is gone.
    pub fn forget_dataplane(&self, pod: &str) {
        let _ = self.dataplane_push_duration.remove_label_values(&[pod]);
    }

    /// Sets how many dataplanes are in each of [`DATAPLANE_STATES`], in its order.
    pub fn set_dataplanes(&self, counts: [usize; 4]) {
        for (state, n) in DATAPLANE_STATES.into_iter().zip(counts) {
            (self.dataplanes.with_label_values(&[state])).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        (TextEncoder::new().encode_to_string(&self.registry.gather()))
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What `/readyz` answers: ready once this replica has reached the API
/// server as leader (its caches are synced and it has rendered once) or as
/// standby (it has read the Lease).
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
}

impl Readiness {
    /// Sets readiness.
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether ready.
    pub fn get(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// Binds `address`; the serving future answers until dropped.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> Result<impl Future<Output = ()>> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| Error::Io {
            what: format!("binding the metrics address {address}"),
            source,
        })?;
    Ok(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (metrics, readiness) = (metrics.clone(), readiness.clone());
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let answer = answer(request.uri().path(), &metrics, &readiness);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
            });
        }
    })
}

fn answer(path: &str, metrics: &Metrics, readiness: &Readiness) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, metrics.encode()),
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" if readiness.get() => (StatusCode::OK, "ready\n".to_string()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_by_name() {
        let m = Metrics::new();
        m.observe_reconcile(Duration::from_millis(3));
        m.error("status");
        m.observe_push("applied", Duration::from_millis(2));
        m.set_pools(&[("default".to_string(), (3, 13))].into());
        m.set_services_served(3);
        m.allocation_failure("PoolExhausted");
        let text = m.encode();
        for line in [
            "fairlead_operator_pool_addresses{pool=\"default\",state=\"allocated\"} 3",
            "fairlead_operator_pool_addresses{pool=\"default\",state=\"free\"} 13",
            "fairlead_operator_load_balancer_services 3",
            "fairlead_operator_allocation_failures_total{reason=\"PoolExhausted\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing: {text}");
        }
        assert!(
            text.contains("fairlead_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("fairlead_operator_reconcile_errors_total{kind=\"status\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fairlead_operator_push_duration_seconds_count{result=\"applied\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn push_latency_by_dataplane_and_dataplanes_by_state() {
        let m = Metrics::new();
        let text = m.encode();
        for state in DATAPLANE_STATES {
            let line = format!("fairlead_operator_dataplanes{{state=\"{state}\"}} 0");
            assert!(text.contains(&line), "{line} missing: {text}");
        }
        m.observe_dataplane_push("dataplane-a", Duration::from_millis(3));
        m.observe_dataplane_push("dataplane-a", Duration::from_millis(30));
        m.observe_dataplane_push("dataplane-b", Duration::from_millis(300));
        m.set_dataplanes([2, 0, 1, 0]);
        let text = m.encode();
        for line in [
            "fairlead_operator_dataplane_push_duration_seconds_count{dataplane=\"dataplane-a\"} 2",
            "fairlead_operator_dataplane_push_duration_seconds_bucket{dataplane=\"dataplane-a\",le=\"0.005\"} 1",
            "fairlead_operator_dataplane_push_duration_seconds_bucket{dataplane=\"dataplane-b\",le=\"0.25\"} 0",
            "fairlead_operator_dataplane_push_duration_seconds_bucket{dataplane=\"dataplane-b\",le=\"0.5\"} 1",
            "fairlead_operator_dataplanes{state=\"applied\"} 2",
            "fairlead_operator_dataplanes{state=\"rejected\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing: {text}");
        }
        m.forget_dataplane("dataplane-a");
        let text = m.encode();
        assert!(!text.contains("dataplane=\"dataplane-a\""), "{text}");
        assert!(text.contains("dataplane=\"dataplane-b\""), "{text}");
    }

    #[test]
    fn readyz_follows_readiness() {
        let (m, r) = (Metrics::new(), Readiness::default());
        assert_eq!(
            answer("/readyz", &m, &r).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        r.set(true);
        assert_eq!(answer("/readyz", &m, &r).status(), StatusCode::OK);
        assert_eq!(answer("/healthz", &m, &r).status(), StatusCode::OK);
    }
}
