//! The IPv4 header of a received packet: a raw IPv4 socket hands the whole
//! datagram, header included, and VRRP needs its TTL and addresses.

use std::net::Ipv4Addr;

use crate::net::socket::Received;
use crate::packet::IP_PROTOCOL;

/// Why a datagram is not a VRRP payload to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("IPv4 datagram shorter than its header")]
    Short,
    #[error("not IPv4")]
    Version,
    #[error("IP protocol {0} is not VRRP (112)")]
    Protocol(u8),
    #[error("fragmented datagram")]
    Fragment,
}

/// Splits a raw datagram into what its header says and the payload (up to the
/// header's total length; the kernel has already checked the header checksum).
pub fn parse(datagram: &[u8]) -> Result<Received<'_>, HeaderError> {
    let fixed: &[u8; 20] = datagram.first_chunk().ok_or(HeaderError::Short)?;
    if fixed[0] >> 4 != 4 {
        return Err(HeaderError::Version);
    }
    let header_len = usize::from(fixed[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    if header_len < 20 || total_len < header_len || datagram.len() < total_len {
        return Err(HeaderError::Short);
    }
    // More-fragments flag or a fragment offset: VRRP advertisements are never fragmented.
    if u16::from_be_bytes([fixed[6], fixed[7]]) & 0x3fff != 0 {
        return Err(HeaderError::Fragment);
    }
    if fixed[9] != IP_PROTOCOL {
        return Err(HeaderError::Protocol(fixed[9]));
    }
    Ok(Received {
        hop_limit: fixed[8],
        source: Ipv4Addr::new(fixed[12], fixed[13], fixed[14], fixed[15]).into(),
        destination: Ipv4Addr::new(fixed[16], fixed[17], fixed[18], fixed[19]).into(),
        payload: &datagram[header_len..total_len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
        let mut d = vec![
            0x45, 0xc0, total[0], total[1], 0, 0, 0x40, 0, 255, 112, 0, 0, 10, 0, 0, 1, 224, 0, 0,
            18,
        ];
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn reads_ttl_addresses_and_payload() {
        let d = datagram(&[1, 2, 3]);
        let r = parse(&d).unwrap();
        assert_eq!(r.hop_limit, 255);
        assert_eq!(r.source, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.destination, Ipv4Addr::new(224, 0, 0, 18));
        assert_eq!(r.payload, &[1, 2, 3]);
    }

    #[test]
    fn options_are_skipped_and_padding_after_total_length_ignored() {
        let mut d = datagram(&[9]);
        d[0] = 0x46;
        d.splice(20..20, [1, 1, 1, 1]);
        d[3] += 4;
        d.extend_from_slice(&[0, 0]);
        assert_eq!(parse(&d).unwrap().payload, &[9]);
    }

    #[test]
    fn rejects_what_is_not_an_unfragmented_vrrp_datagram() {
        let d = datagram(&[1]);
        assert_eq!(parse(&d[..19]), Err(HeaderError::Short));
        assert_eq!(parse(&d[..20]), Err(HeaderError::Short));
        let mut v6 = d.clone();
        v6[0] = 0x65;
        assert_eq!(parse(&v6), Err(HeaderError::Version));
        let mut udp = d.clone();
        udp[9] = 17;
        assert_eq!(parse(&udp), Err(HeaderError::Protocol(17)));
        let mut fragment = d.clone();
        fragment[6] = 0x20;
        assert_eq!(parse(&fragment), Err(HeaderError::Fragment));
        let mut bad_ihl = d;
        bad_ihl[0] = 0x44;
        assert_eq!(parse(&bad_ihl), Err(HeaderError::Short));
    }

    #[test]
    fn random_input_never_panics() {
        for _ in 0..5000 {
            let len = fastrand::usize(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| fastrand::u8(..)).collect();
            let _ = parse(&bytes);
        }
    }
}
