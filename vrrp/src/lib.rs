//! fairlead's VRRP core: the advertisement codec ([`packet`]) for VRRPv3
//! (RFC 9568, IPv4 and IPv6) and VRRPv2 (RFC 3768, IPv4), and the election state machine
//! ([`machine`]) as a pure function of events and a caller-supplied clock.
//! The machine owns no sockets, timers or addresses: its caller feeds it
//! packets and timer expiries and carries out the [`Action`]s it returns.
//!
//! [`speaker`] runs an instance on a real interface: raw sockets, netlink
//! addresses, gratuitous ARP and unsolicited neighbour advertisements
//! ([`net`], Linux only).

#![forbid(unsafe_code)]

pub mod machine;
pub mod net;
pub mod packet;
pub mod speaker;

pub use machine::{Action, Event, Instance, InstanceConfig, Instant, Reason, State, Transition};
pub use packet::{Advertisement, Version};
pub use speaker::{PrioritySetter, Speaker, SpeakerConfig, SpeakerError, SpeakerStatus};

/// Errors of the VRRP core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the fixed header, or than the address count needs.
    #[error("VRRP packet: {len} bytes is too short (need at least {need})")]
    Short { len: usize, need: usize },
    /// Version nibble other than 2 or 3.
    #[error("VRRP packet: version {0} is not supported (2 or 3)")]
    Version(u8),
    /// Type nibble other than 1 (ADVERTISEMENT).
    #[error("VRRP packet: type {0} is not an advertisement (1)")]
    Type(u8),
    /// VRID 0 is reserved.
    #[error("VRRP packet: VRID 0 is not valid (1-255)")]
    Vrid,
    /// Advertisement interval of zero.
    #[error("VRRP packet: advertisement interval is 0")]
    ZeroInterval,
    /// VRRPv2 authentication other than none (0) or simple text password (1).
    #[error("VRRPv2 packet: authentication type {0} is not supported (0 or 1)")]
    AuthType(u8),
    /// Checksum does not match the content.
    #[error("VRRP packet: checksum {found:#06x}, expected {expected:#06x}")]
    Checksum { found: u16, expected: u16 },
    /// Length does not match the address count.
    #[error("VRRP packet: {count} addresses need {need} bytes, got {len}")]
    AddressCount { count: u8, need: usize, len: usize },
    /// An advertisement that cannot be encoded as asked.
    #[error("VRRP advertisement: {0}")]
    Encode(&'static str),
    /// An instance configuration out of range.
    #[error("VRRP instance VRID {vrid}: {field}: {reason}")]
    Config {
        vrid: u8,
        field: &'static str,
        reason: String,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
