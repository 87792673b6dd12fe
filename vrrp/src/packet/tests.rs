use std::net::Ipv6Addr;

use super::*;

const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const DST: Ipv4Addr = MULTICAST_GROUP;
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);

fn advert(version: Version, interval: Duration, addresses: Vec<Ipv4Addr>) -> Advertisement {
    Advertisement {
        version,
        vrid: 51,
        priority: 100,
        interval,
        addresses: addresses.into_iter().map(IpAddr::from).collect(),
        password: None,
    }
}

/// VRID 51, priority 100, 1 s, 192.168.1.100. Checksum by hand, 16-bit words:
/// 0x2133 + 0x6401 + 0x0001 + 0xc0a8 + 0x0164 = 0x14742, folded 0x4742, inverted 0xb8bd.
const V2_BYTES: [u8; 20] = [
    0x21, 0x33, 0x64, 0x01, 0x00, 0x01, 0xb8, 0xbd, 192, 168, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Same with v3 and 100 cs, from 192.168.1.1 to 224.0.0.18. By hand:
/// pseudo-header 0xc0a8 + 0x0101 + 0xe000 + 0x0012 + 0x0070 (112) + 0x000c (length 12)
/// = 0x1a237; message 0x3133 + 0x6401 + 0x0064 + 0xc0a8 + 0x0164 = 0x157a4;
/// total 0x2f9db, folded 0xf9dd, inverted 0x0622.
const V3_BYTES: [u8; 12] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x06, 0x22, 192, 168, 1, 100,
];

#[test]
fn v2_encodes_to_the_hand_computed_bytes() {
    let bytes = advert(Version::V2, Duration::from_secs(1), vec![VIP])
        .encode(SRC, DST)
        .unwrap();
    assert_eq!(bytes, V2_BYTES);
    // The v2 checksum ignores the IP addresses.
    let other = Ipv4Addr::new(10, 0, 0, 9);
    assert_eq!(
        Advertisement::decode(&V2_BYTES, other, other)
            .unwrap()
            .priority,
        100
    );
}

#[test]
fn v3_encodes_to_the_hand_computed_bytes() {
    let bytes = advert(Version::V3, Duration::from_secs(1), vec![VIP])
        .encode(SRC, DST)
        .unwrap();
    assert_eq!(bytes, V3_BYTES);
    // The v3 checksum covers the pseudo-header: another source fails it.
    let err = Advertisement::decode(&V3_BYTES, Ipv4Addr::new(192, 168, 1, 2), DST).unwrap_err();
    assert!(
        matches!(err, Error::Checksum { found: 0x0622, .. }),
        "{err}"
    );
}

#[test]
fn round_trips() {
    let many: Vec<_> = (0..=255u8)
        .take(255)
        .map(|i| Ipv4Addr::new(10, 1, 2, i))
        .collect();
    let cases = [
        advert(Version::V3, Duration::from_millis(10), vec![]),
        advert(Version::V3, Duration::from_millis(40_950), vec![VIP, SRC]),
        advert(Version::V3, Duration::from_millis(1230), many.clone()),
        advert(Version::V2, Duration::from_secs(255), many),
        Advertisement {
            priority: 0,
            ..advert(Version::V2, Duration::from_secs(3), vec![VIP])
        },
        Advertisement {
            priority: 255,
            vrid: 255,
            ..advert(Version::V3, Duration::from_millis(20), vec![VIP])
        },
    ];
    for case in cases {
        let bytes = case.encode(SRC, DST).unwrap();
        assert_eq!(bytes.len(), case.len());
        assert_eq!(Advertisement::decode(&bytes, SRC, DST).unwrap(), case);
    }
}

#[test]
fn v3_reserved_bits_are_ignored() {
    let mut bytes = V3_BYTES;
    bytes[4] |= 0xf0;
    // Fix the checksum for the changed word: subtract 0xf000 in one's complement.
    let sum = !u16::from_be_bytes([bytes[6], bytes[7]]) as u32 + 0xf000;
    let sum = (sum & 0xffff) + (sum >> 16);
    bytes[6..8].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let decoded = Advertisement::decode(&bytes, SRC, DST).unwrap();
    assert_eq!(decoded.interval, Duration::from_secs(1));
}

