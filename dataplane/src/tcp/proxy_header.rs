//! The PROXY protocol version 2 header (haproxy's proxy-protocol.txt,
//! section 2.2) a tcp backend with `sendProxyV2` sends before the stream:
//! the client's address and the address it connected to.

use std::net::{IpAddr, SocketAddr};

/// The fixed 12-byte signature that opens every v2 header.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const VERSION_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4, TCP over IPv6.
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// The header for a connection from `source` to `destination`; when their
/// families differ, both are sent as IPv6 (IPv4-mapped).
pub fn header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_PROXY);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_bytes() {
        let h = header(
            "192.0.2.1:40000".parse().unwrap(),
            "198.51.100.2:443".parse().unwrap(),
        );
        let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        want.extend([
            0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 0x9c, 0x40, 0x01, 0xbb,
        ]);
        assert_eq!(h, want);
    }

    #[test]
    fn ipv6_and_mixed_families() {
        let h = header(
            "[fd00::1]:1".parse().unwrap(),
            "[fd00::2]:2".parse().unwrap(),
        );
        assert_eq!((h.len(), h[13], &h[14..16]), (52, 0x21, &[0u8, 36][..]));
        let mixed = header(
            "192.0.2.1:1".parse().unwrap(),
            "[fd00::2]:2".parse().unwrap(),
        );
        assert_eq!(mixed[13], 0x21);
        assert_eq!(
            &mixed[16..32],
            &"::ffff:192.0.2.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }
}
