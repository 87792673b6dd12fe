//! Virtual router IDs for the Services' virtual IPs: unique per interface,
//! never one a VirtualIP resource uses or another router was heard with.
//!
//! A virtual IP keeps the ID the dataplanes run for it when that is still
//! free; otherwise it probes from a hash of its name, oldest Service first.

use std::collections::{BTreeMap, BTreeSet};

/// One virtual IP to number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Router {
    /// The virtual IP's name.
    pub name: String,
    /// The interface (link) it runs on; `""`: the default interface.
    pub link: String,
    /// The ID the dataplanes run for it now, if any.
    pub running: Option<u8>,
}

/// The ID of each router in `routers` (in claim order), or `None` when the
/// link has no free ID; `reserved` IDs are never given.
pub fn assign(routers: &[Router], reserved: &BTreeSet<u8>) -> BTreeMap<String, Option<u8>> {
    let mut used: BTreeMap<&str, BTreeSet<u8>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let free = |used: &BTreeMap<&str, BTreeSet<u8>>, link: &str, id: u8| {
        id != 0 && !reserved.contains(&id) && !used.get(link).is_some_and(|u| u.contains(&id))
    };
    for r in routers {
        if let Some(id) = r.running.filter(|id| free(&used, &r.link, *id)) {
            used.entry(&r.link).or_default().insert(id);
            out.insert(r.name.clone(), Some(id));
        }
    }
    for r in routers {
        if out.contains_key(&r.name) {
            continue;
        }
        let start = (super::spread::score("vrid", &r.name) % 255) as u8;
        let id = (0..255u8)
            .map(|i| (start.wrapping_add(i) % 255) + 1)
            .find(|id| free(&used, &r.link, *id));
        if let Some(id) = id {
            used.entry(&r.link).or_default().insert(id);
        }
        out.insert(r.name.clone(), id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(name: &str, link: &str, running: Option<u8>) -> Router {
        Router {
            name: name.into(),
            link: link.into(),
            running,
        }
    }

    #[test]
    fn ids_never_collide_on_a_link_and_skip_reserved_ones() {
        let routers: Vec<Router> = (0..254)
            .map(|i| router(&format!("s{i}"), "", None))
            .collect();
        let reserved = [51].into();
        let ids = assign(&routers, &reserved);
        let given: BTreeSet<u8> = ids.values().map(|id| id.unwrap()).collect();
        assert_eq!(given.len(), 254);
        assert!(!given.contains(&51) && !given.contains(&0));
        // The link is full: one more gets none; another link has room.
        let mut more = routers.clone();
        more.push(router("extra", "", None));
        more.push(router("other", "eth1", None));
        let ids = assign(&more, &reserved);
        assert_eq!(ids["extra"], None);
        assert!(ids["other"].is_some());
    }

    #[test]
    fn running_ids_stay_unless_taken_or_reserved() {
        let routers = [
            router("a", "", Some(7)),
            router("b", "", Some(7)),
            router("c", "", Some(9)),
            router("d", "", None),
        ];
        let ids = assign(&routers, &[9].into());
        assert_eq!(ids["a"], Some(7));
        assert!(ids["b"].is_some_and(|id| id != 7 && id != 9));
        assert!(ids["c"].is_some_and(|id| id != 9));
        // Deterministic.
        assert_eq!(assign(&routers, &[9].into()), ids);
    }
}
