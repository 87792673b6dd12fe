use std::net::SocketAddr;

use super::*;
use crate::config::{Frontend, Mode};

/// Rules from the JSON of `requestRules` and `responseRules`.
fn rules(request: &str, response: &str) -> CompiledRules {
    let mut f = Frontend::new("fe", Mode::Http, "127.0.0.1:1".parse().unwrap());
    f.request_rules = serde_json::from_str(request).unwrap();
    f.response_rules = serde_json::from_str(response).unwrap();
    CompiledRules::build(&f, |b| Err(Error::Invalid(format!("no backend {b}")))).unwrap()
}

fn client(peer: &str, tls: bool) -> Client {
    let peer: SocketAddr = peer.parse().unwrap();
    Client {
        peer,
        peer_header: headers::ip_value(peer.ip()),
        tls,
    }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.body(()).unwrap()
}

fn answer(v: Verdict<'_>) -> Response<ProxyBody> {
    match v {
        Verdict::Answer(resp) | Verdict::Deny(resp) => resp,
        Verdict::Forward(_) => panic!("expected an answer"),
    }
}

fn location(resp: &Response<ProxyBody>) -> &str {
    resp.headers()[header::LOCATION].to_str().unwrap()
}

const ENFORCE_SSL: &str = r#"[
  {"replaceHeaderValue": {"name": "Host", "pattern": "(.*):8080", "replacement": "$1:8443"}},
  {"if": {"all": [{"negate": true, "tls": true}]}, "redirect": {"scheme": "https", "code": 301}}
]"#;

#[test]
fn enforce_ssl_rewrites_the_host_port_then_redirects_plain_requests() {
    let r = rules(ENFORCE_SSL, "[]");
    let mut req = request("GET", "/a?b=1", &[("host", "example.com:8080")]);
    let resp = answer(r.on_request(&mut req, &client("127.0.0.1:5000", false)));
    assert_eq!(resp.status(), 301);
    assert_eq!(location(&resp), "https://example.com:8443/a?b=1");
    let mut req = request("GET", "/", &[("host", "example.com:8443")]);
    assert!(matches!(
        r.on_request(&mut req, &client("127.0.0.1:5000", true)),
        Verdict::Forward(None)
    ));
}

#[test]
fn rules_on_host_apply_to_the_authority_of_http2_requests() {
    let r = rules(ENFORCE_SSL, "[]");
    let mut req = request("GET", "http://example.com:8080/a", &[]);
    let resp = answer(r.on_request(&mut req, &client("127.0.0.1:5000", false)));
    assert_eq!(location(&resp), "https://example.com:8443/a");
}

