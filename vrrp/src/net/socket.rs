//! Raw IP sockets for protocol 112: one sends (bound to the interface's
//! primary address, TTL / hop limit 255), one receives every VRRP datagram
//! that reaches the interface. IPv4 receives the header with the datagram;
//! IPv6 never does, so its hop limit and destination come as control messages.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, setsockopt, sockopt};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::net::ipv4;
use crate::packet::{IP_PROTOCOL, MULTICAST_GROUP, MULTICAST_GROUP_V6};

/// RFC 9568 §5.1.1.3 / §5.1.2.3: advertisements are sent, and accepted, with
/// TTL (IPv4) or hop limit (IPv6) 255 only.
pub const TTL: u32 = 255;

/// Largest datagram read: an IPv4 header with options and 255 addresses, or
/// 255 IPv6 addresses without a header.
const MAX_DATAGRAM: usize = 8 + 255 * 16;

/// Room for the hop limit and packet info control messages.
const CONTROL_LEN: usize = 128;

/// A received VRRP message and what its IP header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// TTL (IPv4) or hop limit (IPv6).
    pub hop_limit: u8,
    pub source: IpAddr,
    pub destination: IpAddr,
    pub payload: &'a [u8],
}

fn raw_socket(interface: &str, ipv6: bool) -> io::Result<Socket> {
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(
        domain,
        Type::RAW,
        Some(Protocol::from(i32::from(IP_PROTOCOL))),
    )?;
    socket.bind_device(Some(interface.as_bytes()))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Sends advertisements from the primary address of one interface.
pub struct Sender {
    socket: Socket,
    index: u32,
}

impl Sender {
    /// A sender on `interface` (index `index`) whose datagrams come from
    /// `source`: an IPv4 address of the interface, or its IPv6 link-local one.
    pub fn open(interface: &str, index: u32, source: IpAddr) -> io::Result<Sender> {
        let socket = raw_socket(interface, source.is_ipv6())?;
        match source {
            IpAddr::V4(v4) => {
                socket.set_ttl_v4(TTL)?;
                socket.set_multicast_ttl_v4(TTL)?;
                socket.set_multicast_loop_v4(false)?;
                socket.set_multicast_if_v4(&v4)?;
            }
            IpAddr::V6(_) => {
                socket.set_unicast_hops_v6(TTL)?;
                socket.set_multicast_hops_v6(TTL)?;
                socket.set_multicast_loop_v6(false)?;
                socket.set_multicast_if_v6(index)?;
            }
        }
        socket.bind(&address(source, index))?;
        Ok(Sender { socket, index })
    }

    /// Sends one VRRP message to `destination` (the group, or a unicast peer).
    pub fn send(&self, message: &[u8], destination: IpAddr) -> io::Result<()> {
        let to = address(destination, self.index);
        self.socket.send_to(message, &to).map(drop)
    }
}

/// `address` as a socket address; IPv6 ones carry the interface as scope, as
/// link-local addresses need.
fn address(address: IpAddr, index: u32) -> SockAddr {
    match address {
        IpAddr::V4(a) => SockAddr::from(SocketAddr::new(a.into(), 0)),
        IpAddr::V6(a) => SockAddr::from(SocketAddrV6::new(a, 0, 0, index)),
    }
}

/// Receives every VRRP datagram arriving on one interface. The raw socket is
/// driven through tokio's datagram socket type: its reads are the same calls.
pub struct Receiver {
    socket: UdpSocket,
    ipv6: bool,
    buffer: Vec<u8>,
    control: Vec<u8>,
}

impl Receiver {
    /// A receiver on `interface` (index `index`) for one family; `multicast`
    /// joins the VRRP group there.
    pub fn open(interface: &str, index: u32, ipv6: bool, multicast: bool) -> io::Result<Receiver> {
        let socket = raw_socket(interface, ipv6)?;
        if ipv6 {
            socket.set_recv_hoplimit_v6(true)?;
            setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
            if multicast {
                socket.join_multicast_v6(&MULTICAST_GROUP_V6, index)?;
            }
        } else if multicast {
            socket.join_multicast_v4_n(&MULTICAST_GROUP, &InterfaceIndexOrAddress::Index(index))?;
        }
        Ok(Receiver {
            socket: UdpSocket::from_std(std::net::UdpSocket::from(socket))?,
            ipv6,
            buffer: vec![0; MAX_DATAGRAM],
            control: vec![0; CONTROL_LEN],
        })
    }

    /// The next datagram: `Ok(None)` when its IP header (or, for IPv6, the
    /// control messages standing for it) is malformed. Longer datagrams are
    /// truncated, and then fail the VRRP length check.
    pub async fn recv(&mut self) -> io::Result<Option<Received<'_>>> {
        if !self.ipv6 {
            let len = self.socket.recv(&mut self.buffer).await?;
            return Ok(ipv4::parse(&self.buffer[..len]).ok());
        }
        let header = loop {
            self.socket.readable().await?;
            let (socket, buffer, control) = (&self.socket, &mut self.buffer, &mut self.control);
            match socket.try_io(Interest::READABLE, || recv_v6(socket, buffer, control)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                read => break read?,
            }
        };
        Ok(
            header.map(|(hop_limit, source, destination, len)| Received {
                hop_limit,
                source: source.into(),
                destination: destination.into(),
                payload: &self.buffer[..len],
            }),
        )
    }
}

/// An IPv6 payload's hop limit, source, destination and length; `None` when
/// a control message is missing.
type V6Header = Option<(u8, Ipv6Addr, Ipv6Addr, usize)>;

fn recv_v6(socket: &UdpSocket, buffer: &mut [u8], control: &mut [u8]) -> io::Result<V6Header> {
    let mut iov = [IoSliceMut::new(buffer)];
    let message = nix::sys::socket::recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(control),
        MsgFlags::empty(),
    )?;
    let mut hop_limit = None;
    let mut destination = None;
    for cmsg in message.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
            _ => {}
        }
    }
    let source = message.address.map(|a| a.ip());
    Ok(match (hop_limit, source, destination) {
        (Some(h), Some(s), Some(d)) => Some((h, s, d, message.bytes)),
        _ => None,
    })
}