#[test]
fn unencodable_advertisements_are_errors() {
    let bad = [
        advert(Version::V3, Duration::ZERO, vec![]),
        advert(Version::V3, Duration::from_millis(15), vec![]),
        advert(Version::V3, Duration::from_millis(40_960), vec![]),
        advert(Version::V2, Duration::from_millis(1500), vec![]),
        advert(Version::V2, Duration::from_secs(256), vec![]),
        advert(Version::V2, Duration::ZERO, vec![]),
        advert(Version::V3, Duration::from_secs(1), vec![VIP; 256]),
    ];
    for case in bad {
        assert!(
            matches!(case.encode(SRC, DST), Err(Error::Encode(_))),
            "{case:?}"
        );
    }
    let vrid0 = Advertisement {
        vrid: 0,
        ..advert(Version::V3, Duration::from_secs(1), vec![])
    };
    assert_eq!(vrid0.encode(SRC, DST), Err(Error::Vrid));
}

/// `bytes` with `edit` applied and the checksum recomputed, so only the edit is wrong.
fn edited(bytes: &[u8], version: Version, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    edit(&mut bytes);
    if bytes.len() >= HEADER_LEN {
        let sum = checksum_with_zeroed_field(version, &bytes, SRC.into(), DST.into());
        bytes[6..8].copy_from_slice(&sum.to_be_bytes());
    }
    bytes
}

#[test]
fn every_malformation_is_its_own_error() {
    let decode = |b: &[u8]| Advertisement::decode(b, SRC, DST).unwrap_err();
    let v3 = |edit: fn(&mut Vec<u8>)| decode(&edited(&V3_BYTES, Version::V3, edit));
    let v2 = |edit: fn(&mut Vec<u8>)| decode(&edited(&V2_BYTES, Version::V2, edit));

    assert_eq!(decode(&V3_BYTES[..7]), Error::Short { len: 7, need: 8 });
    assert_eq!(decode(&[]), Error::Short { len: 0, need: 8 });
    assert_eq!(v3(|b| b[0] = 0x11), Error::Version(1));
    assert_eq!(v3(|b| b[0] = 0x41), Error::Version(4));
    assert_eq!(v3(|b| b[0] = 0x32), Error::Type(2));
    assert_eq!(v2(|b| b[0] = 0x20), Error::Type(0));
    assert_eq!(v3(|b| b[1] = 0), Error::Vrid);
    assert_eq!(v2(|b| b[4] = 2), Error::AuthType(2));
    assert_eq!(v3(|b| b[5] = 0), Error::ZeroInterval);
    assert_eq!(v2(|b| b[5] = 0), Error::ZeroInterval);
    assert_eq!(
        v3(|b| b[3] = 2),
        Error::AddressCount {
            count: 2,
            need: 16,
            len: 12
        }
    );
    assert_eq!(
        v3(|b| b.push(0)),
        Error::AddressCount {
            count: 1,
            need: 12,
            len: 13
        }
    );
    // A v2 packet without its auth data is too short for its count.
    assert_eq!(
        v2(|b| b.truncate(12)),
        Error::AddressCount {
            count: 1,
            need: 20,
            len: 12
        }
    );
    let mut flipped = V2_BYTES;
    flipped[10] ^= 0x01;
    assert_eq!(
        decode(&flipped),
        Error::Checksum {
            found: 0xb8bd,
            expected: 0xb9bd
        }
    );
}

