//! kubeconfig files for the test cluster.

use std::path::Path;

use serde_json::json;

/// How a kubeconfig user authenticates.
pub enum Credentials<'a> {
    /// A client certificate and its key (PEM files).
    ClientCert { cert: &'a Path, key: &'a Path },
    /// A bearer token, e.g. a ServiceAccount's from `kubectl create token`.
    Token(&'a str),
}

/// A kubeconfig (JSON, which is YAML) for `server`, trusting the CA in `ca_file`.
pub fn render(server: &str, ca_file: &Path, user: &str, credentials: Credentials<'_>) -> String {
    let user_entry = match credentials {
        Credentials::ClientCert { cert, key } => json!({
            "client-certificate": cert,
            "client-key": key,
        }),
        Credentials::Token(token) => json!({ "token": token }),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "fairlead-e2e",
            "cluster": { "server": server, "certificate-authority": ca_file },
        }],
        "users": [{ "name": user, "user": user_entry }],
        "contexts": [{
            "name": "fairlead-e2e",
            "context": { "cluster": "fairlead-e2e", "user": user },
        }],
        "current-context": "fairlead-e2e",
    });
    serde_json::to_string_pretty(&config).expect("a JSON value always serializes")
}
