use std::net::{IpAddr, Ipv4Addr};

use super::*;

const ALL: [Balance; 6] = [
    Balance::Roundrobin,
    Balance::Leastconn,
    Balance::Source,
    Balance::Uri,
    Balance::Random,
    Balance::First,
];

#[derive(Clone)]
struct Srv {
    name: String,
    weight: u32,
    backup: bool,
    up: bool,
    active: u32,
    max: u32,
}

impl Candidate for Srv {
    fn weight(&self) -> u32 {
        self.weight
    }
    fn is_backup(&self) -> bool {
        self.backup
    }
    fn is_up(&self) -> bool {
        self.up
    }
    fn active(&self) -> u32 {
        self.active
    }
    fn max_connections(&self) -> u32 {
        self.max
    }
    fn hash_id(&self) -> Option<&str> {
        Some(&self.name)
    }
}

fn srv(name: &str, weight: u32) -> Srv {
    Srv {
        name: name.into(),
        weight,
        backup: false,
        up: true,
        active: 0,
        max: 0,
    }
}

fn backup(name: &str) -> Srv {
    Srv {
        backup: true,
        ..srv(name, 1)
    }
}

fn servers(weights: &[u32]) -> Vec<Srv> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| srv(&format!("s{i}"), w))
        .collect()
}

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
}

fn key(n: u32) -> SelectKey<'static> {
    SelectKey {
        client_ip: ip(n),
        path: None,
    }
}

fn pick(sel: &Selector, list: &[Srv]) -> Option<usize> {
    sel.select(&key(1), list, &|_| false)
}

/// How often each server is picked in `n` selections with unchanged load.
fn counts(sel: &Selector, list: &[Srv], n: usize) -> Vec<usize> {
    let mut c = vec![0; list.len()];
    for _ in 0..n {
        c[pick(sel, list).unwrap()] += 1;
    }
    c
}

#[test]
fn selector_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Selector>();
}

#[test]
fn empty_list_and_nothing_eligible_give_none() {
    let mut down = servers(&[1, 2]);
    down.iter_mut().for_each(|s| s.up = false);
    let mut full = servers(&[1, 2]);
    full.iter_mut().for_each(|s| (s.max, s.active) = (3, 3));
    for balance in ALL {
        assert_eq!(
            pick(&Selector::new(balance, &[] as &[Srv]), &[] as &[Srv]),
            None
        );
        assert_eq!(
            pick(&Selector::new(balance, &down), &down),
            None,
            "{balance:?}"
        );
        assert_eq!(
            pick(&Selector::new(balance, &full), &full),
            None,
            "{balance:?}"
        );
        let up = servers(&[1, 2]);
        let sel = Selector::new(balance, &up);
        assert_eq!(sel.select(&key(1), &up, &|_| true), None, "{balance:?}");
        // A list shorter than the one the selector was built from must not panic.
        assert_eq!(pick(&sel, &up[..0]), None, "{balance:?}");
        assert_eq!(pick(&sel, &up[..1]), Some(0), "{balance:?}");
    }
}

#[test]
fn skip_excludes_tried_servers() {
    let list = servers(&[1, 1, 1]);
    for balance in ALL {
        let sel = Selector::with_seed(balance, &list, 7);
        for n in 0..50 {
            let got = sel.select(&key(n), &list, &|i| i != 2);
            assert_eq!(got, Some(2), "{balance:?}");
            let got = sel.select(&key(n), &list, &|i| i == 0).unwrap();
            assert_ne!(got, 0, "{balance:?}");
        }
    }
}

