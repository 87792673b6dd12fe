use super::*;
use crate::config::{Backend, Balance, DataplaneConfig, Mode};

fn config(request: &str, response: &str) -> DataplaneConfig {
    let mut f = Frontend::new("fe", Mode::Http, "127.0.0.1:1".parse().unwrap());
    f.request_rules = serde_json::from_str(request).unwrap();
    f.response_rules = serde_json::from_str(response).unwrap();
    DataplaneConfig {
        frontends: vec![f],
        backends: vec![
            Backend::new("web", Mode::Http, Balance::Roundrobin, vec![]),
            Backend::new("db", Mode::Tcp, Balance::Roundrobin, vec![]),
        ],
        ..Default::default()
    }
}

fn problems(request: &str, response: &str) -> Vec<String> {
    match config(request, response).validate() {
        Ok(_) => vec![],
        Err(e) => e.to_string().lines().map(String::from).collect(),
    }
}

#[test]
fn rules_round_trip_in_the_api_shape() {
    let request = r#"[{"if":{"all":[{"negate":true,"tls":true}],"any":[{"sourceCidrs":["10.0.0.0/8"]}]},"redirect":{"scheme":"https","port":8443,"code":301}},{"useBackend":"web"},{"deny":{"status":403}}]"#;
    let response = r#"[{"setHeader":{"name":"Strict-Transport-Security","value":"max-age=1"}}]"#;
    let cfg = config(request, response).validate().unwrap();
    let f = &cfg.frontends[0];
    assert_eq!(serde_json::to_string(&f.request_rules).unwrap(), request);
    assert_eq!(serde_json::to_string(&f.response_rules).unwrap(), response);
    let parsed: Vec<RequestRule> =
        serde_json::from_str(r#"[{"redirect":{"prefix":"/x"}},{"deny":{}}]"#).unwrap();
    let RequestAction::Redirect(r) = &parsed[0].action else {
        panic!("{parsed:?}")
    };
    assert_eq!((r.code, r.port), (302, None));
    assert_eq!(parsed[1].action, RequestAction::Deny(Deny { status: 403 }));
}

#[test]
fn valid_rules_pass() {
    let request = r#"[
      {"replaceHeaderValue": {"name": "Host", "pattern": "(.*):8080", "replacement": "$1:8443"}},
      {"if": {"all": [{"methods": ["GET"]}, {"header": {"name": "X-A", "regex": "^a"}}]}, "useBackend": "web"}
    ]"#;
    assert_eq!(problems(request, "[]"), Vec::<String>::new());
}

#[test]
fn problems_name_the_frontend_and_field() {
    let request = r#"[
      {"setHeader": {"name": "Bad Name", "value": "x"}},
      {"redirect": {"scheme": "ftp", "code": 200}},
      {"replaceHeaderValue": {"name": "Host", "pattern": "(", "replacement": "x"}},
      {"deny": {"status": 200}},
      {"useBackend": "db"},
      {"useBackend": "nope"},
      {"redirect": {"location": "/x", "port": 8443}},
      {"if": {"all": [{"pathRegex": "["}], "any": [{"sourceCidrs": ["10.0.0.0/33"]}, {"path": "x"}]}, "deny": {}},
      {"if": {}, "deny": {}}
    ]"#;
    let got = problems(
        request,
        r#"[{"addHeader": {"name": "X", "value": "a\nb"}}]"#,
    );
    let expect = [
        "frontend fe: requestRules[0].setHeader.name: \"Bad Name\" is not a valid header name",
        "frontend fe: requestRules[1].redirect.code: 200 is not a redirect code",
        "frontend fe: requestRules[1].redirect.scheme: \"ftp\" is not http or https",
        "frontend fe: requestRules[2].replaceHeaderValue.pattern: \"(\" is not a valid regex",
        "frontend fe: requestRules[3].deny.status: 200 is out of range (400-599)",
        "frontend fe: requestRules[4].useBackend: backend \"db\" is not in http mode",
        "frontend fe: requestRules[5].useBackend: backend \"nope\" does not exist",
        "frontend fe: requestRules[6].redirect.port: a port goes only with scheme",
        "frontend fe: requestRules[7].if.all[0].pathRegex: \"[\" is not a valid regex",
        "frontend fe: requestRules[7].if.any[0].sourceCidrs[0]: \"10.0.0.0/33\" is not a CIDR",
        "frontend fe: requestRules[7].if.any[1].path: must start with /",
        "frontend fe: requestRules[8].if: set at least one predicate in all or any",
        "frontend fe: responseRules[0].addHeader.value: \"a\\nb\" is not a valid header value",
    ];
    assert_eq!(got.len(), expect.len(), "{got:#?}");
    for (got, want) in got.iter().zip(expect) {
        assert!(
            got.starts_with(want),
            "{got}\n  does not start with\n{want}"
        );
    }
}

#[test]
fn rules_need_http_mode_and_at_most_128() {
    let mut cfg = config(r#"[{"deny": {}}]"#, "[]");
    cfg.frontends[0].mode = Mode::Tcp;
    cfg.frontends[0].default_backend = Some("db".into());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("frontend fe: requestRules: rules need http mode"),
        "{err}"
    );
    let many = format!("[{}]", vec![r#"{"deny": {}}"#; 129].join(","));
    assert_eq!(
        problems(
            "[]",
            &many.replace(r#""deny": {}"#, r#""removeHeader": {"name": "A"}"#)
        ),
        ["frontend fe: responseRules: 129 rules, at most 128"]
    );
}
