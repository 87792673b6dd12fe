//! A `.pem` file given with `-f` is TLS material: it becomes a Secret of type
//! kubernetes.io/tls named after the file stem, holding the whole PEM
//! (certificate, chain and key, haproxy style) as `tls.crt`, `tls.key` and
//! `ca.crt`, so Frontends and Backends reference it like any Secret.

use std::path::Path;

use serde_json::json;

use super::documents::Document;

/// Whether `file` is read as PEM.
pub(super) fn is_pem(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pem"))
}

/// The Secret document for a PEM file's text.
pub(super) fn secret_document(file: &Path, text: &str) -> Document {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let value = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": { "name": name },
        "stringData": { "tls.crt": text, "tls.key": text, "ca.crt": text },
    });
    Document { line: 1, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_file_becomes_tls_secret_named_after_stem() {
        let file = Path::new("/certs/site.pem");
        assert!(is_pem(file));
        assert!(!is_pem(Path::new("site.yaml")));
        let doc = secret_document(file, "PEM");
        assert_eq!(doc.value["metadata"]["name"], "site");
        assert_eq!(doc.value["type"], "kubernetes.io/tls");
        assert_eq!(doc.value["stringData"]["tls.crt"], "PEM");
    }
}
