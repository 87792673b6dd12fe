//! Spreading masters: each Service's virtual IP gets its own order of the
//! dataplane nodes (the first is master, the rest take over in turn), so that
//! different nodes are master for different addresses.
//!
//! Rendezvous hashing ranks the nodes for each virtual IP; a node takes at
//! most `ceil(vips / nodes)` masterships, virtual IPs claiming in name order.
//! The result depends only on the names, and a node joining or leaving moves
//! few masters: those the hash gives to the new node, those of the node that
//! left, and the few pushed over the bound.

use std::collections::BTreeMap;

/// The node order of each virtual IP: master first. `vips` and `nodes` are
/// names; nodes absent from `eligible[vip]` (when present) are left out of
/// that virtual IP's order.
pub fn spread(
    vips: &[String],
    nodes: &[String],
    eligible: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut vips: Vec<&String> = vips.iter().collect();
    vips.sort();
    vips.dedup();
    let mut nodes: Vec<&String> = nodes.iter().collect();
    nodes.sort();
    nodes.dedup();
    let bound = vips.len().div_ceil(nodes.len().max(1));
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for vip in vips {
        let allowed = eligible.get(vip);
        let mut ranked: Vec<&String> = (nodes.iter().copied())
            .filter(|n| allowed.is_none_or(|a| a.contains(n)))
            .collect();
        ranked.sort_by_key(|n| std::cmp::Reverse((score(vip, n), n.as_str())));
        let master = (ranked.iter())
            .position(|n| load.get(n.as_str()).copied().unwrap_or(0) < bound)
            .unwrap_or(0);
        if !ranked.is_empty() {
            let m = ranked.remove(master);
            *load.entry(m.as_str()).or_default() += 1;
            ranked.insert(0, m);
        }
        out.insert(vip.clone(), ranked.into_iter().cloned().collect());
    }
    out
}

/// The VRRP priority of the node at `rank` in a virtual IP's order: 250 for
/// the master, 2 less per rank, at least 1. A master whose frontends fail
/// (tracking weight -50 by default) falls below the next ranks.
pub fn priority(rank: usize) -> u8 {
    250u8
        .saturating_sub(u8::try_from(rank.saturating_mul(2)).unwrap_or(u8::MAX))
        .max(1)
}

/// A stable 64-bit hash of a pair (FNV-1a, then a SplitMix64 finalizer for
/// good spread); the same in every build and on every platform.
pub fn score(a: &str, b: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.bytes().chain([0]).chain(b.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn masters(s: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, String> {
        s.iter()
            .map(|(v, order)| (v.clone(), order[0].clone()))
            .collect()
    }

    fn counts(s: &BTreeMap<String, Vec<String>>) -> Vec<usize> {
        let mut c: BTreeMap<&str, usize> = BTreeMap::new();
        for order in s.values() {
            *c.entry(order[0].as_str()).or_default() += 1;
        }
        c.into_values().collect()
    }

    #[test]
    fn masters_are_balanced_and_every_node_is_in_every_order() {
        let vips = names("default/svc-", 100);
        let nodes = names("node-", 3);
        let s = spread(&vips, &nodes, &BTreeMap::new());
        let mut c = counts(&s);
        c.sort();
        assert_eq!(c, [33, 33, 34]);
        for order in s.values() {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, nodes);
        }
        // Backups are spread too: each node is second for about a third.
        let mut second: BTreeMap<&str, usize> = BTreeMap::new();
        for order in s.values() {
            *second.entry(order[1].as_str()).or_default() += 1;
        }
        assert!(second.values().all(|n| (20..=47).contains(n)), "{second:?}");
    }

    #[test]
    fn deterministic_whatever_the_input_order() {
        let mut vips = names("ns/s", 40);
        let mut nodes = names("n", 4);
        let a = spread(&vips, &nodes, &BTreeMap::new());
        vips.reverse();
        nodes.reverse();
        assert_eq!(spread(&vips, &nodes, &BTreeMap::new()), a);
    }

    #[test]
    fn few_masters_move_when_a_node_joins_or_leaves() {
        let vips = names("default/svc-", 100);
        let three = names("node-", 3);
        let four = names("node-", 4);
        let before = masters(&spread(&vips, &three, &BTreeMap::new()));
        let after = masters(&spread(&vips, &four, &BTreeMap::new()));
        let moved = before.iter().filter(|(v, m)| after[*v] != **m).count();
        // 25 must move to balance four nodes.
        assert!((25..=30).contains(&moved), "{moved} moved on a join");
        assert!(
            counts(&spread(&vips, &four, &BTreeMap::new()))
                .iter()
                .all(|c| *c == 25)
        );
        // node-1 leaves: its masters move, no other does.
        let two = vec!["node-0".to_string(), "node-2".to_string()];
        let left = masters(&spread(&vips, &two, &BTreeMap::new()));
        let others_moved = (before.iter())
            .filter(|(v, m)| *m != "node-1" && left[*v] != **m)
            .count();
        assert_eq!(others_moved, 0, "moved that need not");
    }

    #[test]
    fn eligible_nodes_limit_an_order() {
        let vips = names("a/", 2);
        let nodes = names("n", 3);
        let eligible = [("a/0".to_string(), vec!["n2".to_string()])].into();
        let s = spread(&vips, &nodes, &eligible);
        assert_eq!(s["a/0"], ["n2"]);
        assert_eq!(s["a/1"].len(), 3);
        assert!(spread(&vips, &[], &BTreeMap::new())["a/0"].is_empty());
    }

    #[test]
    fn priorities_fall_by_rank() {
        assert_eq!(
            (priority(0), priority(1), priority(124), priority(500)),
            (250, 248, 2, 1)
        );
    }
}
