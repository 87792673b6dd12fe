//! The receive checks of RFC 9568 §7.1 (RFC 3768 §7.1 for v2): a datagram
//! either becomes an [`Event`] or is dropped and counted.

use std::net::IpAddr;

use super::{Counters, SpeakerConfig};
use crate::machine::Event;
use crate::net::socket::{Received, TTL};
use crate::packet::{Advertisement, Version, multicast_group};
use crate::{Error, machine::OWNER_PRIORITY};

/// The event a received datagram means for this router, if any; `None` for
/// one whose IP header was malformed. Public for the fuzz target only.
#[doc(hidden)]
pub fn check(
    received: Option<Received<'_>>,
    config: &SpeakerConfig,
    primary: IpAddr,
    counters: &mut Counters,
) -> Option<Event> {
    counters.received += 1;
    let Some(header) = received else {
        counters.dropped_malformed += 1;
        return None;
    };
    let payload = header.payload;
    if header.source == primary {
        // Our own advertisement, looped back: not a peer's.
        counters.received -= 1;
        return None;
    }
    if u32::from(header.hop_limit) != TTL {
        counters.dropped_ttl += 1;
        return None;
    }
    let expected_peer = if config.unicast_peers.is_empty() {
        header.destination == multicast_group(primary)
    } else {
        config.unicast_peers.contains(&header.source)
    };
    if !expected_peer {
        counters.dropped_peer += 1;
        return None;
    }
    let advert = match Advertisement::decode(payload, header.source, header.destination) {
        Ok(advert) => advert,
        Err(Error::Version(_)) => {
            counters.dropped_version += 1;
            return None;
        }
        Err(_) => {
            counters.dropped_malformed += 1;
            return None;
        }
    };
    if advert.vrid != config.vrid {
        // Another virtual router on the same link: dropped here, though
        // normal when several share the link.
        counters.dropped_vrid += 1;
        counters.other_vrid = Some(advert.vrid);
        return None;
    }
    if advert.version != config.version {
        counters.dropped_version += 1;
        return None;
    }
    if advert.password != config.password {
        // v2 auth type or password other than ours (RFC 3768 §7.1).
        counters.dropped_auth += 1;
        return None;
    }
    let ours = config.addresses.iter().map(|(a, _)| *a);
    let same_addresses = advert.addresses.len() == config.addresses.len()
        && ours.into_iter().all(|a| advert.addresses.contains(&a));
    if config.version == Version::V2 {
        // v2 routers must agree on the interval, and on the addresses unless
        // the sender owns them.
        if advert.interval != config.interval {
            counters.dropped_interval += 1;
            return None;
        }
        if !same_addresses && advert.priority != OWNER_PRIORITY {
            counters.dropped_addresses += 1;
            return None;
        }
    } else if !same_addresses {
        counters.address_mismatch += 1;
    }
    if advert.priority == 0 {
        counters.priority_zero_received += 1;
    }
    Some(Event::Advertisement {
        priority: advert.priority,
        source: header.source,
        interval: advert.interval,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::net::ipv4;
    use crate::packet::{MULTICAST_GROUP, MULTICAST_GROUP_V6};

    const PRIMARY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

    fn config(version: Version) -> SpeakerConfig {
        SpeakerConfig {
            name: "default/vip".into(),
            interface: "eth0".into(),
            vrid: 51,
            version,
            priority: 100,
            interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            addresses: vec![(VIP.into(), 24)],
            unicast_peers: vec![],
            garp_count: 5,
            garp_interval: Duration::from_millis(100),
            password: None,
        }
    }

    fn advert(version: Version, vrid: u8, addresses: Vec<Ipv4Addr>) -> Advertisement {
        Advertisement {
            version,
            vrid,
            priority: 120,
            interval: Duration::from_secs(1),
            addresses: addresses.into_iter().map(IpAddr::from).collect(),
            password: None,
        }
    }

    fn datagram(source: Ipv4Addr, destination: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
        let mut d = vec![0x45, 0, total[0], total[1], 0, 0, 0, 0, ttl, 112, 0, 0];
        d.extend_from_slice(&source.octets());
        d.extend_from_slice(&destination.octets());
        d.extend_from_slice(payload);
        d
    }

    fn wire(a: &Advertisement, source: Ipv4Addr, destination: Ipv4Addr, ttl: u8) -> Vec<u8> {
        datagram(
            source,
            destination,
            ttl,
            &a.encode(source, destination).unwrap(),
        )
    }

    /// Reads one counter.
    type Counter = fn(&Counters) -> u64;

    fn run(config: &SpeakerConfig, datagram: &[u8]) -> (Option<Event>, Counters) {
        let mut counters = Counters::default();
        let event = check(
            ipv4::parse(datagram).ok(),
            config,
            PRIMARY.into(),
            &mut counters,
        );
        (event, counters)
    }

    #[test]
    fn accepts_a_valid_multicast_advertisement() {
        let c = config(Version::V3);
        let a = advert(Version::V3, 51, vec![VIP]);
        let (event, counters) = run(&c, &wire(&a, PEER, MULTICAST_GROUP, 255));
        assert_eq!(
            event,
            Some(Event::Advertisement {
                priority: 120,
                source: PEER.into(),
                interval: Duration::from_secs(1)
            })
        );
        assert_eq!(counters.received, 1);
        assert_eq!(counters.dropped(), 0);
    }

    #[test]
    fn drops_and_counts_each_kind_of_bad_packet() {
        let c = config(Version::V3);
        let good = advert(Version::V3, 51, vec![VIP]);
        let cases: Vec<(&str, Vec<u8>, Counter)> = vec![
            ("ttl 64", wire(&good, PEER, MULTICAST_GROUP, 64), |c| {
                c.dropped_ttl
            }),
            (
                "unicast when multicast configured",
                wire(&good, PEER, PRIMARY, 255),
                |c| c.dropped_peer,
            ),
            (
                "v2 in a v3 group",
                wire(
                    &advert(Version::V2, 51, vec![VIP]),
                    PEER,
                    MULTICAST_GROUP,
                    255,
                ),
                |c| c.dropped_version,
            ),
            (
                "garbage payload",
                datagram(PEER, MULTICAST_GROUP, 255, &[0x31, 51, 0, 0]),
                |c| c.dropped_malformed,
            ),
            ("truncated IP header", vec![0x45, 0, 0], |c| {
                c.dropped_malformed
            }),
            (
                "version 4 nibble",
                datagram(
                    PEER,
                    MULTICAST_GROUP,
                    255,
                    &[0x41, 51, 100, 0, 0, 100, 0, 0],
                ),
                |c| c.dropped_version,
            ),
        ];
        for (what, bytes, counter) in cases {
            let (event, counters) = run(&c, &bytes);
            assert_eq!(event, None, "{what}");
            assert_eq!(counter(&counters), 1, "{what}: {counters:?}");
            assert_eq!(counters.dropped(), 1, "{what}: {counters:?}");
        }
        let mut corrupt = wire(&good, PEER, MULTICAST_GROUP, 255);
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(run(&c, &corrupt).1.dropped_malformed, 1, "checksum");
    }

    #[test]
    fn other_vrids_are_dropped_and_counted_own_packets_ignored() {
        let c = config(Version::V3);
        let other = advert(Version::V3, 52, vec![VIP]);
        let (event, counters) = run(&c, &wire(&other, PEER, MULTICAST_GROUP, 255));
        assert_eq!(event, None);
        assert_eq!((counters.received, counters.dropped_vrid), (1, 1));
        assert_eq!(counters.other_vrid, Some(52));
        assert_eq!(counters.dropped(), 1);
        let own = advert(Version::V3, 51, vec![VIP]);
        let (event, counters) = run(&c, &wire(&own, PRIMARY, MULTICAST_GROUP, 255));
        assert_eq!((event, counters.received), (None, 0));
    }

    #[test]
    fn unicast_accepts_only_configured_peers() {
        let mut c = config(Version::V3);
        c.unicast_peers = vec![PEER.into()];
        let a = advert(Version::V3, 51, vec![VIP]);
        assert!(run(&c, &wire(&a, PEER, PRIMARY, 255)).0.is_some());
        let stranger = Ipv4Addr::new(10, 0, 0, 9);
        let (event, counters) = run(&c, &wire(&a, stranger, PRIMARY, 255));
        assert_eq!((event, counters.dropped_peer), (None, 1));
    }

    #[test]
    fn v2_needs_the_same_interval_and_addresses() {
        let c = config(Version::V2);
        let mut a = advert(Version::V2, 51, vec![VIP]);
        assert!(run(&c, &wire(&a, PEER, MULTICAST_GROUP, 255)).0.is_some());
        a.interval = Duration::from_secs(2);
        assert_eq!(
            run(&c, &wire(&a, PEER, MULTICAST_GROUP, 255))
                .1
                .dropped_interval,
            1
        );
        a.interval = Duration::from_secs(1);
        a.addresses = vec![Ipv4Addr::new(10, 0, 0, 101).into()];
        assert_eq!(
            run(&c, &wire(&a, PEER, MULTICAST_GROUP, 255))
                .1
                .dropped_addresses,
            1
        );
        a.priority = 255;
        assert!(run(&c, &wire(&a, PEER, MULTICAST_GROUP, 255)).0.is_some());
    }

    #[test]
    fn v2_passwords_must_match() {
        let mut c = config(Version::V2);
        c.password = Some(*b"s3cret\0\0");
        let mut a = advert(Version::V2, 51, vec![VIP]);
        let dropped = |c: &SpeakerConfig, a: &Advertisement| {
            let (event, counters) = run(c, &wire(a, PEER, MULTICAST_GROUP, 255));
            (event.is_none(), counters.dropped_auth)
        };
        assert_eq!(dropped(&c, &a), (true, 1), "no authentication");
        a.password = Some(*b"s3cre7\0\0");
        assert_eq!(dropped(&c, &a), (true, 1), "another password");
        a.password = c.password;
        assert_eq!(dropped(&c, &a), (false, 0));
        c.password = None;
        assert_eq!(dropped(&c, &a), (true, 1), "a password where none is set");
    }

    #[test]
    fn v3_accepts_other_addresses_but_counts_them() {
        let c = config(Version::V3);
        let a = advert(Version::V3, 51, vec![Ipv4Addr::new(10, 0, 0, 101)]);
        let (event, counters) = run(&c, &wire(&a, PEER, MULTICAST_GROUP, 255));
        assert!(event.is_some());
        assert_eq!(counters.address_mismatch, 1);
    }

    #[test]
    fn random_datagrams_never_panic() {
        let c = config(Version::V3);
        for _ in 0..5000 {
            let len = fastrand::usize(0..80);
            let mut bytes: Vec<u8> = (0..len).map(|_| fastrand::u8(..)).collect();
            if bytes.len() > 20 && fastrand::bool() {
                bytes[0] = 0x45;
                bytes[9] = 112;
            }
            let _ = run(&c, &bytes);
        }
    }

    /// An IPv6 datagram as the receive socket hands it: payload, with the hop
    /// limit and destination from control messages.
    fn run_v6(
        config: &SpeakerConfig,
        source: Ipv6Addr,
        destination: Ipv6Addr,
        hop_limit: u8,
        payload: &[u8],
    ) -> (Option<Event>, Counters) {
        let mut counters = Counters::default();
        let received = Received {
            hop_limit,
            source: source.into(),
            destination: destination.into(),
            payload,
        };
        let own: IpAddr = "fe80::1".parse().unwrap();
        let event = check(Some(received), config, own, &mut counters);
        (event, counters)
    }

    #[test]
    fn ipv6_advertisements_are_checked_like_ipv4_ones() {
        let vip: IpAddr = "fd00::100".parse().unwrap();
        let peer: Ipv6Addr = "fe80::2".parse().unwrap();
        let mut c = config(Version::V3);
        c.addresses = vec![(vip, 64)];
        let a = Advertisement {
            addresses: vec![vip],
            ..advert(Version::V3, 51, vec![])
        };
        let bytes = a.encode(peer, MULTICAST_GROUP_V6).unwrap();
        let (event, counters) = run_v6(&c, peer, MULTICAST_GROUP_V6, 255, &bytes);
        assert_eq!(
            event,
            Some(Event::Advertisement {
                priority: 120,
                source: peer.into(),
                interval: Duration::from_secs(1)
            })
        );
        assert_eq!((counters.dropped(), counters.address_mismatch), (0, 0));
        assert_eq!(
            run_v6(&c, peer, MULTICAST_GROUP_V6, 64, &bytes)
                .1
                .dropped_ttl,
            1
        );
        let own: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(run_v6(&c, peer, own, 255, &bytes).1.dropped_peer, 1);
        // The checksum covers the IPv6 pseudo-header.
        let other: Ipv6Addr = "fe80::3".parse().unwrap();
        let (event, counters) = run_v6(&c, other, MULTICAST_GROUP_V6, 255, &bytes);
        assert_eq!((event, counters.dropped_malformed), (None, 1));
        let (event, counters) = run_v6(&c, own, MULTICAST_GROUP_V6, 255, &bytes);
        assert_eq!((event, counters.received), (None, 0), "own packet");
        let (event, counters) = run_v6(&c, peer, MULTICAST_GROUP_V6, 255, &bytes[..20]);
        assert_eq!((event, counters.dropped_malformed), (None, 1), "truncated");
    }
}
