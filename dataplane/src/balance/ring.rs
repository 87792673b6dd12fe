//! The consistent-hash ring behind `source` and `uri`: each server owns points
//! in proportion to its weight, and a key goes to the first eligible server
//! clockwise from its hash, so a server leaving moves only the keys it owned.

use std::fmt;
use std::net::IpAddr;

/// Ring points per unit of (gcd-reduced) weight.
const POINTS_PER_WEIGHT: u32 = 160;

/// Points sorted by position; each names the server (an index into the
/// list; a backend has at most 10,000 servers, so 32 bits: 8 bytes a point).
pub(super) struct Ring {
    points: Vec<(u32, u32)>,
}

/// One server to place on the ring.
pub(super) struct Member<'a> {
    /// Index in the server list.
    pub index: usize,
    /// Weight divided by the gcd of the tier's weights.
    pub weight: u32,
    /// Stable identity; the index when the server has none.
    pub id: Option<&'a str>,
}

impl Ring {
    pub(super) fn new(members: &[Member]) -> Ring {
        let total = members
            .iter()
            .map(|m| m.weight * POINTS_PER_WEIGHT)
            .sum::<u32>();
        let mut points = Vec::with_capacity(total as usize);
        for m in members {
            // Validation keeps backends far below 2^32 servers.
            let Ok(index) = u32::try_from(m.index) else {
                continue;
            };
            let index_id = (m.index as u64).to_le_bytes();
            let id = m.id.map_or(&index_id[..], str::as_bytes);
            for replica in 0..m.weight * POINTS_PER_WEIGHT {
                let position = hash(&[id, b"#", &replica.to_le_bytes()]);
                points.push((fold(position), index));
            }
        }
        // Ties between positions are broken by index so the order is total.
        points.sort_unstable();
        Ring { points }
    }

    /// The first server clockwise from `key` for which `eligible` holds.
    pub(super) fn find(&self, key: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.points.partition_point(|&(p, _)| p < fold(key));
        let (after, before) = self.points.split_at(start);
        before
            .iter()
            .chain(after)
            .map(|&(_, index)| index as usize)
            .find(|&i| eligible(i))
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ring({} points)", self.points.len())
    }
}

/// Hash of a client address; IPv4-mapped IPv6 hashes like the IPv4 address.
pub(super) fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => hash(&[&v4.octets()]),
        IpAddr::V6(v6) => hash(&[&v6.octets()]),
    }
}

/// Hash of a request path, ignoring any query string.
pub(super) fn hash_path(path: &str) -> u64 {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    hash(&[path.as_bytes()])
}

/// FNV-1a over the concatenated parts, then the murmur3 finalizer so that
/// short, similar inputs (addresses, replica numbers) spread over all bits.
/// Stable across runs, builds and platforms.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Ring positions are 32 bits: plenty for tens of thousands of points.
fn fold(h: u64) -> u32 {
    (h >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(weights: &[u32]) -> Ring {
        let members: Vec<Member> = weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Member {
                index,
                weight,
                id: None,
            })
            .collect();
        Ring::new(&members)
    }

    #[test]
    fn hash_is_stable_across_builds() {
        // Fixed values: a change here moves every client to another server.
        assert_eq!(hash(&[]), 0xefd0_1f60_ba99_2926);
        assert_eq!(hash_ip("10.0.0.1".parse().unwrap()), 0x251c_e681_282f_daa9);
        assert_eq!(hash_path("/a/b"), 0x38c7_bb2e_ec1e_b5c6);
        assert_eq!(hash(&[b"ab", b"c"]), hash(&[b"abc"]));
    }

    #[test]
    fn mapped_ipv6_hashes_like_ipv4() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(hash_ip(v4), hash_ip(mapped));
    }

    #[test]
    fn query_string_is_ignored() {
        assert_eq!(hash_path("/a/b?x=1"), hash_path("/a/b"));
        assert_ne!(hash_path("/a/b"), hash_path("/a/c"));
    }

    #[test]
    fn points_follow_weight() {
        let r = ring(&[1, 3]);
        let heavy = r.points.iter().filter(|p| p.1 == 1).count();
        assert_eq!(std::mem::size_of_val(&r.points[0]), 8);
        assert_eq!(r.points.len(), 4 * POINTS_PER_WEIGHT as usize);
        assert_eq!(heavy, 3 * POINTS_PER_WEIGHT as usize);
    }

    #[test]
    fn keys_spread_by_weight() {
        let r = ring(&[1, 1, 2]);
        let mut counts = [0u32; 3];
        for k in 0..4000u32 {
            let i = r.find(hash(&[&k.to_le_bytes()]), |_| true).unwrap();
            counts[i] += 1;
        }
        // Expected 1000 / 1000 / 2000; allow the ring's unevenness.
        assert!((750..1250).contains(&counts[0]), "{counts:?}");
        assert!((750..1250).contains(&counts[1]), "{counts:?}");
        assert!((1600..2400).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn wraps_and_finds_nothing_when_none_eligible() {
        let r = ring(&[1, 1]);
        assert_eq!(r.find(u64::MAX, |i| i == 0), Some(0));
        assert_eq!(r.find(u64::MAX, |i| i == 1), Some(1));
        assert_eq!(r.find(7, |_| false), None);
        assert_eq!(ring(&[]).find(7, |_| true), None);
    }
}
