//! Interfaces and addresses over rtnetlink: what `ip link` and `ip addr` do.

use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::Handle;

/// errno EEXIST, as netlink reports it (negated).
const EEXIST: i32 = 17;
/// errno EADDRNOTAVAIL: deleting an address that is not there.
const EADDRNOTAVAIL: i32 = 99;
/// errno EBUSY: a dump asked for while another runs on the shared socket.
const EBUSY: i32 = 16;
/// Tries of an address removal that meets EBUSY, 2 ms apart.
const BUSY_TRIES: u32 = 50;

/// An interface as VRRP needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Hardware address; empty for interfaces without one.
    pub mac: Vec<u8>,
    /// Administratively up and with carrier (IFF_UP and IFF_RUNNING).
    pub up: bool,
}

/// An IP address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// An IPv6 address still in duplicate address detection: not usable yet.
    pub tentative: bool,
}

impl Address {
    /// Whether `ip` (of the same family) is in this address's subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let masked = |a: u128, bits: u32| {
            let len = u32::from(self.prefix_len).min(bits);
            a.checked_shr(bits - len).unwrap_or(0)
        };
        match (self.address, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                masked(u32::from(a).into(), 32) == masked(u32::from(b).into(), 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => masked(a.into(), 128) == masked(b.into(), 128),
            _ => false,
        }
    }
}

/// Whether `address` is an IPv6 link-local unicast address (fe80::/10).
pub fn is_link_local(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

/// A connection to the kernel's routing netlink; cheap to clone.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection; its I/O runs on a task of the current tokio runtime.
    pub fn connect() -> io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The interface named `name`, if it exists.
    pub async fn link(&self, name: &str) -> io::Result<Option<Link>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(found) => Ok(found.map(link)),
            // No such device.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Every interface.
    pub async fn links(&self) -> io::Result<Vec<Link>> {
        let links = self.handle.link().get().execute();
        let messages: Vec<LinkMessage> = links.try_collect().await.map_err(to_io)?;
        Ok(messages.into_iter().map(link).collect())
    }

    /// Every IPv4 and IPv6 address, on every interface.
    pub async fn addresses(&self) -> io::Result<Vec<Address>> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(to_io)?;
        Ok(messages.iter().filter_map(address).collect())
    }

    /// Adds `address/prefix_len` to the interface; already there is fine.
    /// IPv6 addresses skip duplicate address detection (they are expected to
    /// move between nodes), so they serve at once.
    pub async fn add(&self, index: u32, address: IpAddr, prefix_len: u8) -> io::Result<()> {
        let mut request = self.handle.address().add(index, address, prefix_len);
        if address.is_ipv6() {
            let message = request.message_mut();
            message.header.flags |= AddressHeaderFlags::Nodad;
            (message.attributes).push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -EEXIST => Ok(()),
            other => other.map_err(to_io),
        }
    }

    /// Removes `address` from the interface; not there is fine. With many
    /// virtual routers moving at once, the address dump can meet another
    /// dump on the shared netlink socket (EBUSY): then it is tried again.
    pub async fn remove(&self, index: u32, address: IpAddr) -> io::Result<()> {
        let mut tries = 1;
        loop {
            match self.remove_once(index, address).await {
                Err(e) if e.raw_os_error() == Some(EBUSY) && tries < BUSY_TRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                other => return other,
            }
        }
    }

    async fn remove_once(&self, index: u32, address: IpAddr) -> io::Result<()> {
        let found: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(address)
            .execute()
            .try_collect()
            .await
            .map_err(to_io)?;
        for message in found {
            match self.handle.address().del(message).execute().await {
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -EADDRNOTAVAIL => {}
                other => other.map_err(to_io)?,
            }
        }
        Ok(())
    }
}

fn link(message: LinkMessage) -> Link {
    let flags = message.header.flags;
    let mut name = String::new();
    let mut mac = Vec::new();
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = n,
            LinkAttribute::Address(a) => mac = a,
            _ => {}
        }
    }
    Link {
        index: message.header.index,
        name,
        mac,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
    }
}

fn address(message: &AddressMessage) -> Option<Address> {
    if ![AddressFamily::Inet, AddressFamily::Inet6].contains(&message.header.family) {
        return None;
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
    // point-to-point links); fall back to IFA_ADDRESS when absent.
    let mut local = None;
    let mut any = None;
    let mut tentative = message.header.flags.contains(AddressHeaderFlags::Tentative);
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => any = Some(*a),
            AddressAttribute::Flags(f) => tentative |= f.contains(AddressFlags::Tentative),
            _ => {}
        }
    }
    Some(Address {
        index: message.header.index,
        address: local.or(any)?,
        prefix_len: message.header.prefix_len,
        tentative,
    })
}

fn to_io(error: rtnetlink::Error) -> io::Error {
    match error {
        rtnetlink::Error::NetlinkError(e) => e.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str, prefix_len: u8) -> Address {
        Address {
            index: 1,
            address: text.parse().unwrap(),
            prefix_len,
            tentative: false,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn subnet_membership() {
        let a = address("192.0.2.10", 24);
        assert!(a.contains(ip("192.0.2.200")));
        assert!(!a.contains(ip("192.0.3.1")));
        let host = address("192.0.2.10", 32);
        assert!(host.contains(a.address));
        assert!(!host.contains(ip("192.0.2.11")));
        assert!(address("192.0.2.10", 0).contains(ip("8.8.8.8")));
        let v6 = address("fd00:1:2::10", 64);
        assert!(v6.contains(ip("fd00:1:2::ffff")));
        assert!(!v6.contains(ip("fd00:1:3::10")));
        assert!(!v6.contains(ip("192.0.2.10")), "another family");
        assert!(!a.contains(ip("::ffff:192.0.2.10")), "another family");
        assert!(address("fd00::1", 128).contains(ip("fd00::1")));
        assert!(!address("fd00::1", 128).contains(ip("fd00::2")));
        assert!(address("fd00::1", 0).contains(ip("2001:db8::1")));
    }

    #[test]
    fn link_local_addresses() {
        assert!(is_link_local(ip("fe80::1")));
        assert!(is_link_local(ip("febf::1")));
        assert!(!is_link_local(ip("fec0::1")));
        assert!(!is_link_local(ip("fd00::1")));
        assert!(!is_link_local(ip("169.254.0.1")));
    }
}
