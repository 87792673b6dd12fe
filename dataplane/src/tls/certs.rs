//! PEM certificates and keys: parsing with errors a user can act on.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Parses every `CERTIFICATE` block of `pem`, leaf first; at least one.
pub fn parse_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate PEM does not parse: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block in the certificate PEM".into());
    }
    Ok(chain)
}

/// Parses the private key of `pem` (PKCS#8, PKCS#1 or SEC1); an encrypted
/// key is refused with a message saying so.
pub fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    if pem.contains("ENCRYPTED PRIVATE KEY") || pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err("the private key is encrypted; give it unencrypted \
             (openssl pkey -in key.pem -out plain.pem)"
            .into());
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block in the key PEM".into(),
        e => format!("private key PEM does not parse: {e}"),
    })
}

/// The chain and key as a rustls certified key; fails when the key does not
/// belong to the leaf certificate.
pub fn certified_key(
    cert_pem: &str,
    key_pem: &str,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let chain = parse_chain(cert_pem)?;
    let key = parse_key(key_pem)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key is not usable: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("the private key does not match the certificate".into())
        }
        Err(e) => Err(format!("certificate does not parse: {e}")),
    }
}

/// The DNS names of the leaf certificate's SAN list (wildcards included).
pub fn dns_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(leaf)
        .map(|c| c.valid_dns_names().map(str::to_ascii_lowercase).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_and_missing_keys_say_so() {
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(parse_key(enc).unwrap_err().contains("encrypted"));
        assert!(parse_key("nothing").unwrap_err().contains("no PRIVATE KEY"));
        assert!(
            parse_chain("nothing")
                .unwrap_err()
                .contains("no CERTIFICATE")
        );
    }
}