#[test]
fn no_truncation_or_random_input_panics() {
    for full in [&V2_BYTES[..], &V3_BYTES[..]] {
        for len in 0..full.len() {
            assert!(
                Advertisement::decode(&full[..len], SRC, DST).is_err(),
                "length {len}"
            );
        }
    }
    let mut rng = fastrand::Rng::with_seed(0x5eed_0005);
    let mut decoded = 0;
    for _ in 0..5000 {
        let len = rng.usize(0..64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        // Bias towards plausible headers so the later checks get exercised too.
        if len > 0 && rng.bool() {
            bytes[0] = [0x21, 0x31][rng.usize(0..2)];
        }
        if Advertisement::decode(&bytes, SRC, DST).is_ok() {
            decoded += 1;
        }
    }
    // Random bytes almost never carry a valid checksum and length.
    assert!(decoded < 10, "{decoded} random strings decoded");
}

/// v3 over IPv6, VRID 51, priority 100, 100 cs, fd00::100, from fe80::1 to
/// ff02::12. The checksum (0x6e47) was worked out apart from this code, over
/// the RFC 8200 pseudo-header: source, destination, 32-bit length 24, next
/// header 112.
const V6_BYTES: [u8; 24] = [
    0x31, 0x33, 0x64, 0x01, 0x00, 0x64, 0x6e, 0x47, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x01, 0,
];

#[test]
fn v3_over_ipv6_encodes_to_the_worked_out_bytes() {
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let vip: IpAddr = "fd00::100".parse().unwrap();
    let a = Advertisement {
        addresses: vec![vip],
        ..advert(Version::V3, Duration::from_secs(1), vec![])
    };
    let bytes = a.encode(src, MULTICAST_GROUP_V6).unwrap();
    assert_eq!(bytes, V6_BYTES);
    assert_eq!(a.len(), 24);
    assert_eq!(
        Advertisement::decode(&bytes, src, MULTICAST_GROUP_V6),
        Ok(a)
    );
    // The same bytes read as IPv4 are one IPv4 address short.
    let err = Advertisement::decode(&bytes, SRC, DST).unwrap_err();
    assert!(matches!(err, Error::AddressCount { .. }), "{err}");
    let other: Ipv6Addr = "fe80::2".parse().unwrap();
    let err = Advertisement::decode(&bytes, other, MULTICAST_GROUP_V6).unwrap_err();
    assert!(
        matches!(err, Error::Checksum { found: 0x6e47, .. }),
        "{err}"
    );
}

#[test]
fn families_do_not_mix() {
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let v4 = advert(Version::V3, Duration::from_secs(1), vec![VIP]);
    assert!(matches!(
        v4.encode(src, MULTICAST_GROUP_V6),
        Err(Error::Encode(_))
    ));
    assert!(matches!(
        v4.encode(SRC, MULTICAST_GROUP_V6),
        Err(Error::Encode(_))
    ));
    let v2 = advert(Version::V2, Duration::from_secs(1), vec![]);
    assert!(matches!(
        v2.encode(src, MULTICAST_GROUP_V6),
        Err(Error::Encode(_))
    ));
    // A v2 packet from an IPv6 source is not VRRPv2.
    let err = Advertisement::decode(&V2_BYTES, src, MULTICAST_GROUP_V6).unwrap_err();
    assert_eq!(err, Error::Version(2));
}

#[test]
fn v2_simple_text_password() {
    let a = Advertisement {
        password: Some(*b"s3cret\0\0"),
        ..advert(Version::V2, Duration::from_secs(1), vec![VIP])
    };
    let bytes = a.encode(SRC, DST).unwrap();
    // Auth type 1, the password in the auth data; the checksum covers it:
    // 0x14741 (V2_BYTES' words) + 0x0100 + 0x7333 + 0x6372 + 0x6574 =
    // 0x2845a, folded 0x845c, inverted 0x7ba3.
    let mut expected = V2_BYTES;
    expected[4] = 1;
    expected[6..8].copy_from_slice(&[0x7b, 0xa3]);
    expected[12..20].copy_from_slice(b"s3cret\0\0");
    assert_eq!(bytes, expected);
    assert_eq!(Advertisement::decode(&bytes, SRC, DST), Ok(a.clone()));
    let none = Advertisement::decode(&V2_BYTES, SRC, DST).unwrap();
    assert_eq!(none.password, None);
    // IP authentication header (type 2) is not supported.
    let ah = edited(&bytes, Version::V2, |b| b[4] = 2);
    assert_eq!(
        Advertisement::decode(&ah, SRC, DST),
        Err(Error::AuthType(2))
    );
    let v3 = Advertisement {
        version: Version::V3,
        ..a
    };
    assert!(matches!(v3.encode(SRC, DST), Err(Error::Encode(_))));
}