#[test]
fn backups_only_when_no_active_is_eligible() {
    for balance in ALL {
        let mut list = vec![srv("a", 1), backup("b1"), srv("c", 1), backup("b2")];
        let sel = Selector::with_seed(balance, &list, 1);
        for n in 0..20 {
            let got = sel.select(&key(n), &list, &|_| false).unwrap();
            assert!(!list[got].backup, "{balance:?}");
        }
        list[0].up = false;
        (list[2].max, list[2].active) = (1, 1);
        let mut used = [0; 4];
        for n in 0..40 {
            used[sel.select(&key(n), &list, &|_| false).unwrap()] += 1;
        }
        assert_eq!(used[0] + used[2], 0, "{balance:?}");
        assert_eq!(used[1] + used[3], 40, "{balance:?}");
        if matches!(
            balance,
            Balance::Roundrobin | Balance::Leastconn | Balance::Source
        ) {
            assert!(
                used[1] > 0 && used[3] > 0,
                "backups share: {balance:?} {used:?}"
            );
        }
    }
}

#[test]
fn roundrobin_follows_weights_exactly() {
    let list = servers(&[3, 1, 2]);
    let sel = Selector::new(Balance::Roundrobin, &list);
    assert_eq!(counts(&sel, &list, 600), [300, 100, 200]);
}

#[test]
fn roundrobin_is_smooth() {
    let list = servers(&[3, 1]);
    let sel = Selector::new(Balance::Roundrobin, &list);
    let seq: Vec<usize> = (0..8).map(|_| pick(&sel, &list).unwrap()).collect();
    assert_eq!(seq, [0, 0, 1, 0, 0, 0, 1, 0]);
    // Large equal weights reduce to a plain rotation.
    let list = servers(&[100, 100, 100]);
    let sel = Selector::new(Balance::Roundrobin, &list);
    let seq: Vec<usize> = (0..6).map(|_| pick(&sel, &list).unwrap()).collect();
    assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn roundrobin_spreads_a_down_servers_turns() {
    let mut list = servers(&[1, 1, 1]);
    list[2].up = false;
    let sel = Selector::new(Balance::Roundrobin, &list);
    assert_eq!(counts(&sel, &list, 100), [50, 50, 0]);
}

#[test]
fn leastconn_picks_least_loaded_relative_to_weight() {
    let mut list = servers(&[1, 1, 1]);
    (list[0].active, list[1].active, list[2].active) = (5, 2, 7);
    let sel = Selector::new(Balance::Leastconn, &list);
    assert_eq!(counts(&sel, &list, 10), [0, 10, 0]);

    // 3 active on weight 4 is lighter than 1 active on weight 1.
    let mut list = servers(&[4, 1]);
    (list[0].active, list[1].active) = (3, 1);
    let sel = Selector::new(Balance::Leastconn, &list);
    assert_eq!(pick(&sel, &list), Some(0));
}

#[test]
fn leastconn_shares_ties() {
    let list = servers(&[1, 1, 1]);
    let sel = Selector::new(Balance::Leastconn, &list);
    assert_eq!(counts(&sel, &list, 300), [100, 100, 100]);
}

#[test]
fn leastconn_fills_by_weight_as_connections_stay_open() {
    let mut list = servers(&[3, 1]);
    let sel = Selector::new(Balance::Leastconn, &list);
    for _ in 0..40 {
        let i = pick(&sel, &list).unwrap();
        list[i].active += 1;
    }
    assert_eq!((list[0].active, list[1].active), (30, 10));
}

/// Server name per key for 1000 client addresses.
fn owners(sel: &Selector, list: &[Srv]) -> Vec<String> {
    (0..1000)
        .map(|n| {
            list[sel.select(&key(n), list, &|_| false).unwrap()]
                .name
                .clone()
        })
        .collect()
}

#[test]
fn source_is_stable_and_spreads() {
    let list = servers(&[1, 1, 1, 1]);
    let sel = Selector::new(Balance::Source, &list);
    let first = owners(&sel, &list);
    assert_eq!(first, owners(&sel, &list));
    assert_eq!(first, owners(&Selector::new(Balance::Source, &list), &list));
    for s in &list {
        let share = first.iter().filter(|o| **o == s.name).count();
        assert!((150..350).contains(&share), "{}: {share}", s.name);
    }
}

#[test]
fn source_moves_only_the_keys_of_a_down_server() {
    let mut list = servers(&[1, 1, 1, 1]);
    let sel = Selector::new(Balance::Source, &list);
    let before = owners(&sel, &list);
    list[2].up = false;
    let after = owners(&sel, &list);
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if b == "s2" {
            assert_ne!(a, "s2");
            moved += 1;
        } else {
            assert_eq!(a, b);
        }
    }
    assert!((150..350).contains(&moved), "moved {moved}");
}

