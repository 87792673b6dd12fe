//! Frontend TLS from Secrets: PEM files as Secrets, Secret manifests, and the
//! errors that name the Secret.

use std::path::Path;

use crate::manifest::load_text;
use fairlead_dataplane::config;

use crate::render::{Snapshot, render};

const A_CRT: &str = include_str!("../../../../dataplane/src/tls/testdata/a.crt");
const A_KEY: &str = include_str!("../../../../dataplane/src/tls/testdata/a.key");
const B_KEY: &str = include_str!("../../../../dataplane/src/tls/testdata/b.key");

const BACKEND: &str = "apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {name: app}
spec:
  servers: [{name: srv1, address: 127.0.0.1, port: 9001}]
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {name: web}
spec:
  bind: {port: 8443}
  defaultBackend: app
";

/// The manifests plus `files` (name, text) loaded as they would be from disk.
fn snapshot(tls: &str, files: &[(&str, String)]) -> Snapshot {
    let mut all = load_text(
        Path::new("test.yaml"),
        &(BACKEND.to_string() + tls),
        "default",
    );
    for (name, text) in files {
        let more = load_text(Path::new(name), text, "default");
        all.errors.extend(more.errors);
        all.snapshot.secrets.extend(more.snapshot.secrets);
    }
    assert!(all.errors.is_empty(), "{:?}", all.errors);
    all.snapshot
}

fn errors(snapshot: &Snapshot) -> Vec<String> {
    render(snapshot)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn secret_yaml(name: &str, crt: &str, key: &str) -> String {
    let indent = |pem: &str| pem.replace('\n', "\n      ");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n      {}\n  tls.key: |\n      {}\n",
        indent(crt.trim_end()),
        indent(key.trim_end())
    )
}

#[test]
fn combined_pem_file_renders_with_defaults() {
    let pem = A_CRT.to_string() + A_KEY;
    let s = snapshot(
        "  tls: {certificates: [{secret: site}]}\n",
        &[("site.pem", pem.clone())],
    );
    let rendered = render(&s);
    assert_eq!(rendered.errors, []);
    let tls = rendered.config.frontends[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates[0].source, "Secret default/site");
    assert_eq!(tls.certificates[0].cert_pem, pem);
    assert_eq!(tls.min_version, "1.2");
    assert_eq!(tls.alpn, ["h2", "http/1.1"]);
}

#[test]
fn secret_manifest_with_settings_renders() {
    let spec = "  tls: {certificates: [{secret: site}], minVersion: \"1.3\", alpn: [http/1.1]}\n";
    let s = snapshot(spec, &[("site.yaml", secret_yaml("site", A_CRT, A_KEY))]);
    let rendered = render(&s);
    assert_eq!(rendered.errors, []);
    let tls = rendered.config.frontends[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates[0].key_pem.trim(), A_KEY.trim());
    assert_eq!(tls.min_version, "1.3");
    assert_eq!(tls.alpn, ["http/1.1"]);
}

#[test]
fn missing_mismatched_and_encrypted_keys_name_the_secret() {
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let spec = "  tls: {certificates: [{secret: nope}, {secret: bad}, {secret: locked}]}\n";
    let s = snapshot(
        spec,
        &[
            ("bad.yaml", secret_yaml("bad", A_CRT, B_KEY)),
            ("locked.yaml", secret_yaml("locked", A_CRT, encrypted)),
        ],
    );
    let got = errors(&s);
    let field = "Frontend default/web: spec.tls.certificates";
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        format!("{field}[0].secret: Secret default/nope does not exist")
    );
    assert_eq!(
        got[1],
        format!(
            "{field}[1].secret: Secret default/bad: the private key does not match the certificate"
        )
    );
    assert!(
        got[2].starts_with(&format!(
            "{field}[2].secret: Secret default/locked: the private key is encrypted"
        )),
        "{}",
        got[2]
    );
}

#[test]
fn passthrough_routes_on_sni() {
    let yaml = "apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {name: app}
spec:
  mode: tcp
  servers: [{name: srv1, address: 127.0.0.1, port: 9443}]
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {name: pass}
spec:
  mode: tcp
  bind: {port: 8443}
  tls: {mode: passthrough}
  routes: [{match: {sni: \"*.example.com\"}, backend: app}]
  defaultBackend: app
";
    let s = load_text(Path::new("p.yaml"), yaml, "default").snapshot;
    let rendered = render(&s);
    assert_eq!(rendered.errors, []);
    let f = &rendered.config.frontends[0];
    assert_eq!(f.tls.as_ref().unwrap().mode, config::TlsMode::Passthrough);
    assert_eq!(f.routes[0].sni.as_deref(), Some("*.example.com"));
    assert_eq!(f.routes[0].backend, "default/app");
}

/// A Backend with `tls` (a YAML flow mapping), and nothing else.
fn backend_with_tls(tls: &str) -> String {
    format!(
        "apiVersion: fairlead.io/v1alpha1\nkind: Backend\nmetadata: {{name: app}}\nspec:\n  servers: [{{name: srv1, address: 127.0.0.1, port: 9443}}]\n  tls: {tls}\n"
    )
}

#[test]
fn backend_tls_reads_the_ca_and_client_certificate_secrets() {
    let yaml =
        backend_with_tls("{caSecret: ca, clientCertSecret: client, serverName: app.internal}");
    let mut all = load_text(Path::new("b.yaml"), &yaml, "default");
    let pems = [
        ("ca.pem", A_CRT.to_string()),
        ("client.pem", A_CRT.to_string() + A_KEY),
    ];
    for (name, text) in pems {
        let more = load_text(Path::new(name), &text, "default");
        all.snapshot.secrets.extend(more.snapshot.secrets);
    }
    let rendered = render(&all.snapshot);
    assert_eq!(rendered.errors, []);
    let tls = rendered.config.backends[0].tls.as_ref().unwrap();
    assert_eq!(tls.ca_pem.as_deref(), Some(A_CRT));
    assert!(
        tls.client_cert_pem
            .as_deref()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(
        tls.client_key_pem
            .as_deref()
            .unwrap()
            .contains("PRIVATE KEY")
    );
    assert_eq!(tls.server_name.as_deref(), Some("app.internal"));
    assert!(!tls.insecure_skip_verify);
}

#[test]
fn backend_tls_needs_a_ca_unless_verification_is_skipped() {
    let s = load_text(
        Path::new("b.yaml"),
        &backend_with_tls("{serverName: x}"),
        "default",
    );
    let got = errors(&s.snapshot);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("Backend default/app: spec.tls.caSecret: required"),
        "{got:?}"
    );
    let s = load_text(
        Path::new("b.yaml"),
        &backend_with_tls("{caSecret: nope}"),
        "default",
    );
    assert_eq!(
        errors(&s.snapshot),
        ["Backend default/app: spec.tls.caSecret: Secret default/nope does not exist"]
    );
    let s = load_text(
        Path::new("b.yaml"),
        &backend_with_tls("{insecureSkipVerify: true}"),
        "default",
    );
    let rendered = render(&s.snapshot);
    assert_eq!(rendered.errors, []);
    assert!(
        rendered.config.backends[0]
            .tls
            .as_ref()
            .unwrap()
            .insecure_skip_verify
    );
}
