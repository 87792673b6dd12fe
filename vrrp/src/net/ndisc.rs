//! Unsolicited neighbour advertisements (RFC 4861 §7.2.6), IPv6's gratuitous
//! ARP: the new holder of an address tells every node on the link (ff02::1)
//! its MAC for it, with the override flag so existing entries move at once.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket as RawSocket, Type};

/// Length of a neighbour advertisement with a target link-layer address option.
pub const MESSAGE_LEN: usize = 32;

/// All-nodes multicast, where unsolicited advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Neighbour discovery messages are sent, and accepted, with hop limit 255 only.
const HOP_LIMIT: u32 = 255;

/// The ICMPv6 neighbour advertisement for `target` at `mac`: type 136, flags
/// Override only (not a router, not solicited), and the target link-layer
/// address option. The checksum is left zero: the kernel fills it in.
pub fn message(mac: [u8; 6], target: Ipv6Addr) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m[0] = 136; // type: neighbour advertisement
    // 1: code 0; 2..4: checksum
    m[4] = 0x20; // flags: O
    m[8..24].copy_from_slice(&target.octets());
    m[24] = 2; // option: target link-layer address
    m[25] = 1; // option length, in units of 8 bytes
    m[26..32].copy_from_slice(&mac);
    m
}

/// A raw ICMPv6 socket on one interface that sends from its link-local address.
pub struct Socket {
    socket: RawSocket,
    index: u32,
}

impl Socket {
    pub fn open(interface: &str, index: u32, source: IpAddr) -> io::Result<Socket> {
        let socket = RawSocket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_multicast_hops_v6(HOP_LIMIT)?;
        socket.set_unicast_hops_v6(HOP_LIMIT)?;
        socket.set_multicast_if_v6(index)?;
        socket.set_multicast_loop_v6(false)?;
        // Sends never wait: a full buffer drops this round, as for ARP.
        socket.set_nonblocking(true)?;
        if let IpAddr::V6(source) = source {
            socket.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, index)))?;
        }
        Ok(Socket { socket, index })
    }

    pub fn send(&mut self, messages: &[[u8; MESSAGE_LEN]]) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.index));
        for m in messages {
            self.socket.send_to(m, &to)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsolicited_advertisement_layout() {
        let mac = [0x02, 0, 0, 0, 0, 0x0a];
        let m = message(mac, "fd00::100".parse().unwrap());
        let mut expected = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
        expected.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0]);
        expected.extend_from_slice(&[2, 1, 0x02, 0, 0, 0, 0, 0x0a]);
        assert_eq!(m.to_vec(), expected);
    }
}
