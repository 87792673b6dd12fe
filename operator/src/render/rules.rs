//! A Frontend's `requestRules` and `responseRules` -> the dataplane's rules.
//! `validate_frontend` has checked them (one action per rule, one test per
//! predicate, ranges); `useBackend` names are resolved like routes' backends.

use fairlead_crds::rules::{
    HeaderValue, Predicate, Redirect, ReplaceHeaderValue, RequestRule, ResponseRule, RuleCondition,
};
use fairlead_dataplane::config;

use super::Report;

/// Default `redirect.code` (haproxy's default too).
const REDIRECT_CODE: u16 = 302;
/// Default `deny.status` (haproxy's default too).
const DENY_STATUS: u16 = 403;

/// Renders request rules; `backend` checks a `useBackend` name (reporting
/// problems at the given field) and returns its `namespace/name`.
pub(super) fn request_rules(
    report: &mut Report,
    rules: &[RequestRule],
    mut backend: impl FnMut(&mut Report, String, &str) -> String,
) -> Vec<config::RequestRule> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let field = format!("spec.requestRules[{i}]");
        let action = if let Some(redirect) = &r.redirect {
            Some(config::RequestAction::Redirect(self::redirect(redirect)))
        } else if let Some(h) = &r.set_header {
            Some(config::RequestAction::SetHeader(header(h)))
        } else if let Some(h) = &r.add_header {
            Some(config::RequestAction::AddHeader(header(h)))
        } else if let Some(h) = &r.remove_header {
            Some(config::RequestAction::RemoveHeader(config::HeaderName {
                name: h.name.clone(),
            }))
        } else if let Some(rv) = &r.replace_header_value {
            Some(config::RequestAction::ReplaceHeaderValue(replace(rv)))
        } else if let Some(deny) = &r.deny {
            Some(config::RequestAction::Deny(config::Deny {
                status: deny.status.map_or(DENY_STATUS, |s| s as u16),
            }))
        } else {
            r.use_backend.as_deref().map(|b| {
                config::RequestAction::UseBackend(backend(report, format!("{field}.useBackend"), b))
            })
        };
        match action {
            Some(action) => out.push(config::RequestRule {
                condition: r.condition.as_ref().map(condition),
                action,
            }),
            None => report.error(field, "set exactly one action"),
        }
    }
    out
}

/// Renders response rules.
pub(super) fn response_rules(
    report: &mut Report,
    rules: &[ResponseRule],
) -> Vec<config::ResponseRule> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let action = if let Some(h) = &r.set_header {
            Some(config::ResponseAction::SetHeader(header(h)))
        } else if let Some(h) = &r.add_header {
            Some(config::ResponseAction::AddHeader(header(h)))
        } else if let Some(h) = &r.remove_header {
            Some(config::ResponseAction::RemoveHeader(config::HeaderName {
                name: h.name.clone(),
            }))
        } else {
            (r.replace_header_value.as_ref())
                .map(|rv| config::ResponseAction::ReplaceHeaderValue(replace(rv)))
        };
        match action {
            Some(action) => out.push(config::ResponseRule {
                condition: r.condition.as_ref().map(condition),
                action,
            }),
            None => report.error(format!("spec.responseRules[{i}]"), "set exactly one action"),
        }
    }
    out
}

fn redirect(r: &Redirect) -> config::Redirect {
    let to = match (&r.scheme, &r.location, &r.prefix) {
        (Some(s), _, _) => config::RedirectTo::Scheme(s.clone()),
        (None, Some(l), _) => config::RedirectTo::Location(l.clone()),
        (None, None, p) => config::RedirectTo::Prefix(p.clone().unwrap_or_default()),
    };
    config::Redirect {
        to,
        // Validated: 1-65535 and a redirect code.
        port: r.port.map(|p| p as u16),
        code: r.code.map_or(REDIRECT_CODE, |c| c as u16),
    }
}

fn header(h: &HeaderValue) -> config::HeaderValue {
    config::HeaderValue {
        name: h.name.clone(),
        value: h.value.clone(),
    }
}

fn replace(r: &ReplaceHeaderValue) -> config::ReplaceHeaderValue {
    config::ReplaceHeaderValue {
        name: r.name.clone(),
        pattern: r.pattern.clone(),
        replacement: r.replacement.clone(),
    }
}

fn condition(c: &RuleCondition) -> config::Condition {
    config::Condition {
        all: c.all.iter().map(predicate).collect(),
        any: c.any.iter().map(predicate).collect(),
    }
}

