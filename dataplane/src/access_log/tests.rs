use std::sync::Arc;

use super::syslog::facility_code;
use super::time::{bsd_date, civil};
use super::*;
use crate::config::SyslogFormat;

/// 2009-02-06 12:14:14.655 UTC, the date of HAProxy's manual examples.
const FEB_6_2009: u64 = 1_233_922_454_655;

fn target(http: bool, format: LogFormat) -> Arc<Target> {
    Arc::new(Target {
        frontend: "http-in".into(),
        format,
        http,
        dont_log_null: false,
        stdout: true,
        syslog: None,
    })
}

fn record(http: bool, format: LogFormat) -> Record {
    Record {
        target: target(http, format),
        client: "10.0.1.2:33317".parse().unwrap(),
        date_unix_ms: FEB_6_2009,
        tls: false,
        backend: None,
        server: None,
        no_server: "<NOSRV>",
        timers: Timers {
            idle: 0,
            request: 10,
            queue: 0,
            connect: 30,
            response: 69,
            total: 109,
        },
        status: 200,
        bytes: 2750,
        termination: *b"--",
        connections: [1, 1, 1, 1],
        retries: 0,
        request: Some(RequestLine {
            method: http::Method::GET,
            uri: "/index.html".parse().unwrap(),
            version: http::Version::HTTP_11,
        }),
    }
}

#[test]
fn dates() {
    assert_eq!(clf_date(FEB_6_2009), "06/Feb/2009:12:14:14.655");
    assert_eq!(bsd_date(FEB_6_2009), "Feb  6 12:14:14");
    assert_eq!(rfc3339(FEB_6_2009), "2009-02-06T12:14:14.655Z");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    // A leap day and the last ms of a year.
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(civil(1_704_067_199_999).year, 2023);
    assert_eq!(clf_date(1_704_067_199_999), "31/Dec/2023:23:59:59.999");
}

#[test]
fn httplog_is_haproxys_example_field_for_field() {
    // HAProxy's manual, 8.2.3, with no captures, and no backend picked here.
    assert_eq!(
        http_line(&record(true, LogFormat::Httplog)),
        "10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in http-in/<NOSRV> 10/0/30/69/109 \
         200 2750 - - ---- 1/1/1/1/0 0/0 \"GET /index.html HTTP/1.1\""
    );
    let mut r = record(true, LogFormat::Httplog);
    r.tls = true;
    r.termination = *b"SC";
    r.request.as_mut().unwrap().uri = "/a\"b".parse().unwrap_or_else(|_| "/ab".parse().unwrap());
    let line = http_line(&r);
    assert!(line.contains(" http-in~ "), "{line}");
    assert!(line.contains(" SC-- "), "{line}");
}

#[test]
fn tcplog_is_haproxys_example_field_for_field() {
    let mut r = record(false, LogFormat::Tcplog);
    r.timers = Timers {
        idle: -1,
        request: -1,
        queue: 0,
        connect: 0,
        response: -1,
        total: 5007,
    };
    r.bytes = 212;
    r.connections = [0, 0, 0, 0];
    r.retries = 3;
    r.request = None;
    assert_eq!(
        tcp_line(&r),
        "10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in http-in/<NOSRV> 0/0/5007 212 -- 0/0/0/0/3 0/0"
    );
}

#[test]
fn a_request_that_never_parsed_is_badreq() {
    let mut r = record(true, LogFormat::Httplog);
    r.request = None;
    r.status = 408;
    r.termination = *b"cR";
    r.timers = Timers {
        idle: 0,
        request: -1,
        queue: -1,
        connect: -1,
        response: -1,
        total: 10001,
    };
    let line = http_line(&r);
    assert!(
        line.ends_with(" -1/-1/-1/-1/10001 408 2750 - - cR-- 1/1/1/1/0 0/0 \"<BADREQ>\""),
        "{line}"
    );
}

#[test]
fn json_names_the_fields() {
    let line = json_line(&record(true, LogFormat::Json));
    // In the line's order.
    assert!(
        line.starts_with(r#"{"client_ip":"10.0.1.2","client_port":33317,"accept_date":"06/Feb/2009:12:14:14.655","frontend_name":"http-in","backend_name":"http-in","server_name":"<NOSRV>","Ti":0,"TR":10,"Tw":0,"Tc":30,"Tr":69,"Ta":109,"status_code":200,"bytes_read":2750,"#),
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["client_ip"], "10.0.1.2");
    assert_eq!(v["client_port"], 33317);
    assert_eq!(v["accept_date"], "06/Feb/2009:12:14:14.655");
    assert_eq!(v["frontend_name"], "http-in");
    assert_eq!(v["server_name"], "<NOSRV>");
    assert_eq!(
        (v["TR"].clone(), v["Tc"].clone(), v["Ta"].clone()),
        (10.into(), 30.into(), 109.into())
    );
    assert_eq!(v["status_code"], 200);
    assert_eq!(v["bytes_read"], 2750);
    assert_eq!(v["termination_state"], "----");
    assert_eq!(v["http_request"], "GET /index.html HTTP/1.1");
    let tcp: serde_json::Value =
        serde_json::from_str(&json_line(&record(false, LogFormat::Json))).unwrap();
    assert_eq!(tcp["Tt"], 109);
    assert!(tcp.get("TR").is_none() && tcp.get("status_code").is_none());
}

#[test]
fn syslog_frames() {
    assert_eq!(facility_code("local2"), 18);
    assert_eq!(facility_code("daemon"), 3);
    let bsd = frame(
        SyslogFormat::Rfc3164,
        18,
        Severity::Info,
        "lb-1",
        "fairlead",
        42,
        FEB_6_2009,
        "hello",
    );
    // local2.info: 18 * 8 + 6, as HAProxy's <150>.
    assert_eq!(bsd, b"<150>Feb  6 12:14:14 lb-1 fairlead[42]: hello");
    let ietf = frame(
        SyslogFormat::Rfc5424,
        16,
        Severity::Warning,
        "lb-1",
        "fairlead",
        42,
        FEB_6_2009,
        "hello",
    );
    assert_eq!(
        ietf,
        b"<132>1 2009-02-06T12:14:14.655Z lb-1 fairlead 42 - - hello"
    );
}

#[test]
fn a_full_queue_drops_and_counts() {
    let log = FrontendLog {
        target: target(true, LogFormat::Httplog),
        tx: Arc::new(ArrayQueue::new(1)),
        dropped: Arc::default(),
        counters: Arc::default(),
        connections: Arc::default(),
    };
    for _ in 0..3 {
        log.log(record(true, LogFormat::Httplog));
    }
    assert_eq!(log.dropped.load(Ordering::Relaxed), 2);
    assert_eq!(log.tx.len(), 1);
}