#[test]
fn source_moves_only_the_keys_of_a_removed_server() {
    let list = servers(&[1, 1, 1, 1]);
    let before = owners(&Selector::new(Balance::Source, &list), &list);
    let mut smaller = list.clone();
    smaller.remove(1);
    let after = owners(&Selector::new(Balance::Source, &smaller), &smaller);
    for (b, a) in before.iter().zip(&after) {
        if b != "s1" {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn source_respects_weights() {
    let list = servers(&[1, 3]);
    let owners = owners(&Selector::new(Balance::Source, &list), &list);
    let heavy = owners.iter().filter(|o| *o == "s1").count();
    assert!((650..850).contains(&heavy), "{heavy}");
}

#[test]
fn uri_hashes_the_path_without_query() {
    let list = servers(&[1, 1, 1, 1]);
    let sel = Selector::new(Balance::Uri, &list);
    let at = |path: &str, n: u32| {
        let key = SelectKey {
            client_ip: ip(n),
            path: Some(path),
        };
        sel.select(&key, &list, &|_| false).unwrap()
    };
    let mut seen = [false; 4];
    for p in 0..100 {
        let path = format!("/item/{p}");
        let owner = at(&path, 0);
        seen[owner] = true;
        // Same path from any client and with any query: same server.
        for n in 1..5 {
            assert_eq!(at(&path, n), owner);
        }
        assert_eq!(at(&format!("{path}?v={p}"), 9), owner);
    }
    assert_eq!(seen, [true; 4]);
}

#[test]
fn uri_without_path_falls_back_to_the_client_address() {
    let list = servers(&[1, 1, 1, 1]);
    let by_uri = owners(&Selector::new(Balance::Uri, &list), &list);
    let by_source = owners(&Selector::new(Balance::Source, &list), &list);
    assert_eq!(by_uri, by_source);
}

#[test]
fn random_is_deterministic_with_a_seed_and_spreads() {
    let list = servers(&[1, 1, 1, 1]);
    let run = |seed| {
        let sel = Selector::with_seed(Balance::Random, &list, seed);
        (0..400)
            .map(|_| pick(&sel, &list).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    let sel = Selector::with_seed(Balance::Random, &list, 42);
    for c in counts(&sel, &list, 4000) {
        assert!((800..1200).contains(&c), "{c}");
    }
}

#[test]
fn random_avoids_the_loaded_server() {
    let mut list = servers(&[1, 1, 1]);
    list[1].active = 50;
    let sel = Selector::with_seed(Balance::Random, &list, 3);
    let c = counts(&sel, &list, 300);
    // Two distinct choices: the loaded server always loses to the other one.
    assert_eq!(c[1], 0);
    assert!(c[0] > 100 && c[2] > 100, "{c:?}");
}

#[test]
fn random_favours_weight() {
    let list = servers(&[1, 1, 1, 5]);
    let sel = Selector::with_seed(Balance::Random, &list, 9);
    let c = counts(&sel, &list, 800);
    assert!(c[3] > c[0] + c[1] + c[2], "{c:?}");
}

#[test]
fn first_fills_servers_in_order() {
    let mut list = servers(&[1, 1, 1]);
    list.iter_mut().for_each(|s| s.max = 2);
    let sel = Selector::new(Balance::First, &list);
    let mut seq = Vec::new();
    while let Some(i) = pick(&sel, &list) {
        list[i].active += 1;
        seq.push(i);
    }
    assert_eq!(seq, [0, 0, 1, 1, 2, 2]);
    list[0].active -= 1;
    assert_eq!(pick(&sel, &list), Some(0));
}
