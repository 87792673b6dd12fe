//! Session and request rates for the stats page. HAProxy counts them over
//! the last second on the proxy's path; here the page measures them from
//! the totals between two reads at least a second apart, so the proxy
//! counts nothing more. The first read shows 0.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::snapshot::Snapshot;

/// Shortest time between two reads that gives a rate; closer reads show
/// the last rate measured.
const MIN_SPAN: Duration = Duration::from_secs(1);

/// The last totals seen, by object.
#[derive(Default)]
pub struct Rates {
    seen: HashMap<String, Meter>,
}

struct Meter {
    total: u64,
    at: Instant,
    rate: u64,
    max: u64,
}

/// A rate now and the highest measured, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    pub current: u64,
    pub max: u64,
}

/// Rates of one snapshot, in its order.
#[derive(Debug, Default)]
pub struct SnapshotRates {
    /// Per frontend: sessions, requests.
    pub frontends: Vec<(Rate, Rate)>,
    /// Per backend: sessions, and per server.
    pub backends: Vec<(Rate, Vec<Rate>)>,
}

impl Rates {
    /// Measures `snapshot`'s rates at `now`; forgets objects no longer there.
    pub fn observe(&mut self, snapshot: &Snapshot, now: Instant) -> SnapshotRates {
        let mut next = HashMap::with_capacity(self.seen.len());
        let mut meter = |key: String, total: u64| {
            let m = match self.seen.remove(&key) {
                Some(mut m) if total < m.total => {
                    // A counter restarted (a new object of the same name).
                    m.total = total;
                    m.at = now;
                    m
                }
                Some(mut m) => {
                    let span = now.saturating_duration_since(m.at);
                    if span >= MIN_SPAN {
                        let per_second = (total - m.total) as f64 / span.as_secs_f64();
                        m.rate = per_second.round() as u64;
                        m.max = m.max.max(m.rate);
                        m.total = total;
                        m.at = now;
                    }
                    m
                }
                None => Meter {
                    total,
                    at: now,
                    rate: 0,
                    max: 0,
                },
            };
            let rate = Rate {
                current: m.rate,
                max: m.max,
            };
            next.insert(key, m);
            rate
        };
        let frontends = (snapshot.frontends.iter())
            .map(|f| {
                (
                    meter(format!("f\0{}", f.name), f.traffic.sessions),
                    meter(format!("r\0{}", f.name), f.traffic.http_requests),
                )
            })
            .collect();
        let backends = (snapshot.backends.iter())
            .map(|b| {
                let own = meter(format!("b\0{}", b.name), b.counters.traffic.sessions);
                let servers = (b.servers.iter())
                    .map(|s| {
                        let key = format!("s\0{}\0{}", b.name, s.name);
                        meter(key, s.counters.traffic.sessions)
                    })
                    .collect();
                (own, servers)
            })
            .collect();
        self.seen = next;
        SnapshotRates {
            frontends,
            backends,
        }
    }
}
