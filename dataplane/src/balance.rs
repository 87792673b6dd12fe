//! Server selection: haproxy's `balance` algorithms as pure functions of the
//! server list and its live load. A [`Selector`] is built once per config apply
//! and shared by every thread; selecting takes no lock.
//!
//! Active (non-backup) servers are used whenever one is eligible; backup
//! servers only when none is, balanced among themselves the same way.

mod ring;
mod schedule;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::Balance;
use ring::{Member, Ring};
use schedule::{smooth_cycle, weight_gcd};

/// What the algorithms see of a server at selection time (the engine's live server state implements it).
pub trait Candidate {
    fn weight(&self) -> u32;
    fn is_backup(&self) -> bool;
    /// Up and accepting (health checks may mark a server down).
    fn is_up(&self) -> bool;
    /// Connections (tcp) or in-flight requests (http) now.
    fn active(&self) -> u32;
    /// 0 means unlimited.
    fn max_connections(&self) -> u32;
    /// Stable identity (e.g. the server's name) that places it on the
    /// consistent-hash ring of `source` and `uri`. Without one the position in
    /// the list is used, so removing a server from the config also moves the
    /// keys of the servers listed after it.
    fn hash_id(&self) -> Option<&str> {
        None
    }
}

/// Request facts some algorithms hash.
pub struct SelectKey<'a> {
    pub client_ip: IpAddr,
    pub path: Option<&'a str>,
}

/// One backend's server selector; built once per config apply from the
/// server list (order and weights), then shared by all threads.
pub struct Selector {
    balance: Balance,
    active: Tier,
    backup: Tier,
    /// Seed stream for `random` when built with a seed; else thread-local randomness.
    seed: Option<AtomicU64>,
}

/// The active or the backup servers, with what their algorithm precomputed.
struct Tier {
    /// Indices into the server list, in list order.
    members: Vec<usize>,
    /// Round-robin position (`roundrobin`) or tie-break offset (`leastconn`).
    cursor: AtomicUsize,
    plan: Plan,
}

enum Plan {
    /// `leastconn`, `random`, `first`: decided from live load alone.
    Live,
    /// `roundrobin`: one cycle of server indices.
    Schedule(Vec<usize>),
    /// `source`, `uri`.
    Ring(Ring),
}

impl Selector {
    pub fn new(balance: Balance, servers: &[impl Candidate]) -> Selector {
        Selector::build(balance, servers, None)
    }

    /// Like new, with a fixed seed for `random`, for deterministic tests.
    pub fn with_seed(balance: Balance, servers: &[impl Candidate], seed: u64) -> Selector {
        Selector::build(balance, servers, Some(AtomicU64::new(seed)))
    }

    fn build(balance: Balance, servers: &[impl Candidate], seed: Option<AtomicU64>) -> Selector {
        Selector {
            balance,
            active: Tier::new(balance, servers, false),
            backup: Tier::new(balance, servers, true),
            seed,
        }
    }

    /// Index of the server to use, or None when no server can take it.
    /// `skip(i)` excludes servers already tried for this request (retries/redispatch).
    pub fn select<C: Candidate>(
        &self,
        key: &SelectKey,
        servers: &[C],
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let eligible = |i: usize| servers.get(i).is_some_and(|s| !skip(i) && has_room(s));
        self.pick(&self.active, key, servers, &eligible)
            .or_else(|| self.pick(&self.backup, key, servers, &eligible))
    }

    fn pick<C: Candidate>(
        &self,
        tier: &Tier,
        key: &SelectKey,
        servers: &[C],
        eligible: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        // Cheap exit so that a tier with nothing eligible costs no schedule or ring walk.
        let first = tier.members.iter().copied().find(|&i| eligible(i))?;
        let picked = match (&tier.plan, self.balance) {
            (Plan::Schedule(cycle), _) => round_robin(cycle, &tier.cursor, eligible),
            (Plan::Ring(ring), Balance::Uri) => match key.path {
                Some(path) => ring.find(ring::hash_path(path), eligible),
                None => ring.find(ring::hash_ip(key.client_ip), eligible),
            },
            (Plan::Ring(ring), _) => ring.find(ring::hash_ip(key.client_ip), eligible),
            (Plan::Live, Balance::Leastconn) => least_loaded(tier, servers, eligible),
            (Plan::Live, Balance::Random) => self.two_choices(tier, servers, eligible),
            (Plan::Live, _) => Some(first),
        };
        // Load can change under us between the check and the walk; fall back
        // to the first eligible server rather than fail the request.
        picked.or(Some(first))
    }

