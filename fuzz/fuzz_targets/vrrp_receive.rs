//! The receive checks (RFC 9568 §7.1) on any datagram: never panic, and a
//! datagram is either an event or counted as dropped.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use fairlead_vrrp::net::socket::Received;
use fairlead_vrrp::speaker::check_received;
use fairlead_vrrp::{SpeakerConfig, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_first_chunk::<4>() else {
        return;
    };
    let [hop_limit, flags, source_last, vrid] = *head;
    let primary = IpAddr::from(Ipv4Addr::new(192, 168, 1, 2));
    let version = if flags & 1 == 0 {
        Version::V3
    } else {
        Version::V2
    };
    let peers = if flags & 2 == 0 {
        Vec::new()
    } else {
        vec![IpAddr::from(Ipv4Addr::new(192, 168, 1, 1))]
    };
    let config = SpeakerConfig {
        name: "default/vip".into(),
        interface: "fuzz0".into(),
        vrid: vrid.max(1),
        version,
        priority: 100,
        interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: vec![(Ipv4Addr::new(192, 168, 1, 100).into(), 24)],
        unicast_peers: peers,
        garp_count: 1,
        garp_interval: Duration::from_secs(1),
        password: (flags & 4 != 0 && version == Version::V2).then_some(*b"secret\0\0"),
    };
    let destination = if flags & 8 == 0 {
        IpAddr::from(Ipv4Addr::new(224, 0, 0, 18))
    } else {
        primary
    };
    let received = (flags & 16 == 0).then_some(Received {
        hop_limit,
        source: Ipv4Addr::new(192, 168, 1, source_last).into(),
        destination,
        payload,
    });
    let mut counters = Default::default();
    let event = check_received(received, &config, primary, &mut counters);
    let _ = event;
});
