//! The VRRP advertisement codec on any bytes: decoding never panics, and what
//! decodes encodes to bytes that decode to the same advertisement.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fairlead_vrrp::Advertisement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&family, bytes)) = data.split_first() else {
        return;
    };
    let (source, destination): (IpAddr, IpAddr) = if family & 1 == 0 {
        (
            Ipv4Addr::new(192, 168, 1, 1).into(),
            Ipv4Addr::new(224, 0, 0, 18).into(),
        )
    } else {
        let source = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        (
            source.into(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12).into(),
        )
    };
    let Ok(advert) = Advertisement::decode(bytes, source, destination) else {
        return;
    };
    let encoded = advert
        .encode(source, destination)
        .expect("a decoded advertisement encodes");
    assert_eq!(encoded.len(), advert.len());
    let again = Advertisement::decode(&encoded, source, destination).expect("round trip");
    assert_eq!(again, advert);
});
