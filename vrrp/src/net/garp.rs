//! Gratuitous ARP: on becoming master, the new holder of an address tells the
//! link, so switches and neighbours move their entries to its MAC at once.
//! Like Keepalived's default (no `use_vmac`), the interface's own MAC is used.

use std::net::Ipv4Addr;

/// Length of an Ethernet frame carrying an ARP packet (without padding; the
/// NIC pads it to 60 bytes).
pub const FRAME_LEN: usize = 42;

/// A broadcast gratuitous ARP request for `address` from `mac`: sender and
/// target protocol address are both `address`, target MAC zero (RFC 5227 §3).
pub fn frame(mac: [u8; 6], address: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]); // destination: broadcast
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // EtherType ARP
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // operation: request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&address.octets());
    // 32..38: target MAC, zero.
    f[38..42].copy_from_slice(&address.octets());
    f
}

/// A packet socket on one interface that sends frames and is handed none:
/// opened for protocol 0, so the kernel queues no incoming frame on it. Opened
/// once per speaker, so a new master's first gratuitous ARP leaves at once.
pub struct Socket(Box<dyn pnet_datalink::DataLinkSender>);

impl Socket {
    pub fn open(index: u32, name: &str, mac: [u8; 6]) -> std::io::Result<Socket> {
        let socket = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, None)?;
        let interface = pnet_datalink::NetworkInterface {
            name: name.to_owned(),
            description: String::new(),
            index,
            mac: Some(pnet_datalink::MacAddr::from(mac)),
            ips: Vec::new(),
            flags: 0,
        };
        let config = pnet_datalink::Config {
            read_buffer_size: 0,
            write_buffer_size: 0,
            write_timeout: Some(std::time::Duration::from_millis(20)),
            // Binds the socket to the interface with protocol 0: send only.
            channel_type: pnet_datalink::ChannelType::Layer3(0),
            socket_fd: Some(std::os::fd::IntoRawFd::into_raw_fd(socket)),
            ..Default::default()
        };
        match pnet_datalink::channel(&interface, config)? {
            pnet_datalink::Channel::Ethernet(tx, _rx) => Ok(Socket(tx)),
            _ => Err(std::io::Error::other("not an Ethernet interface")),
        }
    }

    pub fn send(&mut self, frames: &[[u8; FRAME_LEN]]) -> std::io::Result<()> {
        for f in frames {
            (self.0.send_to(f, None))
                .unwrap_or_else(|| Err(std::io::Error::other("packet socket refused the frame")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_request_layout() {
        let mac = [0x02, 0, 0, 0, 0, 0x0a];
        let f = frame(mac, Ipv4Addr::new(192, 0, 2, 100));
        let expected: [u8; FRAME_LEN] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x0a, 0x08, 0x06, 0, 1, 0x08, 0, 6,
            4, 0, 1, 2, 0, 0, 0, 0, 0x0a, 192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 192, 0, 2, 100,
        ];
        assert_eq!(f, expected);
    }
}
