//! The address allocator: pure, deterministic, rebuilt every round from what
//! the Services' statuses say (plus the previous round's result for a status
//! not written yet), never from memory alone.
//!
//! Order of claims: first every Service keeps the address its status shows
//! (oldest Service first, so on a conflict the newer one loses), then
//! requested addresses, then automatic ones (the lowest free address of the
//! first matching pool by name). Two Services get one address only when both
//! carry the same sharing key and their ports do not overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use fairlead_crds::AddressRange;
use fairlead_crds::address_pool::offset;

/// A pool as the allocator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    /// The AddressPool's name.
    pub name: String,
    /// Its CIDRs and ranges, in order.
    pub ranges: Vec<AddressRange>,
    /// Hands out addresses to Services that ask for none.
    pub auto_assign: bool,
    /// Namespaces served; empty: all.
    pub namespaces: Vec<String>,
    /// Labels a Service must carry; empty: any.
    pub service_selector: BTreeMap<String, String>,
}

/// A port of a Service: number and protocol (`TCP`, `UDP`, `SCTP`).
pub type Port = (u16, String);

/// A Service of type LoadBalancer as the allocator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    /// `namespace/name`.
    pub key: String,
    /// The namespace.
    pub namespace: String,
    /// The Service's labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time (seconds since the epoch): older Services win conflicts.
    pub created: i64,
    /// IPv6 when the Service's first IP family is IPv6; `None`: either.
    pub ipv6: Option<bool>,
    /// The requested address, if any.
    pub requested: Option<IpAddr>,
    /// The pool named by annotation, if any.
    pub pool: Option<String>,
    /// The sharing key, if any.
    pub sharing_key: Option<String>,
    /// Its ports.
    pub ports: Vec<Port>,
    /// The address it holds now (its status, else the previous round's result).
    pub current: Option<IpAddr>,
}

/// An address given to a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The address.
    pub address: IpAddr,
    /// The pool it came from.
    pub pool: String,
}

/// Why a Service got no address: a CamelCase reason and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `PoolExhausted`, `AddressInUse`, `NoMatchingPool`, `PoolNotFound`, `NotInPool`.
    pub reason: &'static str,
    /// What happened and what to do.
    pub message: String,
}

/// The outcome for each Service, by key.
pub type Outcomes = BTreeMap<String, Result<Allocation, Refusal>>;

/// Allocates an address to each of `claims` from `pools`; see the module docs.
pub fn allocate(pools: &[Pool], claims: &[Claim]) -> Outcomes {
    let mut pools: Vec<&Pool> = pools.iter().collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    let mut order: Vec<&Claim> = claims.iter().collect();
    order.sort_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
    let mut table = Table::default();
    let mut outcomes = Outcomes::new();
    // 1. Keep what the statuses say, when it still fits.
    for claim in &order {
        let Some(current) = claim.current else {
            continue;
        };
        if claim.requested.is_some_and(|r| r != current) {
            continue;
        }
        if let Ok(pool) = pool_holding(&pools, claim, current)
            && table.fits(claim, current)
        {
            table.claim(claim, current);
            outcomes.insert(
                claim.key.clone(),
                Ok(Allocation {
                    address: current,
                    pool,
                }),
            );
        }
    }
    // 2. Requested addresses.
    for claim in &order {
        let Some(requested) = claim
            .requested
            .filter(|_| !outcomes.contains_key(&claim.key))
        else {
            continue;
        };
        let outcome = pool_holding(&pools, claim, requested).and_then(|pool| {
            if table.fits(claim, requested) {
                table.claim(claim, requested);
                Ok(Allocation {
                    address: requested,
                    pool,
                })
            } else {
                Err(Refusal {
                    reason: "AddressInUse",
                    message: format!(
                        "{requested} is taken by {}; to share it, give both Services the \
                         annotation {} with one value and ports that differ",
                        table.holders(requested).join(", "),
                        super::SHARING_ANNOTATION
                    ),
                })
            }
        });
        outcomes.insert(claim.key.clone(), outcome);
    }
    // 3. Automatic addresses.
    for claim in &order {
        if outcomes.contains_key(&claim.key) {
            continue;
        }
        let outcome = automatic(&pools, claim, &mut table);
        outcomes.insert(claim.key.clone(), outcome);
    }
    outcomes
}

/// Addresses allocated and free per pool (free saturates at `u64::MAX`).
pub fn usage(pools: &[Pool], outcomes: &Outcomes) -> BTreeMap<String, (u64, u64)> {
    let mut used: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
    for a in outcomes.values().flatten() {
        used.entry(a.pool.as_str()).or_default().insert(a.address);
    }
    (pools.iter())
        .map(|p| {
            let size: u128 = p.ranges.iter().map(AddressRange::len).sum();
            let n = used.get(p.name.as_str()).map_or(0, BTreeSet::len) as u128;
            let free = u64::try_from(size.saturating_sub(n)).unwrap_or(u64::MAX);
            (p.name.clone(), (n as u64, free))
        })
        .collect()
}

