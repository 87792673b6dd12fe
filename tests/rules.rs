//! HTTP request and response rules over real sockets, checked with curl where
//! the client's view matters (redirects, response headers) and with the demo
//! backend's `/headers` for what the server sees.

mod common;
#[path = "tls/pki.rs"]
mod pki;

use std::net::SocketAddr;

use common::*;
use fairlead_dataplane::Engine;
use fairlead_dataplane::config::{Balance, Certificate, Frontend, FrontendTls, Mode};

/// A frontend with these rules (JSON, as in the dataplane config) in front of
/// `demo`, plus a backend `other` for `useBackend`.
async fn with_rules(
    demo: &Demo,
    other: &Demo,
    request: &str,
    response: &str,
) -> (Engine, SocketAddr) {
    let mut fe: Frontend = frontend("fe", Mode::Http, "main");
    fe.request_rules = serde_json::from_str(request).expect("request rules parse");
    fe.response_rules = serde_json::from_str(response).expect("response rules parse");
    let addr = fe.bind;
    let backends = vec![
        backend(
            "main",
            Mode::Http,
            Balance::Roundrobin,
            vec![demo.server("s")],
        ),
        backend(
            "other",
            Mode::Http,
            Balance::Roundrobin,
            vec![other.server("s")],
        ),
    ];
    (engine(config(1, vec![fe], backends)).await, addr)
}

/// `curl -sI` with extra arguments: (status, headers lower-cased by name).
async fn curl_head(url: &str, extra: &[&str]) -> (u16, Vec<(String, String)>) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-I", "--max-time", "10"])
        .args(extra)
        .arg(url)
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    assert!(out.status.success(), "curl {url}: {:?}", out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The tutorial's "enforce SSL", as a Frontend would render it.
const ENFORCE_SSL: &str = r#"[
  {"replaceHeaderValue": {"name": "Host", "pattern": "(.*):8080", "replacement": "$1:8443"}},
  {"if": {"all": [{"negate": true, "tls": true}]}, "redirect": {"scheme": "https", "code": 301}}
]"#;
const HSTS: &str =
    r#"[{"setHeader": {"name": "Strict-Transport-Security", "value": "max-age=63072000"}}]"#;

