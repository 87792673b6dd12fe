//! VRRP advertisements: VRRPv3 (RFC 9568 §5) over IPv4 and IPv6, and VRRPv2
//! (RFC 3768 §5) over IPv4.
//!
//! Both share an 8-byte header and then the virtual addresses:
//!
//! ```text
//! byte 0     version (4 bits) | type (4 bits, 1 = ADVERTISEMENT)
//! byte 1     VRID
//! byte 2     priority
//! byte 3     count of addresses
//! bytes 4-5  v3: 4 reserved bits | max advert interval (12 bits, centiseconds)
//!            v2: auth type (byte 4: 0 none, 1 simple text password) |
//!                advert interval (byte 5, seconds)
//! bytes 6-7  checksum
//! then       count x 4 bytes of IPv4 address, or count x 16 of IPv6;
//!            v2 adds 8 bytes of auth data (the password, zero-padded)
//! ```
//!
//! The v3 checksum covers a pseudo-header (IPv4: source, destination, zero,
//! protocol 112, VRRP length; IPv6, RFC 8200 §8.1: source, destination,
//! 32-bit length, next header 112) and the message; the v2 checksum covers
//! the message only, auth data included. The family of the packet's source
//! address tells the size of the addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::{Error, Result};

/// IP protocol number of VRRP.
pub const IP_PROTOCOL: u8 = 112;
/// The IPv4 multicast group VRRP advertisements go to.
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group VRRP advertisements go to (link scope).
pub const MULTICAST_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The VRRP multicast group of `address`'s family.
pub fn multicast_group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => MULTICAST_GROUP.into(),
        IpAddr::V6(_) => MULTICAST_GROUP_V6.into(),
    }
}

const HEADER_LEN: usize = 8;
const V2_AUTH_LEN: usize = 8;
const TYPE_ADVERTISEMENT: u8 = 1;
/// VRRPv2 auth type 1: simple text password (RFC 2338 §5.3.6.1; keepalived's PASS).
const AUTH_SIMPLE_TEXT: u8 = 1;
/// Largest v3 interval: 12 bits of centiseconds.
const V3_MAX_CENTIS: u16 = 0x0fff;

/// Protocol version of an advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// RFC 3768: interval in seconds, no pseudo-header in the checksum.
    V2,
    /// RFC 9568: interval in centiseconds, pseudo-header in the checksum.
    V3,
}

/// One VRRP advertisement, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    pub version: Version,
    /// Virtual router id, 1-255.
    pub vrid: u8,
    /// Sender's priority: 0 = master stepping down, 255 = address owner.
    pub priority: u8,
    /// Advertisement interval: whole seconds (1-255) for v2, centiseconds
    /// (10 ms - 40.95 s) for v3.
    pub interval: Duration,
    /// The virtual addresses, all of the packet's family.
    pub addresses: Vec<IpAddr>,
    /// VRRPv2 simple text password, zero-padded (auth type 1); `None`: no
    /// authentication (type 0). Never set for v3, which has none.
    pub password: Option<[u8; 8]>,
}

