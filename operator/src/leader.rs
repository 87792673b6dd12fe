//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several
//! replicas exactly one reconciles and pushes.
//!
//! The holder renews the Lease every [`LeaseSettings::renew_interval`]; it
//! stops leading when it cannot renew within `renew_deadline` (before the
//! others may take over). A standby takes the Lease when its holder is empty
//! (released at graceful shutdown) or when the record has not changed for
//! `duration`, measured on the standby's own clock (no clock skew matters).
//! Writes carry the read `resourceVersion`, so two replicas never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::{Error, Result};

/// Timing and naming of the Lease.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's name, written as the holder.
    pub identity: String,
    /// Owner of the Lease when this replica creates it, if any.
    pub owner: Option<OwnerReference>,
    /// How long a holder's record is valid without renewal.
    pub duration: Duration,
    /// Time between renewals (and between standby attempts).
    pub renew_interval: Duration,
}

impl LeaseSettings {
    /// The holder gives up leading when it could not renew for this long:
    /// two thirds of the duration, so it stops before anyone else may start.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// One replica's view of the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The last record seen of another holder, and when it was first seen.
    observed: Option<(String, Instant)>,
}

impl LeaderElector {
    /// An elector for `settings.namespace/settings.name`.
    pub fn new(client: Client, settings: LeaseSettings) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    fn lease_name(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.name)
    }

    /// Waits until this replica holds the Lease; `on_read` is called after
    /// each successful read of it (the replica reaches the API server).
    pub async fn acquire(&mut self, mut on_read: impl FnMut()) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    on_read();
                    tracing::info!(lease = %self.lease_name(), identity = %self.settings.identity, "became leader");
                    return;
                }
                Ok(false) => on_read(),
                Err(e) => {
                    tracing::warn!(lease = %self.lease_name(), error = %e, "reading the Lease")
                }
            }
            tokio::time::sleep(self.settings.renew_interval).await;
        }
    }

    /// Renews the Lease until it is lost; returns why.
    pub async fn hold(&mut self) -> Error {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.settings.renew_interval).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    return Error::LeadershipLost {
                        lease: self.lease_name(),
                        message: "another replica holds it".into(),
                    };
                }
                Err(e) if renewed.elapsed() >= self.settings.renew_deadline() => {
                    return Error::LeadershipLost {
                        lease: self.lease_name(),
                        message: format!("not renewed for {:?}: {e}", renewed.elapsed()),
                    };
                }
                Err(e) => {
                    tracing::warn!(lease = %self.lease_name(), error = %e, "renewing the Lease")
                }
            }
        }
    }

    /// Gives the Lease up so that a standby takes over at once.
    pub async fn release(&mut self) -> Result<()> {
        let what = || format!("releasing Lease {}", self.lease_name());
        let lease =
            (self.api.get_opt(&self.settings.name).await).map_err(|source| Error::Kube {
                what: what(),
                source,
            })?;
        let Some(mut lease) = lease else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.settings.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        (self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await)
            .map_err(|source| Error::Kube {
                what: what(),
                source,
            })?;
        tracing::info!(lease = %self.lease_name(), "released the Lease");
        Ok(())
    }

    /// One attempt: `Ok(true)` when this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let me = self.settings.identity.clone();
        let seconds = i32::try_from(self.settings.duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    owner_references: self.settings.owner.clone().map(|o| vec![o]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() != Some(me.as_str()) {
            if let Some(holder) = &holder {
                let record = format!("{holder}@{:?}", spec.renew_time.as_ref().map(|t| t.0));
                let held_for = Duration::from_secs(
                    u64::try_from(spec.lease_duration_seconds.unwrap_or(seconds)).unwrap_or(1),
                );
                match &self.observed {
                    Some((seen, since)) if *seen == record => {
                        if since.elapsed() < held_for {
                            return Ok(false);
                        }
                        tracing::info!(lease = %self.lease_name(), %holder, "holder expired");
                    }
                    _ => {
                        self.observed = Some((record, Instant::now()));
                        return Ok(false);
                    }
                }
            }
            spec.holder_identity = Some(me);
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now);
        let result = self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await;
        let won = conflict_is_false(result)?;
        if won {
            self.observed = None;
        }
        Ok(won)
    }
}

/// A 409 (someone else wrote first) is a lost race, not an error.
fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
