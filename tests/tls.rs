//! TLS over real sockets with real peers from Debian: `openssl s_client` and
//! `curl` against fairlead's termination (SNI, versions, ALPN h2), and a
//! rustls client for the decrypted tcp-mode relay.

mod common;
#[path = "tls/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;

use common::*;
use fairlead_dataplane::config::{
    BackendTls, Balance, Certificate, FrontendTls, Mode, Route, TlsMode,
};
use pki::{Pki, arg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// A CA with `a.example.com` (the default) and `*.b.example.com` certificates.
fn site_pki() -> Pki {
    let pki = Pki::new("fairlead test CA");
    pki.issue("a", "a.example.com", &["a.example.com"]);
    pki.issue("b", "b.example.com", &["b.example.com", "*.b.example.com"]);
    pki
}

fn certificate(pki: &Pki, file: &str) -> Certificate {
    Certificate {
        source: format!("file {file}"),
        cert_pem: pki.read(&format!("{file}.crt")),
        key_pem: pki.read(&format!("{file}.key")),
    }
}

/// An engine with a TLS-terminating frontend in `mode` in front of `demo`.
async fn terminating(
    pki: &Pki,
    mode: Mode,
    demo: &Demo,
    min_version: &str,
) -> (fairlead_dataplane::Engine, SocketAddr) {
    let mut fe = frontend("fe", mode, "be");
    let mut tls = FrontendTls::terminate(vec![certificate(pki, "a"), certificate(pki, "b")]);
    tls.min_version = min_version.into();
    fe.tls = Some(tls);
    let addr = fe.bind;
    let be = backend("be", mode, Balance::Roundrobin, vec![demo.server("s")]);
    (serve(fe, be).await, addr)
}

/// Runs a command with a time limit; (success, stdout + stderr).
async fn run(program: &str, args: &[String]) -> (bool, String) {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(STEP, child)
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} timed out"))
        .expect("command runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `openssl s_client` to `addr` with `extra` flags; (handshake ok, output).
async fn s_client(addr: SocketAddr, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["s_client".to_string(), "-connect".into(), addr.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    run("openssl", &args).await
}

/// The leaf certificate's subject printed by s_client, spaces removed.
fn subject(output: &str) -> String {
    output
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .replace(' ', "")
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_the_certificate_and_unknown_names_get_the_default() {
    let pki = site_pki();
    let demo = Demo::http("s");
    let (_e, addr) = terminating(&pki, Mode::Http, &demo, "1.2").await;
    for (sni, expected) in [
        ("a.example.com", "subject=CN=a.example.com"),
        ("b.example.com", "subject=CN=b.example.com"),
        ("x.b.example.com", "subject=CN=b.example.com"),
        ("unknown.test", "subject=CN=a.example.com"),
    ] {
        let (ok, out) = s_client(addr, &["-servername", sni]).await;
        assert!(ok, "{sni}: {out}");
        assert_eq!(subject(&out), expected, "{sni}");
    }
    let (ok, out) = s_client(addr, &["-noservername"]).await;
    assert!(ok, "{out}");
    assert_eq!(subject(&out), "subject=CN=a.example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn old_versions_are_refused() {
    let pki = site_pki();
    let demo = Demo::http("s");
    let (_e12, addr12) = terminating(&pki, Mode::Http, &demo, "1.2").await;
    let (_e13, addr13) = terminating(&pki, Mode::Http, &demo, "1.3").await;
    let tls11 = ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"];
    let (ok, out) = s_client(addr12, &tls11).await;
    assert!(!ok, "TLS 1.1 handshake succeeded: {out}");
    let (ok, out) = s_client(addr12, &["-tls1_2"]).await;
    assert!(ok && out.contains("New, TLSv1.2"), "{out}");
    let (ok, out) = s_client(addr13, &["-tls1_2"]).await;
    assert!(!ok, "TLS 1.2 accepted with minimum 1.3: {out}");
    let (ok, out) = s_client(addr13, &["-tls1_3"]).await;
    assert!(ok && out.contains("New, TLSv1.3"), "{out}");
}

/// curl to `https://a.example.com:PORT{path}` resolved to `addr`, trusting the CA.
async fn curl(pki: &Pki, addr: SocketAddr, version: &str, path: &str) -> (bool, String) {
    let host = format!("a.example.com:{}", addr.port());
    let args = [
        "-sS",
        version,
        "--cacert",
        &arg(&pki.path("ca.crt")),
        "--resolve",
        &format!("{host}:127.0.0.1"),
        "-w",
        "\n%{http_version}",
        &format!("https://{host}{path}"),
    ];
    run("curl", &args.map(String::from)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn alpn_h2_and_http1_work_end_to_end() {
    let pki = site_pki();
    let demo = Demo::http("s");
    let (_e, addr) = terminating(&pki, Mode::Http, &demo, "1.2").await;
    let (ok, out) = curl(&pki, addr, "--http2", "/").await;
    assert!(ok, "{out}");
    assert_eq!(out, "s\n\n2");
    let (ok, out) = curl(&pki, addr, "--http1.1", "/").await;
    assert!(ok, "{out}");
    assert_eq!(out, "s\n\n1.1");
    // An HTTP/2 request reaches the server as HTTP/1.1 with the right Host.
    let (ok, out) = curl(&pki, addr, "--http2", "/headers").await;
    assert!(ok, "{out}");
    let host = format!("host: a.example.com:{}", addr.port());
    assert!(out.to_ascii_lowercase().contains(&host), "{out}");
    assert!(out.ends_with("\n2"), "{out}");
}

/// h2spec 3.5 #2 (issue 12, item 12): when ALPN chose h2, a connection that
/// does not start with the HTTP/2 preface is closed, never read as HTTP/1.1.
#[tokio::test(flavor = "multi_thread")]
async fn alpn_h2_without_the_preface_is_closed() {
    let pki = site_pki();
    let demo = Demo::http("s");
    let (_e, addr) = terminating(&pki, Mode::Http, &demo, "1.2").await;
    let mut config = (*client_config(&pki)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("a.example.com").unwrap();
    let mut tls = tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("HTTP/1.1"), "answered as HTTP/1.1: {text}");
    assert!(closed.is_ok(), "still open after 5 s; got {text:?}");
}

/// A rustls client trusting the PKI's CA.
fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path("ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_mode_relays_the_decrypted_stream() {
    let pki = site_pki();
    let demo = Demo::start("t", "tcp");
    let (_e, addr) = terminating(&pki, Mode::Tcp, &demo, "1.2").await;
    let connector = tokio_rustls::TlsConnector::from(client_config(&pki));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("b.example.com").unwrap();
    let mut tls = tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .unwrap()
        .expect("handshake with the b.example.com certificate verifies");
    tls.write_all(b"hello\n").await.unwrap();
    tls.shutdown().await.unwrap();
    let mut got = String::new();
    tokio::time::timeout(STEP, tls.read_to_string(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "t\nhello\nbye t\n");
}

/// `openssl s_server -www` with `{file}.crt` of `pki`, extra flags, on a free
/// port; killed on drop.
struct SServer {
    addr: SocketAddr,
    _child: tokio::process::Child,
}

impl SServer {
    async fn start(pki: &Pki, file: &str, extra: &[String]) -> SServer {
        let addr = free_addr();
        let mut args = vec![
            "s_server".to_string(),
            "-www".into(),
            "-accept".into(),
            addr.to_string(),
            "-cert".into(),
            arg(&pki.path(&format!("{file}.crt"))),
            "-key".into(),
            arg(&pki.path(&format!("{file}.key"))),
        ];
        args.extend(extra.iter().cloned());
        let child = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("openssl s_server starts");
        let deadline = tokio::time::Instant::now() + STEP;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "s_server did not listen"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        SServer {
            addr,
            _child: child,
        }
    }

    fn server(&self, name: &str) -> fairlead_dataplane::config::Server {
        fairlead_dataplane::config::Server::new(name, "127.0.0.1", self.addr.port())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_delivers_each_servers_own_certificate() {
    let pki = Pki::new("passthrough test CA");
    pki.issue("pass", "srv.pass.test", &["*.pass.test"]);
    pki.issue("other", "default.test", &["default.test"]);
    let pass = SServer::start(&pki, "pass", &[]).await;
    let other = SServer::start(&pki, "other", &[]).await;
    let mut fe = frontend("fe", Mode::Tcp, "other");
    fe.tls = Some(FrontendTls {
        mode: TlsMode::Passthrough,
        ..FrontendTls::terminate(Vec::new())
    });
    fe.routes = vec![Route {
        sni: Some("*.pass.test".into()),
        backend: "pass".into(),
        ..Route::default()
    }];
    let addr = fe.bind;
    let backends = vec![
        backend(
            "pass",
            Mode::Tcp,
            Balance::Roundrobin,
            vec![pass.server("p")],
        ),
        backend(
            "other",
            Mode::Tcp,
            Balance::Roundrobin,
            vec![other.server("o")],
        ),
    ];
    let _e = engine(config(1, vec![fe], backends)).await;
    for (sni, expected) in [
        ("x.pass.test", "subject=CN=srv.pass.test"),
        ("unknown.test", "subject=CN=default.test"),
    ] {
        let (ok, out) = s_client(addr, &["-servername", sni]).await;
        assert!(ok, "{sni}: {out}");
        assert_eq!(subject(&out), expected, "{sni}");
    }
    // The session is the server's own: curl gets s_server's status page.
    let ca = arg(&pki.path("ca.crt"));
    let host = format!("www.pass.test:{}", addr.port());
    let args = [
        "-sS",
        "--cacert",
        &ca,
        "--resolve",
        &format!("{host}:127.0.0.1"),
        &format!("https://{host}/"),
    ];
    let (ok, out) = run("curl", &args.map(String::from)).await;
    assert!(ok && out.contains("s_server"), "{out}");
    // A client that does not speak TLS is closed.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(STEP, plain.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?}");
}

/// A plain http frontend in front of `server` over TLS configured by `tls`.
async fn reencrypting(
    server: fairlead_dataplane::config::Server,
    tls: BackendTls,
) -> (fairlead_dataplane::Engine, SocketAddr) {
    let fe = frontend("fe", Mode::Http, "be");
    let addr = fe.bind;
    let mut be = backend("be", Mode::Http, Balance::Roundrobin, vec![server]);
    be.retries = 0;
    be.tls = Some(tls);
    (serve(fe, be).await, addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_mtls_needs_the_right_ca_and_a_client_certificate() {
    let pki = Pki::new("backend test CA");
    pki.issue("srv", "backend.test", &["backend.test"]);
    pki.issue("client", "fairlead client", &["client.test"]);
    let wrong = Pki::new("some other CA");
    let verify_clients = ["-Verify", "1", "-verify_return_error", "-CAfile"]
        .map(String::from)
        .to_vec();
    let mut flags = verify_clients.clone();
    flags.push(arg(&pki.path("ca.crt")));
    let s = SServer::start(&pki, "srv", &flags).await;
    let good = BackendTls {
        ca_pem: Some(pki.read("ca.crt")),
        client_cert_pem: Some(pki.read("client.crt")),
        client_key_pem: Some(pki.read("client.key")),
        server_name: Some("backend.test".into()),
        insecure_skip_verify: false,
    };
    let (_e, addr) = reencrypting(s.server("s"), good.clone()).await;
    let resp = get(addr, "/").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("s_server"), "{}", resp.text());

    let wrong_ca = BackendTls {
        ca_pem: Some(wrong.read("ca.crt")),
        ..good.clone()
    };
    let (_e2, addr) = reencrypting(s.server("s"), wrong_ca).await;
    let status = get(addr, "/").await.status;
    assert!(matches!(status, 502 | 503), "wrong CA gave {status}");

    let no_client_cert = BackendTls {
        client_cert_pem: None,
        client_key_pem: None,
        ..good
    };
    let (_e3, addr) = reencrypting(s.server("s"), no_client_cert).await;
    let status = get(addr, "/").await.status;
    assert!(
        matches!(status, 502 | 503),
        "no client certificate gave {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_mode_relays_to_a_server_over_tls() {
    let pki = Pki::new("tcp backend test CA");
    pki.issue("srv", "backend.test", &["backend.test"]);
    let wrong = Pki::new("another CA");
    let s = SServer::start(&pki, "srv", &[]).await;
    let relay = |ca: &Pki| {
        let fe = frontend("fe", Mode::Tcp, "be");
        let addr = fe.bind;
        let mut be = backend("be", Mode::Tcp, Balance::Roundrobin, vec![s.server("s")]);
        be.retries = 0;
        be.tls = Some(BackendTls {
            ca_pem: Some(ca.read("ca.crt")),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: Some("backend.test".into()),
            insecure_skip_verify: false,
        });
        (fe, be, addr)
    };
    // The client speaks plain HTTP/1.0; fairlead carries it to s_server over TLS.
    let ask = |addr: SocketAddr| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(STEP, c.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "no end of stream in time");
        String::from_utf8_lossy(&got).into_owned()
    };
    let (fe, be, addr) = relay(&pki);
    let _e = serve(fe, be).await;
    let page = ask(addr).await;
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(page.contains("s_server"), "{page}");

    // A server the CA does not vouch for: the session closes with nothing relayed.
    let (fe, be, addr) = relay(&wrong);
    let _e2 = serve(fe, be).await;
    assert_eq!(ask(addr).await, "");
}

/// Twenty connections that hold every slot of `addr` (maxConnections 20)
/// without ever completing a TLS handshake: silent ones and ones that send
/// half a ClientHello. Returned to be kept open.
async fn stall_twenty(addr: SocketAddr, silent: usize) -> Vec<tokio::net::TcpStream> {
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i >= silent {
            // A handshake record header announcing 512 bytes, then one of them.
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .unwrap();
        }
        stalled.push(s);
    }
    stalled
}

/// True when every stream in `stalled` was closed by the proxy.
async fn all_closed(stalled: &mut [tokio::net::TcpStream]) -> bool {
    for s in stalled {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(STEP, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            _ => return false,
        }
    }
    true
}

/// Stalled TLS handshakes and TLS sessions that send nothing are closed after
/// the client timeout (issue 12, item 1): twenty of them against
/// maxConnections 20 lock a normal client out only until then.
#[tokio::test(flavor = "multi_thread")]
async fn stalled_handshakes_and_idle_tls_sessions_free_their_slots() {
    let pki = site_pki();
    let demo = Demo::start("t", "tcp");
    let mut fe = frontend("fe", Mode::Tcp, "be");
    fe.tls = Some(FrontendTls::terminate(vec![certificate(&pki, "a")]));
    fe.client_timeout_ms = 1000;
    fe.max_connections = 20;
    let addr = fe.bind;
    let be = backend("be", Mode::Tcp, Balance::Roundrobin, vec![demo.server("s")]);
    let _e = serve(fe, be).await;
    let connector = tokio_rustls::TlsConnector::from(client_config(&pki));
    let name = rustls_pki_types::ServerName::try_from("a.example.com").unwrap();
    let mut stalled = stall_twenty(addr, 7).await;
    // Six of the slots go to handshakes that complete, then nothing is sent.
    stalled.truncate(14);
    let mut idle = Vec::new();
    for _ in 0..6 {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.push(
            connector
                .connect(name.clone(), tcp)
                .await
                .expect("handshake"),
        );
    }
    let started = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let handshake = connector.connect(name.clone(), tcp);
    let mut tls = tokio::time::timeout(STEP, handshake)
        .await
        .unwrap()
        .unwrap();
    let mut line = [0u8; 2];
    tls.read_exact(&mut line).await.unwrap();
    let waited = started.elapsed();
    println!("a normal client was served after {waited:?}");
    assert_eq!(&line, b"t\n");
    assert!(
        waited >= std::time::Duration::from_millis(500),
        "served at once: slots not full?"
    );
    assert!(
        waited < std::time::Duration::from_secs(4),
        "locked out for {waited:?}"
    );
    assert!(
        all_closed(&mut stalled).await,
        "a stalled handshake is still open"
    );
    for mut tls in idle {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(STEP, tls.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "an idle TLS session is still open");
    }
}

/// The same against an HTTP frontend (the handshake phase), and against TLS
/// passthrough (the wait for a ClientHello).
#[tokio::test(flavor = "multi_thread")]
async fn stalled_handshakes_time_out_on_http_and_passthrough_frontends() {
    let pki = site_pki();
    let demo = Demo::http("h");
    let mut fe = frontend("fe", Mode::Http, "be");
    fe.tls = Some(FrontendTls::terminate(vec![certificate(&pki, "a")]));
    fe.client_timeout_ms = 1000;
    fe.max_connections = 20;
    let http_addr = fe.bind;
    let be = backend(
        "be",
        Mode::Http,
        Balance::Roundrobin,
        vec![demo.server("s")],
    );
    pki.issue("pass", "srv.pass.test", &["srv.pass.test"]);
    let pass = SServer::start(&pki, "pass", &[]).await;
    let mut pfe = frontend("pass", Mode::Tcp, "pass");
    pfe.tls = Some(FrontendTls {
        mode: TlsMode::Passthrough,
        ..FrontendTls::terminate(Vec::new())
    });
    pfe.client_timeout_ms = 1000;
    pfe.max_connections = 20;
    let pass_addr = pfe.bind;
    let pbe = backend(
        "pass",
        Mode::Tcp,
        Balance::Roundrobin,
        vec![pass.server("s")],
    );
    let _e = engine(config(1, vec![fe, pfe], vec![be, pbe])).await;
    let connector = tokio_rustls::TlsConnector::from(client_config(&pki));
    for (addr, name) in [(http_addr, "a.example.com"), (pass_addr, "srv.pass.test")] {
        let mut stalled = stall_twenty(addr, 10).await;
        let started = std::time::Instant::now();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from(name).unwrap();
        let mut tls = tokio::time::timeout(STEP, connector.connect(name, tcp))
            .await
            .unwrap()
            .expect("handshake once a slot is free");
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(STEP, tls.read_to_end(&mut answer)).await;
        let waited = started.elapsed();
        println!("{addr}: a normal client was served after {waited:?}");
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1."),
            "{answer:?}"
        );
        assert!(
            waited >= std::time::Duration::from_millis(500),
            "served at once"
        );
        assert!(
            waited < std::time::Duration::from_secs(4),
            "locked out for {waited:?}"
        );
        assert!(
            all_closed(&mut stalled).await,
            "a stalled connection is still open"
        );
    }
}

/// A TLS-terminating http frontend with `timeouts` applied, in front of `demo`.
async fn terminating_with(
    pki: &Pki,
    demo: &Demo,
    timeouts: impl FnOnce(&mut fairlead_dataplane::config::Frontend),
) -> (fairlead_dataplane::Engine, SocketAddr) {
    let mut fe = frontend("fe", Mode::Http, "be");
    fe.tls = Some(FrontendTls::terminate(vec![certificate(pki, "a")]));
    timeouts(&mut fe);
    let addr = fe.bind;
    let be = backend(
        "be",
        Mode::Http,
        Balance::Roundrobin,
        vec![demo.server("s")],
    );
    (serve(fe, be).await, addr)
}

/// A TLS connection to `addr` with these ALPN protocols.
async fn tls_connect(
    pki: &Pki,
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = (*client_config(pki)).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("a.example.com").unwrap();
    tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap()
}

/// Issue 12 #1: twenty clients that never finish their headers hold all
/// twenty connection slots only until the http-request timeout; each gets
/// 408, and a normal `curl -k` is served meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn stalled_tls_clients_get_408_and_do_not_lock_out_others() {
    let pki = site_pki();
    let demo = Demo::http("s");
    let (_e, addr) = terminating_with(&pki, &demo, |fe| {
        fe.max_connections = 20;
        fe.http_request_timeout_ms = Some(800);
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut tls = tls_connect(&pki, addr, &[b"http/1.1"]).await;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Slow: ")
            .await
            .unwrap();
        stalled.push(tls);
    }
    let started = std::time::Instant::now();
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let args = ["-sk", "--max-time", "8", url.as_str()].map(String::from);
    let (ok, out) = run("curl", &args).await;
    assert!(ok && out == "s\n", "curl: {out}");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(4),
        "curl served after {took:?}"
    );
    for mut tls in stalled {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(STEP, tls.read_to_end(&mut got)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
    }
}

/// Issue 12 #2: an HTTP/2 connection with no open stream is closed after the
/// keep-alive timeout.
#[tokio::test(flavor = "multi_thread")]
async fn idle_h2_connection_is_closed() {
    let pki = site_pki();
    let demo = Demo::http("s");
    let (_e, addr) = terminating_with(&pki, &demo, |fe| {
        fe.http_keep_alive_timeout_ms = Some(500);
    })
    .await;
    let mut tls = tls_connect(&pki, addr, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let started = std::time::Instant::now();
    // The preface and an empty SETTINGS frame, then nothing.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(STEP, tls.read_to_end(&mut got)).await;
    let took = started.elapsed();
    assert!(closed.is_ok(), "still open after {took:?}");
    assert!(
        took >= std::time::Duration::from_millis(450) && took < std::time::Duration::from_secs(3),
        "closed after {took:?}"
    );
    // A GOAWAY frame (type 7) came before the close.
    assert!(
        got.windows(4).any(|w| w[3] == 7 && w[..3] == [0, 0, 8]),
        "{got:?}"
    );
}

/// A TLS-terminating http frontend whose one server refuses connections, so
/// every request gets fairlead's 503 at once; `fe` adjusts the frontend.
async fn answering_at_once(
    pki: &Pki,
    fe: impl FnOnce(&mut fairlead_dataplane::config::Frontend),
) -> (fairlead_dataplane::Engine, SocketAddr) {
    let mut front = frontend("fe", Mode::Http, "be");
    front.tls = Some(FrontendTls::terminate(vec![certificate(pki, "a")]));
    fe(&mut front);
    let addr = front.bind;
    let be = backend(
        "be",
        Mode::Http,
        Balance::Roundrobin,
        vec![dead_server("s")],
    );
    (serve(front, be).await, addr)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// One HTTP/2 frame: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads one frame (at most STEP), acknowledging the server's SETTINGS.
async fn read_frame(tls: &mut Tls) -> Frame {
    let mut head = [0u8; 9];
    tokio::time::timeout(STEP, tls.read_exact(&mut head))
        .await
        .expect("a frame within STEP")
        .expect("connection open");
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    tls.read_exact(&mut payload).await.unwrap();
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    if head[3] == 4 && head[4] & 1 == 0 {
        tls.write_all(&frame(4, 1, 0, &[])).await.unwrap();
    }
    (head[3], head[4], stream, payload)
}

/// Opens stream 1 with a GET whose request stream stays open (no
/// END_STREAM) and reads until fairlead's whole 503 response came.
async fn early_response(pki: &Pki, addr: SocketAddr) -> Tls {
    let mut tls = tls_connect(pki, addr, &[b"h2"]).await;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    // HPACK: :method GET, :scheme https, :path /, :authority a.example.com.
    let mut block = vec![0x82, 0x87, 0x84, 0x01, 13];
    block.extend_from_slice(b"a.example.com");
    out.extend(frame(1, 4, 1, &block));
    tls.write_all(&out).await.unwrap();
    for _ in 0..50 {
        let (kind, flags, stream, _) = read_frame(&mut tls).await;
        assert_ne!((kind, stream), (3, 1), "stream 1 reset before its response");
        if (kind, stream) == (0, 1) && flags & 1 == 1 {
            return tls;
        }
    }
    panic!("no end of the response in 50 frames");
}

/// Reads frames until a RST_STREAM on stream 1 (its error code and when) or
/// a PING ACK (None).
async fn reset_or_pong(tls: &mut Tls) -> Option<(u32, std::time::Instant)> {
    for _ in 0..200 {
        match read_frame(tls).await {
            (3, _, 1, code) => {
                let code = u32::from_be_bytes(code[..4].try_into().unwrap());
                return Some((code, std::time::Instant::now()));
            }
            (6, 1, 0, _) => return None,
            _ => {}
        }
    }
    panic!("neither RST_STREAM nor PING ACK in 200 frames");
}

/// When fairlead answers before the HTTP/2 request stream ended, it keeps
/// reading it as HAProxy does: the rest of the body is taken, no reset.
#[tokio::test(flavor = "multi_thread")]
async fn h2_request_body_after_the_response_is_read() {
    let pki = site_pki();
    let (_e, addr) = answering_at_once(&pki, |_| {}).await;
    let mut tls = early_response(&pki, addr).await;
    let mut out = frame(0, 0, 1, &[b'x'; 1000]);
    out.extend(frame(0, 1, 1, &[b'y'; 1000]));
    out.extend(frame(6, 0, 0, b"drained?"));
    tls.write_all(&out).await.unwrap();
    assert_eq!(reset_or_pong(&mut tls).await, None, "stream 1 was reset");
}

/// The reading after the response is bounded: past 1 MiB of DATA, or after
/// the client timeout, the stream is reset (NO_ERROR).
#[tokio::test(flavor = "multi_thread")]
async fn h2_request_body_after_the_response_is_bounded() {
    let pki = site_pki();
    let (_e, addr) = answering_at_once(&pki, |_| {}).await;
    let mut tls = early_response(&pki, addr).await;
    // 1 MiB of DATA: within the 1 MiB windows hyper grants, over the bound
    // with the frame headers counted.
    for _ in 0..64 {
        tls.write_all(&frame(0, 0, 1, &[b'x'; 16384]))
            .await
            .unwrap();
    }
    // No PING: it would be answered before the body is read; the reset
    // comes long before the 60 s client timeout.
    let reset = reset_or_pong(&mut tls).await.map(|(code, _)| code);
    assert_eq!(reset, Some(0), "no NO_ERROR reset after 1 MiB");

    let (_e, addr) = answering_at_once(&pki, |fe| fe.client_timeout_ms = 600).await;
    let mut tls = early_response(&pki, addr).await;
    let started = std::time::Instant::now();
    let (code, at) = reset_or_pong(&mut tls)
        .await
        .expect("a reset, no PING sent");
    let took = at - started;
    assert_eq!(code, 0);
    assert!(
        took >= std::time::Duration::from_millis(500) && took < std::time::Duration::from_secs(4),
        "reset after {took:?}"
    );
}
