//! Syslog messages over UDP: RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`)
//! and RFC 5424 (`<PRI>1 TIMESTAMP HOST TAG PID - - MSG`), UTC.

use super::Severity;
use super::time::{bsd_date, rfc3339};
use crate::config::{FACILITIES, SyslogFormat};

/// Longest message sent; longer ones are cut (HAProxy's default `len` is 1024).
pub const MAX_MESSAGE: usize = 8192;

/// The facility code of `name` (`local0` is 16); `user` (1) when unknown.
pub fn facility_code(name: &str) -> u8 {
    FACILITIES.iter().position(|f| *f == name).unwrap_or(1) as u8
}

/// One message, ready to send as a datagram.
#[allow(clippy::too_many_arguments)]
pub fn frame(
    format: SyslogFormat,
    facility: u8,
    severity: Severity,
    host: &str,
    tag: &str,
    pid: u32,
    unix_ms: u64,
    msg: &str,
) -> Vec<u8> {
    let pri = u32::from(facility) * 8 + severity as u32;
    let head = match format {
        SyslogFormat::Rfc3164 => format!("<{pri}>{} {host} {tag}[{pid}]: ", bsd_date(unix_ms)),
        SyslogFormat::Rfc5424 => format!("<{pri}>1 {} {host} {tag} {pid} - - ", rfc3339(unix_ms)),
    };
    let mut out = Vec::with_capacity(head.len() + msg.len());
    out.extend_from_slice(head.as_bytes());
    let mut body = msg.as_bytes();
    if body.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        body = &body[..cut];
    }
    out.extend_from_slice(body);
    out
}
