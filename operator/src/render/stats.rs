//! `spec.stats` -> the dataplane's stats settings: the page's path (default
//! `/stats`), refresh, node name, and basic auth credentials read from the
//! Secret named by `authSecret` (keys `username` and `password`).

use fairlead_crds::Stats;
use fairlead_crds::duration;
use fairlead_dataplane::config;

use super::tls::{find_secret, secret_text};
use super::{Report, Snapshot};

/// Default `spec.stats.path`.
const PAGE_PATH: &str = "/stats";

pub(super) fn frontend_stats(
    namespace: &str,
    stats: &Stats,
    snapshot: &Snapshot,
    report: &mut Report,
) -> config::FrontendStats {
    let refresh_seconds = match stats.refresh.as_deref().map(duration::parse) {
        None => 0,
        // Whole seconds, rounded up: a refresh is never faster than asked.
        Some(Ok(d)) => u32::try_from(d.as_millis().div_ceil(1000)).unwrap_or(u32::MAX),
        Some(Err(e)) => {
            report.error("spec.stats.refresh", e.to_string());
            0
        }
    };
    let auth = stats.auth_secret.as_deref().and_then(|name| {
        credentials(namespace, name, snapshot)
            .map_err(|e| report.error("spec.stats.authSecret", e))
            .ok()
    });
    config::FrontendStats {
        prometheus_path: stats.prometheus_path.clone(),
        path: Some(stats.path.clone().unwrap_or_else(|| PAGE_PATH.into())),
        refresh_seconds,
        show_node: stats.show_node.unwrap_or(false),
        auth,
    }
}

/// `username` and `password` of Secret `name`, both set and not empty.
fn credentials(
    namespace: &str,
    name: &str,
    snapshot: &Snapshot,
) -> Result<config::BasicAuth, String> {
    let secret = find_secret(namespace, name, snapshot)?;
    let key = |key: &str| {
        secret_text(secret, key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("Secret {namespace}/{name} has no {key}"))
    };
    let username = key("username")?;
    if username.contains(':') {
        return Err(format!(
            "Secret {namespace}/{name}: username holds ':' (basic auth cannot carry it)"
        ));
    }
    Ok(config::BasicAuth {
        username,
        password: key("password")?,
    })
}
