//! Raw IPv4 sockets for protocol 112: one sends (bound to the interface's
//! primary address, TTL 255), one receives every VRRP datagram that reaches
//! the interface, header included.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

use crate::packet::{IP_PROTOCOL, MULTICAST_GROUP};

/// RFC 9568 §5.1.1.3: advertisements are sent, and accepted, with TTL 255 only.
pub const TTL: u32 = 255;

/// Largest datagram read: an IPv4 header with options and 255 addresses.
const MAX_DATAGRAM: usize = 60 + 8 + 255 * 4 + 8;

fn raw_socket(interface: &str) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::IPV4,
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
}

impl Sender {
    /// A sender on `interface` whose datagrams come from `source`.
    pub fn open(interface: &str, source: Ipv4Addr) -> io::Result<Sender> {
        let socket = raw_socket(interface)?;
        socket.set_ttl_v4(TTL)?;
        socket.set_multicast_ttl_v4(TTL)?;
        socket.set_multicast_loop_v4(false)?;
        socket.set_multicast_if_v4(&source)?;
        socket.bind(&SockAddr::from(SocketAddrV4::new(source, 0)))?;
        Ok(Sender { socket })
    }

    /// Sends one VRRP message to `destination` (the group, or a unicast peer).
    pub fn send(&self, message: &[u8], destination: Ipv4Addr) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV4::new(destination, 0));
        self.socket.send_to(message, &to).map(drop)
    }
}

/// Receives every VRRP datagram arriving on one interface. The raw socket is
/// driven through tokio's datagram socket type: `recv` is the same system call.
pub struct Receiver {
    socket: UdpSocket,
    buffer: Vec<u8>,
}

impl Receiver {
    /// A receiver on `interface` (index `index`); `multicast` joins 224.0.0.18 there.
    pub fn open(interface: &str, index: u32, multicast: bool) -> io::Result<Receiver> {
        let socket = raw_socket(interface)?;
        if multicast {
            socket.join_multicast_v4_n(&MULTICAST_GROUP, &InterfaceIndexOrAddress::Index(index))?;
        }
        Ok(Receiver {
            socket: UdpSocket::from_std(std::net::UdpSocket::from(socket))?,
            buffer: vec![0; MAX_DATAGRAM],
        })
    }

    /// The next datagram, IPv4 header included (longer ones are truncated).
    pub async fn recv(&mut self) -> io::Result<&[u8]> {
        let len = self.socket.recv(&mut self.buffer).await?;
        Ok(&self.buffer[..len])
    }
}
