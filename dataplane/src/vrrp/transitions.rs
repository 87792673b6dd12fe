//! VRRP transitions to syslog: a line per state change of each virtual IP,
//! worded as keepalived's (`Entering MASTER STATE`), sent with the access
//! log's events to the logging frontends' syslog servers.

use futures_util::future::join_all;

use super::{SpeakerWatch, VirtualIpWatch};
use crate::access_log::{Events, Severity};

/// Reports every transition of `watches` to `events` until they stop.
pub async fn report(watches: Vec<VirtualIpWatch>, events: Events) {
    join_all(watches.into_iter().map(|w| one(w, events.clone()))).await;
}

async fn one(watch: VirtualIpWatch, events: Events) {
    let SpeakerWatch::Running(mut rx) = watch.speaker else {
        return;
    };
    let mut last = rx.borrow().last_transition.as_ref().map(|t| t.at_unix_ms);
    while rx.changed().await.is_ok() {
        let status = rx.borrow_and_update().clone();
        let Some(t) = status
            .last_transition
            .filter(|t| Some(t.at_unix_ms) != last)
        else {
            continue;
        };
        last = Some(t.at_unix_ms);
        events.send(
            Severity::Notice,
            format!(
                "VRRP {} (vrid {}, {}): Entering {} STATE from {} ({}), priority {}",
                status.name,
                status.vrid,
                status.interface,
                t.to.to_uppercase(),
                t.from.to_uppercase(),
                t.reason,
                status.priority,
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use fairlead_vrrp::SpeakerStatus;
    use fairlead_vrrp::speaker::TransitionStatus;

    use super::*;
    use crate::access_log::AccessLog;
    use crate::config::{Syslog, SyslogFormat};

    fn status(transition: Option<TransitionStatus>) -> SpeakerStatus {
        SpeakerStatus {
            name: "default/vip1".into(),
            vrid: 51,
            interface: "eth0".into(),
            state: "Backup",
            error: None,
            priority: 100,
            address: None,
            master: None,
            last_transition: transition,
            became_master_at_unix_ms: None,
            heard_vrids: Vec::new(),
            counters: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_transition_reaches_the_syslog_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let log = AccessLog::new("lb-1");
        log.set_event_targets(vec![Syslog {
            address: server.local_addr().unwrap().to_string(),
            facility: "local2".into(),
            tag: "fairlead".into(),
            format: SyslogFormat::Rfc3164,
        }]);
        let (tx, rx) = tokio::sync::watch::channel(status(None));
        let watch = VirtualIpWatch {
            speaker: SpeakerWatch::Running(rx),
            configured: 100,
            failure: None,
        };
        let task = tokio::spawn(report(vec![watch], log.events()));
        tokio::task::yield_now().await;
        tx.send_replace(status(Some(TransitionStatus {
            at_unix_ms: 1,
            from: "Backup",
            to: "Master",
            reason: "no advertisement for 3.6 s".into(),
        })));
        let got = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 1024];
            let n = server.recv(&mut buf).expect("a datagram");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .await
        .unwrap();
        assert!(got.starts_with("<149>"), "local2.notice: {got}");
        assert!(
            got.contains(
                " lb-1 fairlead[",
            ) && got.ends_with(
                ": VRRP default/vip1 (vrid 51, eth0): Entering MASTER STATE from BACKUP (no advertisement for 3.6 s), priority 100"
            ),
            "{got}"
        );
        task.abort();
    }
}
