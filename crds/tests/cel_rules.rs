//! Evaluates every CEL rule (`x-kubernetes-validations`) of the generated CRDs
//! with cel-interpreter, with `self` bound to the matching part of sample
//! objects: valid samples pass every rule, and each invalid sample fails exactly
//! the rule whose message is expected.

use std::{collections::HashMap, sync::Arc};

use cel_interpreter::{Context, Program, Value as Cel};
use fairlead_crds::{Backend, Frontend, VirtualIP};
use kube::CustomResourceExt;
use serde_json::{Value, json};

/// One step of a path into the schema: a property, or every item of a list.
#[derive(Clone, Debug)]
enum Step {
    Property(String),
    Items,
}

struct Rule {
    path: Vec<Step>,
    rule: String,
    message: String,
}

fn rules_of(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Vec<Rule> {
    let schema = serde_json::to_value(
        &crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema,
    )
    .unwrap();
    let mut rules = Vec::new();
    collect(&schema, &mut Vec::new(), &mut rules);
    assert!(
        !rules.is_empty(),
        "{} has no CEL rules",
        crd.spec.names.kind
    );
    rules
}

fn collect(schema: &Value, path: &mut Vec<Step>, rules: &mut Vec<Rule>) {
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let message = rule["message"].as_str().unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "rule {} has no message", rule["rule"]);
        rules.push(Rule {
            path: path.clone(),
            rule: rule["rule"].as_str().unwrap().to_owned(),
            message,
        });
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        path.push(Step::Property(name.clone()));
        collect(property, path, rules);
        path.pop();
    }
    if schema["items"].is_object() {
        path.push(Step::Items);
        collect(&schema["items"], path, rules);
        path.pop();
    }
}

/// Every value at `path` in `object` (lists fan out; absent fields yield nothing).
fn values_at<'a>(object: &'a Value, path: &[Step]) -> Vec<&'a Value> {
    let Some((step, rest)) = path.split_first() else {
        return vec![object];
    };
    match step {
        Step::Property(name) => object
            .get(name)
            .into_iter()
            .flat_map(|v| values_at(v, rest))
            .collect(),
        Step::Items => object
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|v| values_at(v, rest))
            .collect(),
    }
}

fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Cel::Float(n.as_f64().unwrap()), Cel::Int),
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), to_cel(v)))
            .collect::<HashMap<String, Cel>>()
            .into(),
    }
}

/// The messages of the rules that `object` breaks.
fn failures(rules: &[Rule], object: &Value) -> Vec<String> {
    let mut failed = Vec::new();
    for rule in rules {
        let program =
            Program::compile(&rule.rule).unwrap_or_else(|e| panic!("{}: {e:?}", rule.rule));
        for value in values_at(object, &rule.path) {
            let mut context = Context::default();
            context.add_variable_from_value("self", to_cel(value));
            match program.execute(&context) {
                Ok(Cel::Bool(true)) => {}
                Ok(Cel::Bool(false)) => failed.push(rule.message.clone()),
                other => panic!("rule {} on {value}: {other:?}", rule.rule),
            }
        }
    }
    failed
}

