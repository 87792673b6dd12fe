//! The cluster's certificates and keys, made with rcgen (ring): a CA, the API
//! server's serving certificate for 127.0.0.1 (and any extra names), an admin
//! client certificate in `system:masters`, the ServiceAccount token signing key
//! pair, and more client certificates from the same CA on demand.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Paths of the PEM files written by [`write`].
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_pem: String,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub sa_public_key: PathBuf,
    pub sa_private_key: PathBuf,
    /// Signs more client certificates ([`Pki::client_cert`]).
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`: a client certificate for
    /// user `cn` in group `org` (the API server maps O to groups), signed by the CA.
    pub fn client_cert(
        &self,
        dir: &Path,
        stem: &str,
        cn: &str,
        org: &str,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        let paths = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        for (path, pem) in [(&paths.0, cert.pem()), (&paths.1, key.serialize_pem())] {
            std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(paths)
    }
}

/// Generates every key and certificate and writes them as PEM files into `dir`;
/// the serving certificate also holds `extra_names` (DNS names or IP addresses).
pub fn write(dir: &Path, extra_names: &[&str]) -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fairlead-e2e-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut names = vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ];
    names.extend(extra_names.iter().map(|n| (*n).to_owned()));
    let mut serving = CertificateParams::new(names)?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    // The API server maps O to groups: system:masters is bound to cluster-admin.
    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::new())?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "fairlead-e2e-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    let sa_key = KeyPair::generate()?;

    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        ca_pem: ca_cert.pem(),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_public_key: dir.join("sa.pub"),
        sa_private_key: dir.join("sa.key"),
        issuer,
    };
    for (path, pem) in [
        (&pki.ca_cert, pki.ca_pem.clone()),
        (&pki.serving_cert, serving_cert.pem()),
        (&pki.serving_key, serving_key.serialize_pem()),
        (&pki.admin_cert, admin_cert.pem()),
        (&pki.admin_key, admin_key.serialize_pem()),
        (&pki.sa_public_key, sa_key.public_key_pem()),
        (&pki.sa_private_key, sa_key.serialize_pem()),
    ] {
        std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(pki)
}
