//! The credentials between the operator and the dataplanes, from a CA of the
//! operator's own: the `fairlead-dataplane-tls` Secret (the CA certificate and
//! the dataplanes' serving certificate, DNS `fairlead-dataplane`), which the
//! dataplanes mount, and the `fairlead-operator-client` Secret (the
//! operator's client certificate), which only the operator reads. The
//! operator creates both, together, when either is missing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::push::{AdminClient, DATAPLANE_SERVER_NAME};
use crate::{Error, Result};

/// Name of the Secret the dataplanes mount, in the operator's namespace.
pub const CREDENTIALS_SECRET: &str = "fairlead-dataplane-tls";
/// Name of the operator's own client certificate Secret, same namespace.
pub const CLIENT_SECRET: &str = "fairlead-operator-client";
/// Common name of the operator's client certificate.
const CLIENT_NAME: &str = "fairlead-operator";

type Data = BTreeMap<String, ByteString>;

/// Fresh credentials from a new CA: the dataplanes' Secret data (`ca.crt`,
/// `tls.crt`, `tls.key`) and the operator's (`tls.crt`, `tls.key`).
pub fn generate() -> Result<(Data, Data), String> {
    let rcgen = |e: rcgen::Error| e.to_string();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fairlead dataplane CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(rcgen)?)
        .map_err(rcgen)?;
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(rcgen)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().map_err(rcgen)?;
        let cert = params.signed_by(&key, &ca).map_err(rcgen)?;
        Ok::<_, String>((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) =
        leaf(DATAPLANE_SERVER_NAME, ExtendedKeyUsagePurpose::ServerAuth)?;
    let (client_cert, client_key) = leaf(CLIENT_NAME, ExtendedKeyUsagePurpose::ClientAuth)?;
    let data = |entries: Vec<(&str, String)>| {
        (entries.into_iter())
            .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
            .collect()
    };
    Ok((
        data(vec![
            ("ca.crt", ca.pem()),
            ("tls.crt", server_cert),
            ("tls.key", server_key),
        ]),
        data(vec![("tls.crt", client_cert), ("tls.key", client_key)]),
    ))
}

/// Creates both Secrets in `namespace` unless both exist; a lone one (a
/// creation cut short, an older layout) is replaced, since both must come
/// from one CA. Two replicas racing is fine: the loser of the first creation
/// leaves the rest to the winner.
pub async fn ensure(client: Client, namespace: &str, owner: Option<&OwnerReference>) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let kube = |verb: &str, name: &str| {
        let what = format!("{verb} Secret {namespace}/{name}");
        move |source| Error::Kube { what, source }
    };
    let dataplane =
        (api.get_opt(CREDENTIALS_SECRET).await).map_err(kube("get", CREDENTIALS_SECRET))?;
    let operator = (api.get_opt(CLIENT_SECRET).await).map_err(kube("get", CLIENT_SECRET))?;
    if dataplane.is_some() && operator.is_some() {
        return Ok(());
    }
    for (name, found) in [(CREDENTIALS_SECRET, &dataplane), (CLIENT_SECRET, &operator)] {
        if found.is_some() {
            tracing::warn!(
                secret = name,
                "replacing a credentials Secret whose other half is missing"
            );
            match api.delete(name, &DeleteParams::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Ok(_) => {}
                Err(source) => return Err(kube("delete", name)(source)),
            }
        }
    }
    let (dataplane, operator) = generate().map_err(|message| Error::Credentials {
        secret: format!("{namespace}/{CREDENTIALS_SECRET}"),
        message,
    })?;
    // The operator's half first: whoever creates it creates the other too.
    for (name, data) in [(CLIENT_SECRET, operator), (CREDENTIALS_SECRET, dataplane)] {
        match api
            .create(
                &PostParams::default(),
                &secret(namespace, name, data, owner),
            )
            .await
        {
            Ok(_) => tracing::info!(secret = name, "created dataplane credentials"),
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(source) => return Err(kube("create", name)(source)),
        }
    }
    Ok(())
}

fn secret(namespace: &str, name: &str, data: Data, owner: Option<&OwnerReference>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            owner_references: owner.map(|o| vec![o.clone()]),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "fairlead-operator".to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The admin API client made of the dataplanes' CA (to verify them) and the
/// operator's client certificate (to authenticate to them).
pub fn admin_client(dataplane: &Secret, operator: &Secret) -> Result<AdminClient> {
    let key = |secret: &Secret, k: &str| {
        let name = format!(
            "{}/{}",
            secret.metadata.namespace.as_deref().unwrap_or(""),
            secret.metadata.name.as_deref().unwrap_or("")
        );
        (secret.data.as_ref().and_then(|d| d.get(k)))
            .map(|v| v.0.clone())
            .ok_or_else(|| Error::Credentials {
                secret: name,
                message: format!("data.{k}: missing"),
            })
    };
    let ca = key(dataplane, "ca.crt")?;
    let (cert, private) = (key(operator, "tls.crt")?, key(operator, "tls.key")?);
    AdminClient::new(&ca, &cert, &private).map_err(|message| Error::Credentials {
        secret: format!(
            "{}/{} and {CLIENT_SECRET}",
            dataplane.metadata.namespace.as_deref().unwrap_or(""),
            CREDENTIALS_SECRET
        ),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, data: Data) -> Secret {
        secret("fairlead-system", name, data, None)
    }

    #[test]
    fn generated_credentials_make_a_client() {
        let (dataplane, operator) = generate().unwrap();
        assert!(!dataplane.contains_key("token"));
        assert_eq!(operator.len(), 2);
        let dataplane = named(CREDENTIALS_SECRET, dataplane);
        admin_client(&dataplane, &named(CLIENT_SECRET, operator)).unwrap();
    }

    #[test]
    fn a_missing_key_is_named() {
        let (dataplane, mut operator) = generate().unwrap();
        operator.remove("tls.key");
        let dataplane = named(CREDENTIALS_SECRET, dataplane);
        let e = admin_client(&dataplane, &named(CLIENT_SECRET, operator));
        assert_eq!(
            e.unwrap_err().to_string(),
            "Secret fairlead-system/fairlead-operator-client: data.tls.key: missing"
        );
    }
}
