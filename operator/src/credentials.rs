//! The `fairlead-dataplane-tls` Secret: a CA of the operator's own, the
//! dataplanes' serving certificate (DNS `fairlead-dataplane`) and a token.
//! The operator creates it when missing; dataplanes mount it; the operator
//! reads it to verify them and to authenticate itself.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::push::{AdminClient, DATAPLANE_SERVER_NAME};
use crate::{Error, Result};

/// Name of the credentials Secret, in the operator's namespace.
pub const CREDENTIALS_SECRET: &str = "fairlead-dataplane-tls";

/// Fresh credentials: keys `ca.crt`, `tls.crt`, `tls.key`, `token`.
pub fn generate() -> Result<BTreeMap<String, ByteString>, String> {
    let rcgen = |e: rcgen::Error| e.to_string();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fairlead dataplane CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(rcgen)?)
        .map_err(rcgen)?;
    let mut params =
        CertificateParams::new(vec![DATAPLANE_SERVER_NAME.to_string()]).map_err(rcgen)?;
    params
        .distinguished_name
        .push(DnType::CommonName, DATAPLANE_SERVER_NAME);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(rcgen)?;
    let cert = params.signed_by(&key, &ca).map_err(rcgen)?;
    let mut token = [0u8; 32];
    (rustls::crypto::ring::default_provider().secure_random)
        .fill(&mut token)
        .map_err(|e| format!("random token: {e:?}"))?;
    let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
    let data = [
        ("ca.crt", ca.pem()),
        ("tls.crt", cert.pem()),
        ("tls.key", key.serialize_pem()),
        ("token", token),
    ];
    Ok(data
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect())
}

/// Creates the credentials Secret in `namespace` unless it exists. Two
/// replicas racing is fine: the loser finds the winner's Secret.
pub async fn ensure(client: Client, namespace: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let what = |verb: &str| format!("{verb} Secret {namespace}/{CREDENTIALS_SECRET}");
    let found = (api.get_opt(CREDENTIALS_SECRET).await).map_err(|source| Error::Kube {
        what: what("get"),
        source,
    })?;
    if found.is_some() {
        return Ok(());
    }
    let data = generate().map_err(|message| Error::Credentials {
        secret: format!("{namespace}/{CREDENTIALS_SECRET}"),
        message,
    })?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(CREDENTIALS_SECRET.into()),
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
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %what("created"), "created the dataplane credentials");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(Error::Kube {
            what: what("create"),
            source,
        }),
    }
}

/// The admin API client that the Secret's CA and token make.
pub fn admin_client(secret: &Secret) -> Result<AdminClient> {
    let name = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or(""),
        secret.metadata.name.as_deref().unwrap_or("")
    );
    let key = |k: &str| {
        (secret.data.as_ref().and_then(|d| d.get(k)))
            .map(|v| v.0.clone())
            .ok_or_else(|| Error::Credentials {
                secret: name.clone(),
                message: format!("data.{k}: missing"),
            })
    };
    let ca = key("ca.crt")?;
    let token = String::from_utf8(key("token")?).map_err(|_| Error::Credentials {
        secret: name.clone(),
        message: "data.token: not UTF-8".into(),
    })?;
    AdminClient::new(&ca, &token).map_err(|message| Error::Credentials {
        secret: name.clone(),
        message: format!("data.{message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_make_a_client() {
        let data = generate().unwrap();
        assert_eq!(data["token"].0.len(), 64);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(CREDENTIALS_SECRET.into()),
                namespace: Some("fairlead-system".into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        admin_client(&secret).unwrap();
    }

    #[test]
    fn a_missing_key_is_named() {
        let mut data = generate().unwrap();
        data.remove("token");
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(CREDENTIALS_SECRET.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let e = admin_client(&secret).unwrap_err().to_string();
        assert_eq!(e, "Secret ns/fairlead-dataplane-tls: data.token: missing");
    }
}