impl Advertisement {
    /// The message bytes, checksum filled in. `source` and `destination` are
    /// the IP header's addresses (used by the v3 checksum only); the virtual
    /// addresses must be of their family, and IPv4 for v2.
    pub fn encode(
        &self,
        source: impl Into<IpAddr>,
        destination: impl Into<IpAddr>,
    ) -> Result<Vec<u8>> {
        let (source, destination) = (source.into(), destination.into());
        if self.vrid == 0 {
            return Err(Error::Vrid);
        }
        if source.is_ipv4() != destination.is_ipv4()
            || (self.addresses.iter()).any(|a| a.is_ipv4() != source.is_ipv4())
        {
            return Err(Error::Encode("addresses of two IP families"));
        }
        if self.version == Version::V2 && source.is_ipv6() {
            return Err(Error::Encode("VRRPv2 is IPv4 only"));
        }
        if self.version == Version::V3 && self.password.is_some() {
            return Err(Error::Encode("VRRPv3 has no authentication"));
        }
        let count = u8::try_from(self.addresses.len())
            .map_err(|_| Error::Encode("more than 255 addresses"))?;
        let interval = interval_field(self.version, self.interval).ok_or(Error::Encode(
            "interval must be whole seconds 1-255 (v2) or centiseconds 1-4095 (v3)",
        ))?;
        let version = match self.version {
            Version::V2 => 2,
            Version::V3 => 3,
        };
        let mut bytes = Vec::with_capacity(self.len());
        bytes.extend_from_slice(&[
            version << 4 | TYPE_ADVERTISEMENT,
            self.vrid,
            self.priority,
            count,
        ]);
        // v3: reserved zero bits and centiseconds; v2: auth type and seconds.
        bytes.extend_from_slice(&interval.to_be_bytes());
        if self.password.is_some() {
            bytes[4] = AUTH_SIMPLE_TEXT;
        }
        bytes.extend_from_slice(&[0, 0]);
        for address in &self.addresses {
            match address {
                IpAddr::V4(a) => bytes.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => bytes.extend_from_slice(&a.octets()),
            }
        }
        if self.version == Version::V2 {
            bytes.extend_from_slice(&self.password.unwrap_or_default());
        }
        let sum = checksum(self.version, &bytes, source, destination);
        bytes[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(bytes)
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        let auth = if self.version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        let size = |a: &IpAddr| if a.is_ipv4() { 4 } else { 16 };
        HEADER_LEN + self.addresses.iter().map(size).sum::<usize>() + auth
    }

    /// Whether the advertisement carries no address (valid for v3 only).
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Decodes the VRRP message (the IP payload) received from `source` to
    /// `destination`. Every malformation is an [`Error`]; no input panics.
    pub fn decode(
        bytes: &[u8],
        source: impl Into<IpAddr>,
        destination: impl Into<IpAddr>,
    ) -> Result<Self> {
        let (source, destination) = (source.into(), destination.into());
        let short = |need| Error::Short {
            len: bytes.len(),
            need,
        };
        let header: &[u8; HEADER_LEN] = bytes.first_chunk().ok_or_else(|| short(HEADER_LEN))?;
        let version = match header[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            other => return Err(Error::Version(other)),
        };
        if header[0] & 0x0f != TYPE_ADVERTISEMENT {
            return Err(Error::Type(header[0] & 0x0f));
        }
        let [_, vrid, priority, count, b4, b5, c0, c1] = *header;
        if vrid == 0 {
            return Err(Error::Vrid);
        }
        let (interval, auth) = match version {
            Version::V2 if source.is_ipv6() => return Err(Error::Version(2)),
            Version::V3 => {
                let centis = u16::from_be_bytes([b4 & 0x0f, b5]);
                (Duration::from_millis(u64::from(centis) * 10), 0)
            }
            Version::V2 => {
                if b4 > AUTH_SIMPLE_TEXT {
                    return Err(Error::AuthType(b4));
                }
                (Duration::from_secs(u64::from(b5)), V2_AUTH_LEN)
            }
        };
        let size = if source.is_ipv4() { 4 } else { 16 };
        let need = HEADER_LEN + size * usize::from(count) + auth;
        if bytes.len() != need {
            return Err(Error::AddressCount {
                count,
                need,
                len: bytes.len(),
            });
        }
        let expected = checksum_with_zeroed_field(version, bytes, source, destination);
        let found = u16::from_be_bytes([c0, c1]);
        if found != expected {
            return Err(Error::Checksum { found, expected });
        }
        if interval.is_zero() {
            return Err(Error::ZeroInterval);
        }
        let addresses = bytes[HEADER_LEN..need - auth]
            .chunks_exact(size)
            .map(|a| match <[u8; 16]>::try_from(a) {
                Ok(v6) => IpAddr::from(v6),
                Err(_) => IpAddr::from([a[0], a[1], a[2], a[3]]),
            })
            .collect();
        let password = (version == Version::V2 && b4 == AUTH_SIMPLE_TEXT)
            .then(|| <[u8; 8]>::try_from(&bytes[need - auth..need]).ok())
            .flatten();
        Ok(Self {
            version,
            vrid,
            priority,
            interval,
            addresses,
            password,
        })
    }
}

/// The interval as its header field: centiseconds (1-4095) for v3, seconds
/// (1-255) for v2; `None` when the field cannot carry it exactly.
pub(crate) fn interval_field(version: Version, interval: Duration) -> Option<u16> {
    let (unit, max) = match version {
        Version::V3 => (10, V3_MAX_CENTIS),
        Version::V2 => (1000, 255),
    };
    let millis = interval.as_millis();
    let whole = interval.subsec_nanos().is_multiple_of(1_000_000) && millis.is_multiple_of(unit);
    u16::try_from(millis / unit)
        .ok()
        .filter(|units| whole && (1..=max).contains(units))
}

/// The checksum of `bytes` as if its checksum field (bytes 6-7) were zero.
fn checksum_with_zeroed_field(
    version: Version,
    bytes: &[u8],
    source: IpAddr,
    destination: IpAddr,
) -> u16 {
    let mut copy = bytes.to_vec();
    copy[6] = 0;
    copy[7] = 0;
    checksum(version, &copy, source, destination)
}

/// The Internet checksum (RFC 1071) of the message, with the v3 pseudo-header.
fn checksum(version: Version, message: &[u8], source: IpAddr, destination: IpAddr) -> u16 {
    let mut sum = 0u64;
    if version == Version::V3 {
        // Both pseudo-headers sum to the same words: the length (16 bits in
        // IPv4, 32 in IPv6, at most 8 + 255 * 16 bytes here) and the protocol.
        let len = message.len() as u64;
        sum += words(&octets(source)) + words(&octets(destination)) + u64::from(IP_PROTOCOL) + len;
    }
    sum += words(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn octets(address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Sum of the big-endian 16-bit words of `bytes`, an odd last byte padded with zero.
fn words(bytes: &[u8]) -> u64 {
    bytes
        .chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum()
}

#[cfg(test)]
mod tests;
