//! The SNI parser against real ClientHellos written by rustls, truncated,
//! re-fragmented, corrupted and random input.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::*;

/// The bytes a rustls client sends first when connecting to `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[test]
fn reads_the_name_from_a_real_hello() {
    let hello = client_hello("a.example.com");
    assert_eq!(parse(&hello), Hello::Complete(Some("a.example.com".into())));
}

#[test]
fn an_ip_address_sends_no_name() {
    assert_eq!(parse(&client_hello("192.0.2.1")), Hello::Complete(None));
}

#[test]
fn every_prefix_is_incomplete() {
    let hello = client_hello("a.example.com");
    for n in 0..hello.len() {
        assert_eq!(parse(&hello[..n]), Hello::Incomplete, "prefix {n}");
    }
}

#[test]
fn a_hello_split_over_records_is_joined() {
    let hello = client_hello("split.example.com");
    let body = &hello[5..];
    let mut split = Vec::new();
    for part in body.chunks(100) {
        split.extend_from_slice(&[22, 3, 1]);
        split.extend_from_slice(&(part.len() as u16).to_be_bytes());
        split.extend_from_slice(part);
    }
    assert_eq!(
        parse(&split),
        Hello::Complete(Some("split.example.com".into()))
    );
    for n in 0..split.len() {
        assert_eq!(parse(&split[..n]), Hello::Incomplete, "prefix {n}");
    }
}

#[test]
fn other_protocols_are_not_tls() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Hello::NotTls);
    assert_eq!(parse(b"SSH-2.0-OpenSSH\r\n"), Hello::NotTls);
    // A handshake record that is not a ClientHello (ServerHello, type 2).
    assert_eq!(parse(&[22, 3, 3, 0, 4, 2, 0, 0, 0]), Hello::NotTls);
    // A ClientHello claiming more than MAX_HELLO.
    assert_eq!(parse(&[22, 3, 3, 0, 4, 1, 1, 0, 0]), Hello::NotTls);
}

#[test]
fn corrupted_and_random_input_never_panics() {
    let hello = client_hello("a.example.com");
    for i in 0..hello.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = hello.clone();
            bad[i] ^= flip;
            let _ = parse(&bad);
        }
    }
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2000 {
        let len = rng.usize(0..600);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        if rng.bool() && bytes.len() > 5 {
            bytes[..3].copy_from_slice(&[22, 3, 1]);
        }
        let _ = parse(&bytes);
    }
}