/// A holder of an address: Service key, sharing key, ports.
type Holder = (String, Option<String>, Vec<Port>);

/// Who holds each address.
#[derive(Default)]
struct Table {
    holders: BTreeMap<IpAddr, Vec<Holder>>,
}

impl Table {
    /// Whether `claim` may take `ip`: free, or shared by key with other ports.
    fn fits(&self, claim: &Claim, ip: IpAddr) -> bool {
        let Some(holders) = self.holders.get(&ip) else {
            return true;
        };
        claim.sharing_key.is_some()
            && holders.iter().all(|(_, key, ports)| {
                *key == claim.sharing_key && !ports.iter().any(|p| claim.ports.contains(p))
            })
    }

    fn claim(&mut self, claim: &Claim, ip: IpAddr) {
        self.holders.entry(ip).or_default().push((
            claim.key.clone(),
            claim.sharing_key.clone(),
            claim.ports.clone(),
        ));
    }

    fn holders(&self, ip: IpAddr) -> Vec<String> {
        (self.holders.get(&ip).into_iter().flatten())
            .map(|(key, _, _)| format!("Service {key}"))
            .collect()
    }
}

/// Whether `pool` serves `claim` (namespace, labels, annotation).
fn serves(pool: &Pool, claim: &Claim) -> bool {
    (pool.namespaces.is_empty() || pool.namespaces.contains(&claim.namespace))
        && (pool.service_selector.iter()).all(|(k, v)| claim.labels.get(k) == Some(v))
        && claim.pool.as_ref().is_none_or(|p| *p == pool.name)
}

/// The pool that holds `ip` and serves `claim`.
fn pool_holding(pools: &[&Pool], claim: &Claim, ip: IpAddr) -> Result<String, Refusal> {
    if let Some(name) = &claim.pool
        && !pools.iter().any(|p| p.name == *name)
    {
        return Err(pool_not_found(name));
    }
    (pools.iter())
        .find(|p| serves(p, claim) && p.ranges.iter().any(|r| r.contains(ip)))
        .map(|p| p.name.clone())
        .ok_or_else(|| Refusal {
            reason: "NotInPool",
            message: format!("{ip} is in no AddressPool that serves this Service"),
        })
}

fn pool_not_found(name: &str) -> Refusal {
    Refusal {
        reason: "PoolNotFound",
        message: format!("AddressPool {name:?} does not exist"),
    }
}

/// An address for a claim without a request: shared by key, else the lowest free.
fn automatic(pools: &[&Pool], claim: &Claim, table: &mut Table) -> Result<Allocation, Refusal> {
    if let Some(name) = &claim.pool
        && !pools.iter().any(|p| p.name == *name)
    {
        return Err(pool_not_found(name));
    }
    let family = |r: &AddressRange| claim.ipv6.is_none_or(|v6| r.first.is_ipv6() == v6);
    let eligible: Vec<&&Pool> = (pools.iter())
        .filter(|p| serves(p, claim) && (p.auto_assign || claim.pool.is_some()))
        .filter(|p| p.ranges.iter().any(family))
        .collect();
    if eligible.is_empty() {
        return Err(Refusal {
            reason: "NoMatchingPool",
            message: "no AddressPool serves this Service (namespace, labels, IP family, \
                      autoAssign)"
                .into(),
        });
    }
    if claim.sharing_key.is_some() {
        let shared = (table.holders.keys().copied()).find(|ip| {
            let held_by_key = table.holders[ip]
                .iter()
                .any(|(_, key, _)| *key == claim.sharing_key);
            held_by_key && table.fits(claim, *ip)
        });
        if let Some(ip) = shared
            && let Some(pool) =
                (eligible.iter()).find(|p| p.ranges.iter().any(|r| family(r) && r.contains(ip)))
        {
            table.claim(claim, ip);
            return Ok(Allocation {
                address: ip,
                pool: pool.name.clone(),
            });
        }
    }
    for pool in &eligible {
        for range in pool.ranges.iter().filter(|r| family(r)) {
            if let Some(ip) = lowest_free(range, table) {
                table.claim(claim, ip);
                return Ok(Allocation {
                    address: ip,
                    pool: pool.name.clone(),
                });
            }
        }
    }
    let names: Vec<&str> = eligible.iter().map(|p| p.name.as_str()).collect();
    Err(Refusal {
        reason: "PoolExhausted",
        message: format!(
            "every address of AddressPool {} is taken: add addresses or delete a Service",
            names.join(", ")
        ),
    })
}

/// The lowest address of `range` nobody holds; the loop is bounded by the
/// number of addresses held.
fn lowest_free(range: &AddressRange, table: &Table) -> Option<IpAddr> {
    let (first, last) = (offset(range.first), offset(range.last));
    let mut n = first;
    while n <= last {
        let ip = address(n, range.first.is_ipv6());
        if !table.holders.contains_key(&ip) {
            return Some(ip);
        }
        n = n.checked_add(1)?;
    }
    None
}

fn address(n: u128, ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

#[cfg(test)]
mod tests;