/// Merges `patch` into `base` (objects recursively; `null` removes a field).
fn patched(base: &Value, patch: Value) -> Value {
    let mut out = base.clone();
    merge(&mut out, patch);
    out
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    base.remove(&k);
                } else {
                    merge(base.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn assert_cases(rules: &[Rule], good: &Value, bad: Vec<(Value, &str)>) {
    assert_eq!(
        failures(rules, good),
        Vec::<String>::new(),
        "good sample fails"
    );
    for (patch, message) in bad {
        let object = patched(good, patch.clone());
        assert_eq!(failures(rules, &object), [message], "patch {patch}");
    }
}

#[test]
fn every_rule_compiles_and_names_a_field() {
    for rules in [
        rules_of(Frontend::crd()),
        rules_of(Backend::crd()),
        rules_of(VirtualIP::crd()),
    ] {
        for rule in rules {
            Program::compile(&rule.rule).unwrap_or_else(|e| panic!("{}: {e:?}", rule.rule));
            assert!(
                rule.message.contains(':') || rule.message.contains('.'),
                "{}",
                rule.message
            );
        }
    }
}

#[test]
fn frontend_rules() {
    let good = json!({"spec": {
        "bind": {"port": 8443, "virtualIP": "vip1"},
        "tls": {"certificates": [{"secret": "my-tls"}], "minVersion": "1.2"},
        "defaultBackend": "app",
        "routes": [{"match": {"host": "api.example.com", "pathPrefix": "/v1"}, "backend": "api"}],
        "requestRules": [
            {"redirect": {"scheme": "https", "code": 301}, "if": {"all": [{"tls": true, "negate": true}]}},
            {"replaceHeaderValue": {"name": "Host", "pattern": "(.*):8080", "replacement": "$1:8443"}},
            {"deny": {}, "if": {"any": [{"methods": ["TRACE"]}, {"header": {"name": "X-Bad", "regex": ".*"}}]}},
        ],
        "responseRules": [{"setHeader": {"name": "Strict-Transport-Security", "value": "max-age=63072000"}}],
    }});
    let rule = |r: Value| json!({"spec": {"requestRules": [r]}});
    let bad = vec![
        (
            json!({"spec": {"bind": {"address": "0.0.0.0"}}}),
            "bind: address and virtualIP are mutually exclusive",
        ),
        (
            json!({"spec": {"tls": {"certificates": []}}}),
            "tls.certificates: terminate needs at least one certificate",
        ),
        (
            json!({"spec": {"tls": {"mode": "passthrough"}}}),
            "spec.tls.mode passthrough needs spec.mode tcp",
        ),
        (
            json!({"spec": {"mode": "tcp", "tls": null}}),
            "spec.requestRules, spec.responseRules and spec.stats need spec.mode http",
        ),
        (
            json!({"spec": {"routes": [{"match": {}, "backend": "x"}]}}),
            "match: set at least one of host, pathPrefix, path, sni",
        ),
        (
            json!({"spec": {"routes": [{"match": {"path": "/a", "pathPrefix": "/"}, "backend": "x"}]}}),
            "match: path and pathPrefix are mutually exclusive",
        ),
        (
            rule(json!({})),
            "requestRules: set exactly one action of redirect, setHeader, addHeader, removeHeader, replaceHeaderValue, deny, useBackend",
        ),
        (
            rule(json!({"deny": {}, "useBackend": "b"})),
            "requestRules: set exactly one action of redirect, setHeader, addHeader, removeHeader, replaceHeaderValue, deny, useBackend",
        ),
        (
            rule(json!({"redirect": {"scheme": "https", "prefix": "/x"}})),
            "redirect: set exactly one of scheme, location, prefix",
        ),
        (
            rule(json!({"redirect": {"location": "/x", "code": 200}})),
            "redirect.code must be one of 301, 302, 303, 307, 308",
        ),
        (
            rule(json!({"deny": {}, "if": {"all": []}})),
            "if: set at least one predicate in all or any",
        ),
        (
            rule(json!({"deny": {}, "if": {"all": [{"negate": true}]}})),
            "predicate: set exactly one test of tls, host, pathPrefix, path, pathRegex, methods, header, sourceCidrs",
        ),
        (
            rule(
                json!({"deny": {}, "if": {"any": [{"host": "a", "sourceCidrs": ["10.0.0.0/8"]}]}}),
            ),
            "predicate: set exactly one test of tls, host, pathPrefix, path, pathRegex, methods, header, sourceCidrs",
        ),
        (
            rule(
                json!({"deny": {}, "if": {"all": [{"header": {"name": "A", "value": "b", "regex": "c"}}]}}),
            ),
            "header: value and regex are mutually exclusive",
        ),
        (
            json!({"spec": {"responseRules": [{"setHeader": {"name": "a", "value": "b"}, "removeHeader": {"name": "c"}}]}}),
            "responseRules: set exactly one action of setHeader, addHeader, removeHeader, replaceHeaderValue",
        ),
    ];
    assert_cases(&rules_of(Frontend::crd()), &good, bad);
}

#[test]
fn tcp_passthrough_frontend_passes() {
    let passthrough = json!({"spec": {
        "mode": "tcp",
        "bind": {"port": 443},
        "tls": {"mode": "passthrough"},
        "routes": [{"match": {"sni": "a.example.com"}, "backend": "a"}],
        "requestRules": [],
    }});
    assert_eq!(
        failures(&rules_of(Frontend::crd()), &passthrough),
        Vec::<String>::new()
    );
}

#[test]
fn backend_rules() {
    let good = json!({"spec": {
        "balance": "uri",
        "servers": [{"name": "srv1", "address": "10.0.0.11", "port": 8080}],
        "service": {"name": "app", "port": "http"},
    }});
    let bad = vec![
        (
            json!({"spec": {"servers": [], "service": null}}),
            "spec: set servers, service or both",
        ),
        (
            json!({"spec": {"mode": "tcp"}}),
            "spec.balance uri needs spec.mode http",
        ),
    ];
    assert_cases(&rules_of(Backend::crd()), &good, bad);
    let service_only = patched(&good, json!({"spec": {"servers": null}}));
    assert_eq!(
        failures(&rules_of(Backend::crd()), &service_only),
        Vec::<String>::new()
    );
}

#[test]
fn virtual_ip_rules() {
    let good = json!({"spec": {
        "addresses": ["192.0.2.100/24"],
        "virtualRouterID": 51,
        "advertInterval": "100ms",
        "peers": {"mode": "unicast", "addresses": ["10.0.0.2"]},
    }});
    let bad = vec![
        (
            json!({"spec": {"addresses": []}}),
            "spec.addresses: set at least one address",
        ),
        (
            json!({"spec": {"addresses": null}}),
            "spec.addresses: set at least one address",
        ),
        (
            json!({"spec": {"version": 2}}),
            "spec.advertInterval: VRRP version 2 needs whole seconds (s, m, h units)",
        ),
        (
            json!({"spec": {"peers": {"mode": "multicast"}}}),
            "peers.addresses need peers.mode unicast",
        ),
        (
            json!({"spec": {"authSecret": "vrrp"}}),
            "spec.authSecret: VRRP authentication exists in version 2 only",
        ),
        (
            json!({"spec": {"version": 2, "advertInterval": "1s", "addresses": ["fd00::1/64"]}}),
            "spec.version: VRRP version 2 is IPv4 only; IPv6 addresses need version 3",
        ),
    ];
    assert_cases(&rules_of(VirtualIP::crd()), &good, bad);
    let v6 = patched(&good, json!({"spec": {"addresses": ["fd00::1/64"]}}));
    assert_eq!(
        failures(&rules_of(VirtualIP::crd()), &v6),
        Vec::<String>::new()
    );
    let v2 = patched(
        &good,
        json!({"spec": {"version": 2, "advertInterval": "1m1s", "authSecret": "vrrp"}}),
    );
    assert_eq!(
        failures(&rules_of(VirtualIP::crd()), &v2),
        Vec::<String>::new()
    );
}
