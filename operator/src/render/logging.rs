//! `spec.logging` -> the dataplane's access log settings, with the defaults
//! the CRD documents: the format follows the mode (`httplog` or `tcplog`),
//! stdout is on unless a syslog server is set, the facility is `local0` and
//! the tag `fairlead`, RFC 3164.

use fairlead_crds::{LogFormat, Logging, SyslogFormat};
use fairlead_dataplane::config;

pub(super) fn frontend_logging(mode: config::Mode, logging: &Logging) -> config::Logging {
    let format = match (logging.format, mode) {
        (Some(LogFormat::Httplog), _) => config::LogFormat::Httplog,
        (Some(LogFormat::Tcplog), _) => config::LogFormat::Tcplog,
        (Some(LogFormat::Json), _) => config::LogFormat::Json,
        (None, config::Mode::Http) => config::LogFormat::Httplog,
        (None, config::Mode::Tcp) => config::LogFormat::Tcplog,
    };
    let syslog = logging.syslog.as_ref().map(|s| config::Syslog {
        address: s.address.clone(),
        facility: s.facility.clone().unwrap_or_else(|| "local0".into()),
        tag: s.tag.clone().unwrap_or_else(|| "fairlead".into()),
        format: match s.format {
            None | Some(SyslogFormat::Rfc3164) => config::SyslogFormat::Rfc3164,
            Some(SyslogFormat::Rfc5424) => config::SyslogFormat::Rfc5424,
        },
    });
    config::Logging {
        format,
        dont_log_null: logging.dont_log_null.unwrap_or(false),
        stdout: logging.stdout.unwrap_or(syslog.is_none()),
        syslog,
    }
}