    /// Power of two choices: two distinct servers drawn by weight, the less loaded wins.
    fn two_choices<C: Candidate>(
        &self,
        tier: &Tier,
        servers: &[C],
        eligible: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let mut rng = match &self.seed {
            Some(stream) => {
                fastrand::Rng::with_seed(stream.fetch_add(SEED_STEP, Ordering::Relaxed))
            }
            None => fastrand::Rng::new(),
        };
        let a = weighted_draw(&mut rng, tier, servers, eligible)?;
        let Some(b) = weighted_draw(&mut rng, tier, servers, &|i| i != a && eligible(i)) else {
            return Some(a);
        };
        Some(if lighter(&servers[b], &servers[a]) {
            b
        } else {
            a
        })
    }
}

impl Tier {
    fn new(balance: Balance, servers: &[impl Candidate], backup: bool) -> Tier {
        let members: Vec<usize> = (0..servers.len())
            .filter(|&i| servers[i].is_backup() == backup)
            .collect();
        let gcd = weight_gcd(members.iter().map(|&i| weight(&servers[i])));
        let reduced = |i: usize| weight(&servers[i]) / gcd;
        let plan = match balance {
            Balance::Roundrobin => {
                let weighted: Vec<(usize, u32)> =
                    members.iter().map(|&i| (i, reduced(i))).collect();
                Plan::Schedule(smooth_cycle(&weighted))
            }
            Balance::Source | Balance::Uri => {
                let ring_members: Vec<Member> = members
                    .iter()
                    .map(|&i| Member {
                        index: i,
                        weight: reduced(i),
                        id: servers[i].hash_id(),
                    })
                    .collect();
                Plan::Ring(Ring::new(&ring_members))
            }
            Balance::Leastconn | Balance::Random | Balance::First => Plan::Live,
        };
        Tier {
            members,
            cursor: AtomicUsize::new(0),
            plan,
        }
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("balance", &self.balance)
            .field("active", &self.active.members)
            .field("backup", &self.backup.members)
            .finish_non_exhaustive()
    }
}

/// Spacing of the seeds drawn from a fixed seed (the golden ratio, as in splitmix64).
const SEED_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// Weight, never 0 (config validation allows 1-256; stay safe anyway).
fn weight(server: &impl Candidate) -> u32 {
    server.weight().max(1)
}

fn has_room(server: &impl Candidate) -> bool {
    let max = server.max_connections();
    server.is_up() && (max == 0 || server.active() < max)
}

/// Whether `a` would be less loaded than `b` after taking one more
/// connection: (active + 1) / weight, compared without division.
fn lighter(a: &impl Candidate, b: &impl Candidate) -> bool {
    let projected = |s: u32| u64::from(s) + 1;
    projected(a.active()) * u64::from(weight(b)) < projected(b.active()) * u64::from(weight(a))
}

/// Walks the shared cycle: each try takes the next slot, so an ineligible
/// server's turns are spread over the others instead of going to its successor.
fn round_robin(
    cycle: &[usize],
    cursor: &AtomicUsize,
    eligible: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    (0..cycle.len())
        .map(|_| cycle[cursor.fetch_add(1, Ordering::Relaxed) % cycle.len()])
        .find(|&i| eligible(i))
}

/// The eligible server with the lowest load; ties go to the first found from
/// a rotating start, so equally loaded servers share the work.
fn least_loaded<C: Candidate>(
    tier: &Tier,
    servers: &[C],
    eligible: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let n = tier.members.len();
    let start = tier.cursor.fetch_add(1, Ordering::Relaxed) % n;
    let rotated = tier.members[start..].iter().chain(&tier.members[..start]);
    rotated.copied().filter(|&i| eligible(i)).reduce(|best, i| {
        if lighter(&servers[i], &servers[best]) {
            i
        } else {
            best
        }
    })
}

/// One eligible server drawn with probability proportional to its weight.
fn weighted_draw<C: Candidate>(
    rng: &mut fastrand::Rng,
    tier: &Tier,
    servers: &[C],
    eligible: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let pool = || tier.members.iter().copied().filter(|&i| eligible(i));
    let total: u64 = pool().map(|i| u64::from(weight(&servers[i]))).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = rng.u64(..total);
    pool().find(|&i| {
        let w = u64::from(weight(&servers[i]));
        if ticket < w {
            true
        } else {
            ticket -= w;
            false
        }
    })
}

#[cfg(test)]
mod tests;
