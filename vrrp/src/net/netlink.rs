//! Interfaces and addresses over rtnetlink: what `ip link` and `ip addr` do.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::Handle;

/// errno EEXIST, as netlink reports it (negated).
const EEXIST: i32 = 17;
/// errno EADDRNOTAVAIL: deleting an address that is not there.
const EADDRNOTAVAIL: i32 = 99;

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

/// An IPv4 address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

impl Address {
    /// Whether `ip` is in this address's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len.min(32)))
            .unwrap_or(0);
        u32::from(self.address) & mask == u32::from(ip) & mask
    }
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

    /// Every IPv4 address, on every interface.
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
    pub async fn add(&self, index: u32, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let request = self
            .handle
            .address()
            .add(index, IpAddr::V4(address), prefix_len);
        match request.execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -EEXIST => Ok(()),
            other => other.map_err(to_io),
        }
    }

    /// Removes `address` from the interface; not there is fine.
    pub async fn remove(&self, index: u32, address: Ipv4Addr) -> io::Result<()> {
        let found: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(IpAddr::V4(address))
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
    if message.header.family != AddressFamily::Inet {
        return None;
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on
    // point-to-point links); fall back to IFA_ADDRESS when absent.
    let mut local = None;
    let mut any = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(IpAddr::V4(a)) => local = Some(*a),
            AddressAttribute::Address(IpAddr::V4(a)) => any = Some(*a),
            _ => {}
        }
    }
    Some(Address {
        index: message.header.index,
        address: local.or(any)?,
        prefix_len: message.header.prefix_len,
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

    #[test]
    fn subnet_membership() {
        let a = Address {
            index: 1,
            address: Ipv4Addr::new(192, 0, 2, 10),
            prefix_len: 24,
        };
        assert!(a.contains(Ipv4Addr::new(192, 0, 2, 200)));
        assert!(!a.contains(Ipv4Addr::new(192, 0, 3, 1)));
        let host = Address {
            prefix_len: 32,
            ..a
        };
        assert!(host.contains(a.address));
        assert!(!host.contains(Ipv4Addr::new(192, 0, 2, 11)));
        let all = Address { prefix_len: 0, ..a };
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
