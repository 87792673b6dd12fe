//! Certificate choice and config errors, with throwaway certificates from
//! `testdata/` (a CA, `a.example.com`, and `*.b.example.com` + `b.example.com`).

use std::sync::Arc;

use super::*;
use crate::config::{Certificate, Mode};

const A_CRT: &str = include_str!("testdata/a.crt");
const A_KEY: &str = include_str!("testdata/a.key");
const B_CRT: &str = include_str!("testdata/b.crt");
const B_KEY: &str = include_str!("testdata/b.key");

fn cert(cert_pem: &str, key_pem: &str) -> Certificate {
    Certificate {
        source: "Secret default/site".into(),
        cert_pem: cert_pem.into(),
        key_pem: key_pem.into(),
    }
}

fn frontend(certificates: Vec<Certificate>) -> (Frontend, FrontendTls) {
    let fe = Frontend::new(
        "default/https",
        Mode::Http,
        "127.0.0.1:8443".parse().unwrap(),
    );
    (fe, FrontendTls::terminate(certificates))
}

#[test]
fn sni_picks_exact_then_wildcard_then_default() {
    let provider = provider();
    let a = certs::certified_key(A_CRT, A_KEY, &provider).unwrap();
    let b = certs::certified_key(B_CRT, B_KEY, &provider).unwrap();
    let mut resolver = SniResolver::default();
    resolver.add(a.clone());
    resolver.add(b.clone());
    let picked = |sni| resolver.pick(sni).unwrap();
    assert!(Arc::ptr_eq(&picked(Some("a.example.com")), &a));
    assert!(Arc::ptr_eq(&picked(Some("A.Example.COM")), &a));
    assert!(Arc::ptr_eq(&picked(Some("b.example.com")), &b));
    assert!(Arc::ptr_eq(&picked(Some("x.b.example.com")), &b));
    // A wildcard covers one label only.
    assert!(Arc::ptr_eq(&picked(Some("y.x.b.example.com")), &a));
    assert!(Arc::ptr_eq(&picked(Some("unknown.test")), &a));
    assert!(Arc::ptr_eq(&picked(None), &a));
}

#[test]
fn dns_names_come_from_the_san_list() {
    let chain = certs::parse_chain(B_CRT).unwrap();
    assert_eq!(
        certs::dns_names(&chain[0]),
        vec!["*.b.example.com".to_string(), "b.example.com".to_string()]
    );
}

#[test]
fn mismatched_key_names_frontend_and_certificate() {
    let (fe, tls) = frontend(vec![cert(A_CRT, A_KEY), cert(A_CRT, B_KEY)]);
    let err = Terminator::build(&fe, &tls).unwrap_err().to_string();
    assert!(err.contains("frontend default/https"), "{err}");
    assert!(
        err.contains("tls.certificates[1] (Secret default/site)"),
        "{err}"
    );
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn builds_with_each_min_version() {
    for v in ["1.2", "1.3"] {
        let (fe, mut tls) = frontend(vec![cert(A_CRT, A_KEY)]);
        tls.min_version = v.into();
        assert!(Terminator::build(&fe, &tls).is_ok(), "{v}");
    }
}
