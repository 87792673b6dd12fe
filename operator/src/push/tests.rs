//! The admin client against a real HTTPS server on loopback, with credentials
//! made by `credentials::generate`: the dataplane's answers, its certificate
//! checked against the CA, the client certificate checked by the server.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use k8s_openapi::ByteString;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::credentials::generate;

type Data = std::collections::BTreeMap<String, ByteString>;

fn text(data: &Data, key: &str) -> String {
    String::from_utf8(data[key].0.clone()).unwrap()
}

/// A fake dataplane admin API with `data`'s certificate, requiring a client
/// certificate from its CA: 422 for a body containing "reject", 409 for
/// "stale", else 200 with the version 7.
async fn serve(data: &Data) -> SocketAddr {
    let certs = CertificateDer::pem_slice_iter(text(data, "tls.crt").as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(text(data, "tls.key").as_bytes()).unwrap();
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(text(data, "ca.crt").as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |request: Request<Incoming>| async move {
                    let path = request.uri().path().to_string();
                    let body = request.into_body().collect().await?.to_bytes();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let (status, answer) = match () {
                            _ if path == "/v1/status" => (200, r#"{"node":"lb-1","version":7,"backends":[{"name":"default/app","servers":[{"name":"s1","address":"10.0.0.1","port":80,"state":"up","lastCheck":{"ok":true,"reason":"HTTP status 200","atUnixMs":1}}]}],"virtualIPs":[{"name":"default/vip1","state":"Master","priority":101,"master":"192.0.2.1","vrid":51}]}"#.to_string()),
                            _ if body.contains("reject") => (422, r#"{"errors":["frontend a: bind 192.0.2.1:80: cannot assign"]}"#.to_string()),
                            _ if body.contains("stale") => (409, r#"{"errors":["older"],"running":9}"#.to_string()),
                            _ => (200, r#"{"version":7}"#.to_string()),
                        };
                    let mut response = Response::new(Full::new(Bytes::from(answer)));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, hyper::Error>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    address
}

/// A client verifying dataplanes with `dataplane`'s CA, presenting `operator`'s certificate.
fn client(dataplane: &Data, operator: &Data) -> AdminClient {
    let (cert, key) = (text(operator, "tls.crt"), text(operator, "tls.key"));
    let ca = text(dataplane, "ca.crt");
    AdminClient::new(ca.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap()
}

#[tokio::test]
async fn answers_are_read_as_the_contract_says() {
    let (dataplane, operator) = generate().unwrap();
    let address = serve(&dataplane).await;
    let client = client(&dataplane, &operator);
    let push = |body: &'static str| client.put_config(address, Bytes::from(body));
    assert_eq!(push("{}").await.unwrap(), PushOutcome::Applied(7));
    assert_eq!(
        push("reject").await.unwrap(),
        PushOutcome::Rejected(vec!["frontend a: bind 192.0.2.1:80: cannot assign".into()])
    );
    assert_eq!(
        push("stale").await.unwrap(),
        PushOutcome::Stale { running: 9 }
    );
    let status = client.status(address).await.unwrap();
    assert_eq!(status.node.as_deref(), Some("lb-1"));
    assert_eq!(status.version, 7);
    assert_eq!(status.backends[0].servers[0].state, "up");
    assert_eq!(status.virtual_ips[0].state, "Master");
    assert_eq!(status.virtual_ips[0].priority, 101);
}

#[tokio::test]
async fn a_dataplane_with_a_certificate_from_another_ca_is_refused() {
    let (ours, theirs) = (generate().unwrap(), generate().unwrap());
    let address = serve(&theirs.0).await;
    let e = client(&ours.0, &ours.1)
        .status(address)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("dataplane {address}: TLS: ")), "{e}");
    // Both CAs have the same name, so the signature is what fails.
    assert!(e.contains("invalid peer certificate: BadSignature"), "{e}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_by_the_dataplane() {
    let (ours, theirs) = (generate().unwrap(), generate().unwrap());
    let address = serve(&ours.0).await;
    let e = client(&ours.0, &theirs.1)
        .status(address)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("dataplane {address}: ")), "{e}");
    // TLS 1.3: the client learns of the refusal when it reads the answer.
    assert!(e.contains(": HTTP: ") || e.contains(": TLS: "), "{e}");
}