fn predicate(p: &Predicate) -> config::Predicate {
    use config::Test;
    let test = if let Some(tls) = p.tls {
        Test::Tls(tls)
    } else if let Some(host) = &p.host {
        Test::Host(host.clone())
    } else if let Some(prefix) = &p.path_prefix {
        Test::PathPrefix(prefix.clone())
    } else if let Some(path) = &p.path {
        Test::Path(path.clone())
    } else if let Some(regex) = &p.path_regex {
        Test::PathRegex(regex.clone())
    } else if !p.methods.is_empty() {
        Test::Methods(p.methods.clone())
    } else if let Some(h) = &p.header {
        Test::Header(config::HeaderMatch {
            name: h.name.clone(),
            value: h.value.clone(),
            regex: h.regex.clone(),
        })
    } else {
        // Validation leaves this as the one test set.
        Test::SourceCidrs(p.source_cidrs.clone())
    };
    config::Predicate {
        negate: p.negate.unwrap_or(false),
        test,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use fairlead_dataplane::config::{RequestAction, Test};

    use crate::manifest::load_text;
    use crate::render::{Rendered, render};

    fn rendered(frontend_spec: &str) -> Rendered {
        let yaml = format!(
            "apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {{name: app, namespace: shop}}
spec:
  servers: [{{name: s, address: 127.0.0.1, port: 9001}}]
---
apiVersion: fairlead.io/v1alpha1
kind: Backend
metadata: {{name: db, namespace: shop}}
spec:
  mode: tcp
  servers: [{{name: s, address: 127.0.0.1, port: 9002}}]
---
apiVersion: fairlead.io/v1alpha1
kind: Frontend
metadata: {{name: web, namespace: shop}}
spec:
  bind: {{port: 8080}}
{frontend_spec}"
        );
        let manifests = load_text(Path::new("t.yaml"), &yaml, "default");
        assert!(manifests.errors.is_empty(), "{:?}", manifests.errors);
        render(&manifests.snapshot)
    }

    #[test]
    fn rules_render_with_defaults_and_resolved_backends() {
        let r = rendered(
            "  requestRules:
    - redirect: {prefix: https://a.example}
      if: {any: [{negate: true, sourceCidrs: [10.0.0.0/8]}, {methods: [POST]}]}
    - deny: {}
    - useBackend: app
      if: {all: [{header: {name: X-Beta, value: \"1\"}}]}
  responseRules:
    - setHeader: {name: Strict-Transport-Security, value: max-age=63072000}
",
        );
        assert_eq!(r.errors, []);
        let f = &r.config.frontends[0];
        let json = serde_json::to_string(&f.request_rules).unwrap();
        assert_eq!(
            json,
            r#"[{"if":{"any":[{"negate":true,"sourceCidrs":["10.0.0.0/8"]},{"methods":["POST"]}]},"redirect":{"prefix":"https://a.example","code":302}},{"deny":{"status":403}},{"if":{"all":[{"header":{"name":"X-Beta","value":"1"}}]},"useBackend":"shop/app"}]"#
        );
        assert_eq!(f.response_rules.len(), 1);
        let cond = f.request_rules[0].condition.as_ref().unwrap();
        assert_eq!(cond.any[1].test, Test::Methods(vec!["POST".into()]));
        assert!(
            matches!(&f.request_rules[2].action, RequestAction::UseBackend(b) if b == "shop/app")
        );
    }

    #[test]
    fn use_backend_is_checked_like_routes() {
        let r = rendered("  requestRules: [{useBackend: db}, {useBackend: nope}]\n");
        let errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "Frontend shop/web: spec.requestRules[0].useBackend: Backend \"db\" is in tcp mode, this Frontend in http mode",
                "Frontend shop/web: spec.requestRules[1].useBackend: Backend \"nope\" does not exist in namespace shop",
            ]
        );
        assert!(r.config.frontends.is_empty());
    }

    #[test]
    fn an_invalid_regex_is_reported_with_its_field() {
        // Look-around is valid in PCRE but not in Rust's regex.
        let r = rendered(
            "  requestRules: [{replaceHeaderValue: {name: Host, pattern: \"(?=x)\", replacement: z}}]\n",
        );
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0]
                .to_string()
                .contains("spec.requestRules[0].replaceHeaderValue.pattern"),
            "{}",
            r.errors[0]
        );
    }
}