#[tokio::test(flavor = "multi_thread")]
async fn enforce_ssl_redirects_plain_http_to_https_on_8443() {
    let (demo, other) = (Demo::http("main"), Demo::http("other"));
    let (_e, addr) = with_rules(&demo, &other, ENFORCE_SSL, HSTS).await;
    let url = format!("http://{addr}/a?b=1");
    let (status, headers) = curl_head(&url, &["-H", "Host: example.com:8080"]).await;
    assert_eq!(status, 301);
    assert_eq!(
        header(&headers, "location"),
        Some("https://example.com:8443/a?b=1")
    );
    assert_eq!(
        header(&headers, "strict-transport-security"),
        Some("max-age=63072000"),
        "response rules apply to redirects"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_codes_prefix_and_location() {
    let (demo, other) = (Demo::http("main"), Demo::http("other"));
    let mut rules: Vec<String> = [301, 302, 303, 307, 308]
        .iter()
        .map(|c| {
            format!(r#"{{"if": {{"all": [{{"path": "/{c}"}}]}}, "redirect": {{"scheme": "https", "port": 8443, "code": {c}}}}}"#)
        })
        .collect();
    rules.push(r#"{"if": {"all": [{"pathPrefix": "/old/"}]}, "redirect": {"prefix": "https://new.example/", "code": 308}}"#.into());
    rules.push(r#"{"if": {"all": [{"path": "/moved"}]}, "redirect": {"location": "https://example.org/here"}}"#.into());
    let request = format!("[{}]", rules.join(","));
    let (_e, addr) = with_rules(&demo, &other, &request, "[]").await;
    for code in [301, 302, 303, 307, 308] {
        let (status, headers) = curl_head(
            &format!("http://{addr}/{code}?x=y"),
            &["-H", "Host: a.example:8080"],
        )
        .await;
        assert_eq!(status, code);
        assert_eq!(
            header(&headers, "location"),
            Some(format!("https://a.example:8443/{code}?x=y").as_str())
        );
    }
    let (status, headers) = curl_head(&format!("http://{addr}/old/page?q=1"), &[]).await;
    assert_eq!(status, 308);
    assert_eq!(
        header(&headers, "location"),
        Some("https://new.example/old/page?q=1")
    );
    let (status, headers) = curl_head(&format!("http://{addr}/moved"), &[]).await;
    assert_eq!(
        (status, header(&headers, "location")),
        (302, Some("https://example.org/here"))
    );
    let (status, _) = curl_head(&format!("http://{addr}/stay"), &[]).await;
    assert_eq!(status, 200, "no rule applies, the server answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn header_rules_change_what_server_and_client_see() {
    let (demo, other) = (Demo::http("main"), Demo::http("other"));
    let request = r#"[
      {"setHeader": {"name": "X-Set", "value": "new"}},
      {"addHeader": {"name": "X-Added", "value": "two"}},
      {"removeHeader": {"name": "X-Secret"}},
      {"replaceHeaderValue": {"name": "X-List", "pattern": "old-(\\w+)", "replacement": "new-$1"}}
    ]"#;
    let response = r#"[
      {"setHeader": {"name": "Strict-Transport-Security", "value": "max-age=63072000"}},
      {"addHeader": {"name": "X-Proxy", "value": "fairlead"}},
      {"removeHeader": {"name": "Content-Type"}},
      {"if": {"all": [{"path": "/headers"}]}, "setHeader": {"name": "X-Echo", "value": "yes"}}
    ]"#;
    let (_e, addr) = with_rules(&demo, &other, request, response).await;
    let mut conn = Conn::open(addr).await;
    conn.send_raw(b"GET /headers HTTP/1.1\r\nHost: h\r\nX-Set: old\r\nX-Added: one\r\nX-Secret: s3cret\r\nX-List: old-a, keep, old-b\r\n\r\n")
        .await;
    let resp = conn.read_response().await;
    let seen = resp.text().to_ascii_lowercase();
    assert!(seen.contains("x-set: new"), "{seen}");
    assert!(!seen.contains("x-set: old"), "{seen}");
    assert!(
        seen.contains("x-added: one") && seen.contains("x-added: two"),
        "{seen}"
    );
    assert!(!seen.contains("x-secret"), "{seen}");
    assert!(seen.contains("x-list: new-a, keep, new-b"), "{seen}");
    assert_eq!(resp.header("x-echo"), Some("yes"));
    let (status, headers) = curl_head(&format!("http://{addr}/"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(header(&headers, "x-proxy"), Some("fairlead"));
    assert_eq!(header(&headers, "content-type"), None);
    assert_eq!(header(&headers, "x-echo"), None, "condition on /headers");
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_answers_with_its_status_and_use_backend_routes() {
    let (demo, other) = (Demo::http("main"), Demo::http("other"));
    let request = r#"[
      {"if": {"all": [{"pathPrefix": "/admin"}]}, "deny": {}},
      {"if": {"all": [{"methods": ["DELETE"]}]}, "deny": {"status": 405}},
      {"if": {"all": [{"header": {"name": "X-Beta", "value": "1"}}]}, "useBackend": "other"}
    ]"#;
    let (_e, addr) = with_rules(&demo, &other, request, "[]").await;
    let mut conn = Conn::open(addr).await;
    let admin = conn.get("/admin/x").await;
    assert_eq!(admin.status, 403);
    conn.send_raw(b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(conn.read_response().await.status, 405);
    assert_eq!(conn.get("/").await.text().trim(), "main");
    conn.send_raw(b"GET / HTTP/1.1\r\nHost: h\r\nX-Beta: 1\r\n\r\n")
        .await;
    assert_eq!(conn.read_response().await.text().trim(), "other");
    conn.send_raw(b"GET / HTTP/1.1\r\nHost: h\r\nX-Beta: 2\r\n\r\n")
        .await;
    assert_eq!(conn.read_response().await.text().trim(), "main");
}

/// Every condition kind: each rule marks the request with a header when its
/// condition holds, and `/headers` shows which marks the server got.
#[tokio::test(flavor = "multi_thread")]
async fn every_condition_kind_over_the_wire() {
    let (demo, other) = (Demo::http("main"), Demo::http("other"));
    let marks = [
        ("tls", r#"{"all": [{"tls": false}]}"#),
        ("host", r#"{"all": [{"host": "api.example"}]}"#),
        ("prefix", r#"{"all": [{"pathPrefix": "/headers"}]}"#),
        ("exact", r#"{"all": [{"path": "/headers"}]}"#),
        ("regex", r#"{"all": [{"pathRegex": "^/head[a-z]+$"}]}"#),
        ("method", r#"{"all": [{"methods": ["POST"]}]}"#),
        ("present", r#"{"all": [{"header": {"name": "X-Env"}}]}"#),
        (
            "value",
            r#"{"all": [{"header": {"name": "X-Env", "value": "prod"}}]}"#,
        ),
        (
            "hdrregex",
            r#"{"all": [{"header": {"name": "X-Env", "regex": "^st"}}]}"#,
        ),
        ("src2", r#"{"all": [{"sourceCidrs": ["127.0.0.2/32"]}]}"#),
        (
            "notsrc2",
            r#"{"all": [{"negate": true, "sourceCidrs": ["127.0.0.2"]}]}"#,
        ),
        (
            "both",
            r#"{"all": [{"host": "api.example"}, {"methods": ["POST"]}]}"#,
        ),
        (
            "either",
            r#"{"any": [{"host": "api.example"}, {"methods": ["POST"]}]}"#,
        ),
    ];
    let rules: Vec<String> = marks
        .iter()
        .map(|(m, c)| {
            format!(r#"{{"if": {c}, "addHeader": {{"name": "X-Mark", "value": "{m}"}}}}"#)
        })
        .collect();
    let (_e, addr) = with_rules(&demo, &other, &format!("[{}]", rules.join(",")), "[]").await;
    let seen = |conn_from: &'static str, request: &'static str| async move {
        let mut conn = Conn::open_from(addr, conn_from).await;
        conn.send_raw(request.as_bytes()).await;
        let body = conn.read_response().await.text().to_ascii_lowercase();
        let mut got: Vec<String> = body
            .lines()
            .filter_map(|l| l.strip_prefix("x-mark: "))
            .map(String::from)
            .collect();
        got.sort();
        got
    };
    let sorted = |ms: &[&str]| {
        let mut v: Vec<String> = ms.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let a = seen(
        "127.0.0.1",
        "GET /headers HTTP/1.1\r\nHost: API.example:81\r\nX-Env: prod\r\n\r\n",
    )
    .await;
    assert_eq!(
        a,
        sorted(&[
            "tls", "host", "prefix", "exact", "regex", "present", "value", "notsrc2", "either"
        ])
    );
    let b = seen(
        "127.0.0.2",
        "POST /headers HTTP/1.1\r\nHost: web.example\r\nX-Env: staging\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(
        b,
        sorted(&[
            "tls", "prefix", "exact", "regex", "method", "present", "hdrregex", "src2", "either"
        ])
    );
}

/// The whole tutorial setup: plain HTTP redirected to a TLS frontend with the
/// same rules, where `tls: true` holds, so curl follows one redirect and gets
/// the server's answer over TLS, with HSTS.
#[tokio::test(flavor = "multi_thread")]
async fn enforce_ssl_end_to_end_with_a_tls_frontend() {
    let demo = Demo::http("main");
    let pki = pki::Pki::new("rules test CA");
    pki.issue("site", "example.com", &["example.com"]);
    let mut plain = frontend("plain", Mode::Http, "main");
    let mut secure = frontend("secure", Mode::Http, "main");
    secure.tls = Some(FrontendTls::terminate(vec![Certificate {
        source: "file site".into(),
        cert_pem: pki.read("site.crt"),
        key_pem: pki.read("site.key"),
    }]));
    let (p, s) = (plain.bind.port(), secure.bind.port());
    let rules = ENFORCE_SSL
        .replace(":8080", &format!(":{p}"))
        .replace(":8443", &format!(":{s}"));
    for fe in [&mut plain, &mut secure] {
        fe.request_rules = serde_json::from_str(&rules).unwrap();
        fe.response_rules = serde_json::from_str(HSTS).unwrap();
    }
    let be = backend(
        "main",
        Mode::Http,
        Balance::Roundrobin,
        vec![demo.server("s")],
    );
    let _e = engine(config(1, vec![plain, secure], vec![be])).await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-L", "--max-time", "10", "-D", "-", "--cacert"])
        .arg(pki::arg(&pki.path("ca.crt")))
        .args(["--resolve", &format!("example.com:{p}:127.0.0.1")])
        .args(["--resolve", &format!("example.com:{s}:127.0.0.1")])
        .arg(format!("http://example.com:{p}/a?b=1"))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(out.status.success(), "{text} {:?}", out.stderr);
    let location = format!("location: https://example.com:{s}/a?b=1");
    assert!(text.starts_with("http/1.1 301"), "{text}");
    assert!(text.contains(&location), "{text}");
    assert_eq!(
        text.matches(" 301 ").count(),
        1,
        "one redirect, no loop: {text}"
    );
    let last = text.rsplit("http/").next().unwrap_or_default();
    assert!(
        last.starts_with("2 200") || last.starts_with("1.1 200"),
        "{text}"
    );
    assert!(
        last.contains("strict-transport-security: max-age=63072000"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("main"),
        "the server answered: {text}"
    );
}