#[test]
fn scheme_redirect_ports() {
    let go = |redirect: &str, host: &str, tls: bool| {
        let r = rules(&format!(r#"[{{"redirect": {redirect}}}]"#), "[]");
        let mut req = request("GET", "/p", &[("host", host)]);
        let resp = answer(r.on_request(&mut req, &client("127.0.0.1:1", tls)));
        assert_eq!(resp.status(), 302);
        location(&resp).to_string()
    };
    assert_eq!(
        go(r#"{"scheme": "https"}"#, "a.example:80", false),
        "https://a.example/p"
    );
    assert_eq!(
        go(r#"{"scheme": "https"}"#, "a.example", false),
        "https://a.example/p"
    );
    assert_eq!(
        go(
            r#"{"scheme": "https", "port": 8443}"#,
            "a.example:8080",
            false
        ),
        "https://a.example:8443/p"
    );
    assert_eq!(
        go(
            r#"{"scheme": "https", "port": 443}"#,
            "a.example:8080",
            false
        ),
        "https://a.example/p"
    );
    assert_eq!(
        go(r#"{"scheme": "http"}"#, "[::1]:443", true),
        "http://[::1]/p"
    );
    assert_eq!(
        go(r#"{"prefix": "https://b.example/"}"#, "a", false),
        "https://b.example/p"
    );
    assert_eq!(go(r#"{"location": "/moved"}"#, "a", false), "/moved");
}

#[test]
fn scheme_redirect_without_a_host_is_a_bad_request() {
    let r = rules(r#"[{"redirect": {"scheme": "https"}}]"#, "[]");
    let mut req = request("GET", "/", &[]);
    let resp = answer(r.on_request(&mut req, &client("127.0.0.1:1", false)));
    assert_eq!(resp.status(), 400);
}

#[test]
fn header_edits_apply_in_order_and_deny_stops() {
    let r = rules(
        r#"[
      {"setHeader": {"name": "X-A", "value": "1"}},
      {"addHeader": {"name": "X-A", "value": "2"}},
      {"removeHeader": {"name": "X-Gone"}},
      {"replaceHeaderValue": {"name": "X-List", "pattern": "v(\\d)", "replacement": "w$1"}},
      {"if": {"all": [{"path": "/no"}]}, "deny": {"status": 429}},
      {"setHeader": {"name": "X-Late", "value": "yes"}}
    ]"#,
        "[]",
    );
    let c = client("127.0.0.1:1", false);
    let mut req = request(
        "GET",
        "/",
        &[("x-a", "0"), ("x-gone", "1"), ("x-list", "v1, x, v22,v3")],
    );
    assert!(matches!(r.on_request(&mut req, &c), Verdict::Forward(None)));
    let all: Vec<_> = req.headers().get_all("x-a").iter().collect();
    assert_eq!(all, ["1", "2"]);
    assert!(!req.headers().contains_key("x-gone"));
    assert_eq!(req.headers()["x-list"], "w1, x, v22, w3");
    assert_eq!(req.headers()["x-late"], "yes");
    let mut req = request("GET", "/no", &[]);
    let resp = answer(r.on_request(&mut req, &c));
    assert_eq!(resp.status(), 429);
    assert!(!req.headers().contains_key("x-late"));
}

#[test]
fn replace_leaves_headers_untouched_without_a_match() {
    let mut h = HeaderMap::new();
    h.append("x", HeaderValue::from_static("a"));
    h.append("x", HeaderValue::from_static("b,c"));
    let re = regex("z", true).unwrap();
    replace(&mut h, &HeaderName::from_static("x"), &re, "y");
    assert_eq!(h.get_all("x").iter().collect::<Vec<_>>(), ["a", "b,c"]);
}

/// Whether a deny rule guarded by `condition` fires for `req` from `c`.
fn fires(condition: &str, req: Request<()>, c: &Client) -> bool {
    let r = rules(&format!(r#"[{{"if": {condition}, "deny": {{}}}}]"#), "[]");
    let mut req = req;
    matches!(r.on_request(&mut req, c), Verdict::Deny(_))
}

#[test]
fn every_predicate_kind() {
    let c = client("127.0.0.1:1", false);
    let get = |uri: &str| {
        request(
            "GET",
            uri,
            &[("host", "Api.Example:81"), ("x-env", "prod-eu")],
        )
    };
    let yes = |cond: &str| assert!(fires(cond, get("/api/v1"), &c), "{cond}");
    let no = |cond: &str| assert!(!fires(cond, get("/api/v1"), &c), "{cond}");
    yes(r#"{"all": [{"tls": false}]}"#);
    no(r#"{"all": [{"tls": true}]}"#);
    yes(r#"{"all": [{"host": "api.example"}]}"#);
    no(r#"{"all": [{"host": "api.example:81"}]}"#);
    yes(r#"{"all": [{"pathPrefix": "/api"}]}"#);
    no(r#"{"all": [{"pathPrefix": "/v1"}]}"#);
    yes(r#"{"all": [{"path": "/api/v1"}]}"#);
    no(r#"{"all": [{"path": "/api"}]}"#);
    yes(r#"{"all": [{"pathRegex": "/v[0-9]+$"}]}"#);
    no(r#"{"all": [{"pathRegex": "^/v"}]}"#);
    yes(r#"{"all": [{"methods": ["POST", "GET"]}]}"#);
    no(r#"{"all": [{"methods": ["POST"]}]}"#);
    yes(r#"{"all": [{"header": {"name": "X-Env"}}]}"#);
    no(r#"{"all": [{"header": {"name": "X-Other"}}]}"#);
    yes(r#"{"all": [{"header": {"name": "X-Env", "value": "prod-eu"}}]}"#);
    no(r#"{"all": [{"header": {"name": "X-Env", "value": "prod"}}]}"#);
    yes(r#"{"all": [{"header": {"name": "X-Env", "regex": "^prod"}}]}"#);
    no(r#"{"all": [{"header": {"name": "X-Env", "regex": "^dev"}}]}"#);
    yes(r#"{"all": [{"sourceCidrs": ["10.0.0.0/8", "127.0.0.0/24"]}]}"#);
    no(r#"{"all": [{"sourceCidrs": ["127.0.0.2"]}]}"#);
    no(r#"{"all": [{"negate": true, "tls": false}]}"#);
    yes(r#"{"all": [{"tls": false}, {"path": "/api/v1"}]}"#);
    no(r#"{"all": [{"tls": false}, {"path": "/x"}]}"#);
    yes(r#"{"any": [{"tls": true}, {"path": "/api/v1"}]}"#);
    no(r#"{"any": [{"tls": true}, {"path": "/x"}]}"#);
    no(r#"{"all": [{"tls": false}], "any": [{"tls": true}, {"path": "/x"}]}"#);
    let mapped = client("[::ffff:127.0.0.1]:1", false);
    assert!(fires(
        r#"{"all": [{"sourceCidrs": ["127.0.0.1"]}]}"#,
        get("/"),
        &mapped
    ));
}

#[test]
fn response_rules_use_the_request_mask() {
    let r = rules(
        "[]",
        r#"[
      {"setHeader": {"name": "Strict-Transport-Security", "value": "max-age=63072000"}},
      {"if": {"all": [{"pathPrefix": "/private"}]}, "removeHeader": {"name": "Server"}},
      {"replaceHeaderValue": {"name": "Location", "pattern": "http://(.*)", "replacement": "https://$1"}}
    ]"#,
    );
    let c = client("127.0.0.1:1", false);
    let respond = |path: &str| {
        let mask = r.response_mask(&request("GET", path, &[]), &c);
        let mut resp = Response::builder()
            .header("server", "demo")
            .header("location", "http://a/b")
            .body(())
            .unwrap();
        r.on_response(mask, &mut resp);
        resp
    };
    let public = respond("/");
    assert_eq!(
        public.headers()["strict-transport-security"],
        "max-age=63072000"
    );
    assert_eq!(public.headers()["server"], "demo");
    assert_eq!(public.headers()["location"], "https://a/b");
    assert!(!respond("/private/x").headers().contains_key("server"));
}
