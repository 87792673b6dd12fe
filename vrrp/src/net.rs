//! The VRRP speaker's contact with the network: the raw IP socket that sends
//! and receives advertisements ([`socket`]), the interface's addresses and
//! links over netlink ([`netlink`]), gratuitous ARP ([`garp`]) and unsolicited
//! neighbour advertisements ([`ndisc`]).
//! Linux only; everything here needs CAP_NET_RAW and CAP_NET_ADMIN.

pub mod garp;
pub mod ipv4;
pub mod ndisc;
pub mod netlink;
pub mod socket;
