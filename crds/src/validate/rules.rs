//! Validation of request and response rules and their conditions.

use ipnet::IpNet;

use super::{Errors, is_token};
use crate::rules::{
    HeaderMatch, HeaderName, HeaderValue, Predicate, Redirect, ReplaceHeaderValue, RequestRule,
    ResponseRule, RuleCondition,
};

pub(super) fn request_rule(errors: &mut Errors, field: &str, rule: &RequestRule) {
    let edits = HeaderEdits {
        set: rule.set_header.as_ref(),
        add: rule.add_header.as_ref(),
        remove: rule.remove_header.as_ref(),
        replace: rule.replace_header_value.as_ref(),
    };
    let mut actions = vec![("redirect", rule.redirect.is_some())];
    actions.extend(edits.actions());
    actions.extend([
        ("deny", rule.deny.is_some()),
        ("useBackend", rule.use_backend.is_some()),
    ]);
    errors.exactly_one(field, "one action of", &actions);
    shared_parts(errors, field, rule.condition.as_ref(), edits);
    if let Some(redirect) = &rule.redirect {
        self::redirect(errors, &format!("{field}.redirect"), redirect);
    }
    if let Some(deny) = &rule.deny {
        errors.range(&format!("{field}.deny.status"), deny.status, 400, 599);
    }
    if let Some(backend) = &rule.use_backend {
        errors.not_empty(&format!("{field}.useBackend"), backend);
    }
}

pub(super) fn response_rule(errors: &mut Errors, field: &str, rule: &ResponseRule) {
    let edits = HeaderEdits {
        set: rule.set_header.as_ref(),
        add: rule.add_header.as_ref(),
        remove: rule.remove_header.as_ref(),
        replace: rule.replace_header_value.as_ref(),
    };
    errors.exactly_one(field, "one action of", &edits.actions());
    shared_parts(errors, field, rule.condition.as_ref(), edits);
}

/// The header actions request and response rules share.
struct HeaderEdits<'a> {
    set: Option<&'a HeaderValue>,
    add: Option<&'a HeaderValue>,
    remove: Option<&'a HeaderName>,
    replace: Option<&'a ReplaceHeaderValue>,
}

impl HeaderEdits<'_> {
    /// The header actions by field name, and whether each is set.
    fn actions(&self) -> [(&'static str, bool); 4] {
        [
            ("setHeader", self.set.is_some()),
            ("addHeader", self.add.is_some()),
            ("removeHeader", self.remove.is_some()),
            ("replaceHeaderValue", self.replace.is_some()),
        ]
    }
}

/// Checks what request and response rules have in common: the condition and the header actions.
fn shared_parts(
    errors: &mut Errors,
    field: &str,
    condition: Option<&RuleCondition>,
    edits: HeaderEdits,
) {
    if let Some(condition) = condition {
        self::condition(errors, &format!("{field}.if"), condition);
    }
    if let Some(header) = edits.set {
        header_value(errors, &format!("{field}.setHeader"), header);
    }
    if let Some(header) = edits.add {
        header_value(errors, &format!("{field}.addHeader"), header);
    }
    if let Some(header) = edits.remove {
        header_name(errors, &format!("{field}.removeHeader"), header);
    }
    if let Some(replace) = edits.replace {
        replace_header_value(errors, &format!("{field}.replaceHeaderValue"), replace);
    }
}

fn redirect(errors: &mut Errors, field: &str, redirect: &Redirect) {
    errors.exactly_one(
        field,
        "one of",
        &[
            ("scheme", redirect.scheme.is_some()),
            ("location", redirect.location.is_some()),
            ("prefix", redirect.prefix.is_some()),
        ],
    );
    if let Some(scheme) = &redirect.scheme
        && scheme != "http"
        && scheme != "https"
    {
        errors.push(
            format!("{field}.scheme"),
            format!("{scheme:?} is not http or https"),
        );
    }
    if let Some(location) = &redirect.location {
        errors.not_empty(&format!("{field}.location"), location);
        errors.header_value(&format!("{field}.location"), location);
    }
    if let Some(prefix) = &redirect.prefix {
        errors.not_empty(&format!("{field}.prefix"), prefix);
        errors.header_value(&format!("{field}.prefix"), prefix);
    }
    if let Some(port) = redirect.port {
        errors.port(&format!("{field}.port"), port);
    }
    if let Some(code) = redirect.code
        && ![301, 302, 303, 307, 308].contains(&code)
    {
        errors.push(
            format!("{field}.code"),
            format!("{code} is not a redirect code (301, 302, 303, 307, 308)"),
        );
    }
}

fn header_value(errors: &mut Errors, field: &str, header: &HeaderValue) {
    errors.header_name(&format!("{field}.name"), &header.name);
    errors.header_value(&format!("{field}.value"), &header.value);
}

fn header_name(errors: &mut Errors, field: &str, header: &HeaderName) {
    errors.header_name(&format!("{field}.name"), &header.name);
}

fn replace_header_value(errors: &mut Errors, field: &str, replace: &ReplaceHeaderValue) {
    errors.header_name(&format!("{field}.name"), &replace.name);
    errors.not_empty(&format!("{field}.pattern"), &replace.pattern);
    errors.regex(&format!("{field}.pattern"), &replace.pattern);
    errors.header_value(&format!("{field}.replacement"), &replace.replacement);
}

fn condition(errors: &mut Errors, field: &str, condition: &RuleCondition) {
    if condition.all.is_empty() && condition.any.is_empty() {
        errors.push(field, "set at least one predicate in all or any");
    }
    errors.max_items(&format!("{field}.all"), condition.all.len(), 16);
    errors.max_items(&format!("{field}.any"), condition.any.len(), 16);
    for (i, p) in condition.all.iter().enumerate() {
        predicate(errors, &format!("{field}.all[{i}]"), p);
    }
    for (i, p) in condition.any.iter().enumerate() {
        predicate(errors, &format!("{field}.any[{i}]"), p);
    }
}

fn predicate(errors: &mut Errors, field: &str, p: &Predicate) {
    errors.exactly_one(
        field,
        "one test of",
        &[
            ("tls", p.tls.is_some()),
            ("host", p.host.is_some()),
            ("pathPrefix", p.path_prefix.is_some()),
            ("path", p.path.is_some()),
            ("pathRegex", p.path_regex.is_some()),
            ("methods", !p.methods.is_empty()),
            ("header", p.header.is_some()),
            ("sourceCidrs", !p.source_cidrs.is_empty()),
        ],
    );
    if let Some(host) = &p.host {
        errors.not_empty(&format!("{field}.host"), host);
    }
    errors.path(&format!("{field}.pathPrefix"), p.path_prefix.as_ref());
    errors.path(&format!("{field}.path"), p.path.as_ref());
    if let Some(regex) = &p.path_regex {
        errors.not_empty(&format!("{field}.pathRegex"), regex);
        errors.regex(&format!("{field}.pathRegex"), regex);
    }
    for (i, method) in p.methods.iter().enumerate() {
        if !is_token(method) || method.bytes().any(|b| !b.is_ascii_uppercase()) {
            errors.push(
                format!("{field}.methods[{i}]"),
                format!("{method:?} is not an upper-case HTTP method"),
            );
        }
    }
    if let Some(header) = &p.header {
        header_match(errors, &format!("{field}.header"), header);
    }
    for (i, cidr) in p.source_cidrs.iter().enumerate() {
        if cidr.parse::<IpNet>().is_err() && cidr.parse::<std::net::IpAddr>().is_err() {
            errors.push(
                format!("{field}.sourceCidrs[{i}]"),
                format!("{cidr:?} is not a CIDR or IP address"),
            );
        }
    }
}

fn header_match(errors: &mut Errors, field: &str, header: &HeaderMatch) {
    errors.header_name(&format!("{field}.name"), &header.name);
    if header.value.is_some() && header.regex.is_some() {
        errors.push(field, "value and regex are mutually exclusive");
    }
    if let Some(regex) = &header.regex {
        errors.regex(&format!("{field}.regex"), regex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Deny;
    use crate::validate::messages;

    fn request_errors(rule: &RequestRule) -> Vec<String> {
        let mut errors = Errors::default();
        request_rule(&mut errors, "r", rule);
        messages(&errors.into_vec())
    }

    fn response_errors(rule: &ResponseRule) -> Vec<String> {
        let mut errors = Errors::default();
        response_rule(&mut errors, "r", rule);
        messages(&errors.into_vec())
    }

    fn deny() -> RequestRule {
        RequestRule {
            deny: Some(Deny::default()),
            ..Default::default()
        }
    }

    fn when(p: Predicate) -> Option<RuleCondition> {
        Some(RuleCondition {
            all: vec![p],
            any: vec![],
        })
    }

    #[test]
    fn request_rule_needs_exactly_one_action() {
        assert!(request_errors(&deny()).is_empty());
        let none = request_errors(&RequestRule::default());
        assert_eq!(none.len(), 1);
        assert_eq!(
            none,
            [
                "r: set exactly one action of redirect, setHeader, addHeader, removeHeader, replaceHeaderValue, deny, useBackend (0 set)"
            ]
        );
        let two = RequestRule {
            use_backend: Some("b".into()),
            ..deny()
        };
        assert!(request_errors(&two)[0].contains("(2 set)"));
    }

    #[test]
    fn response_rule_needs_exactly_one_action() {
        let ok = ResponseRule {
            remove_header: Some(HeaderName {
                name: "Server".into(),
            }),
            ..Default::default()
        };
        assert!(response_errors(&ok).is_empty());
        assert_eq!(
            response_errors(&ResponseRule::default()),
            [
                "r: set exactly one action of setHeader, addHeader, removeHeader, replaceHeaderValue (0 set)"
            ]
        );
    }

    #[test]
    fn redirect_needs_one_target_a_known_scheme_and_a_redirect_code() {
        let rule = |redirect| RequestRule {
            redirect: Some(redirect),
            ..Default::default()
        };
        let https = Redirect {
            scheme: Some("https".into()),
            code: Some(301),
            ..Default::default()
        };
        assert!(request_errors(&rule(https.clone())).is_empty());
        let both = Redirect {
            prefix: Some("https://x".into()),
            ..https.clone()
        };
        assert!(request_errors(&rule(both))[0].starts_with("r.redirect: set exactly one of"));
        let ftp = Redirect {
            scheme: Some("ftp".into()),
            ..Default::default()
        };
        assert_eq!(
            request_errors(&rule(ftp)),
            ["r.redirect.scheme: \"ftp\" is not http or https"]
        );
        let code = Redirect {
            code: Some(200),
            ..https
        };
        assert_eq!(
            request_errors(&rule(code)),
            ["r.redirect.code: 200 is not a redirect code (301, 302, 303, 307, 308)"]
        );
    }

    #[test]
    fn header_actions_check_names_values_and_regexes() {
        let set = RequestRule {
            set_header: Some(HeaderValue {
                name: "Bad Name".into(),
                value: "a\r\nb".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            request_errors(&set),
            [
                "r.setHeader.name: \"Bad Name\" is not a valid header name",
                "r.setHeader.value: must not contain CR, LF or NUL"
            ]
        );
        let replace = RequestRule {
            replace_header_value: Some(ReplaceHeaderValue {
                name: "Host".into(),
                pattern: "(.*:8080".into(),
                replacement: "$1".into(),
            }),
            ..Default::default()
        };
        let errors = request_errors(&replace);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .starts_with("r.replaceHeaderValue.pattern: \"(.*:8080\" is not a valid regex"),
            "{errors:?}"
        );
    }

    #[test]
    fn deny_status_is_an_error_status() {
        let rule = RequestRule {
            deny: Some(Deny { status: Some(200) }),
            ..Default::default()
        };
        assert_eq!(
            request_errors(&rule),
            ["r.deny.status: 200 is out of range (400 to 599)"]
        );
    }

    #[test]
    fn condition_needs_a_predicate_and_each_predicate_one_test() {
        let empty = RequestRule {
            condition: Some(RuleCondition::default()),
            ..deny()
        };
        assert_eq!(
            request_errors(&empty),
            ["r.if: set at least one predicate in all or any"]
        );
        let two_tests = RequestRule {
            condition: when(Predicate {
                tls: Some(true),
                host: Some("a".into()),
                ..Default::default()
            }),
            ..deny()
        };
        assert!(request_errors(&two_tests)[0].starts_with("r.if.all[0]: set exactly one test"));
        let negated_tls = RequestRule {
            condition: when(Predicate {
                negate: Some(true),
                tls: Some(true),
                ..Default::default()
            }),
            ..deny()
        };
        assert!(request_errors(&negated_tls).is_empty());
        let seventeen = RequestRule {
            condition: Some(RuleCondition {
                all: vec![],
                any: vec![
                    Predicate {
                        tls: Some(true),
                        ..Default::default()
                    };
                    17
                ],
            }),
            ..deny()
        };
        assert_eq!(
            request_errors(&seventeen),
            ["r.if.any: has 17 items, at most 16 are allowed"]
        );
    }

    #[test]
    fn predicates_check_their_values() {
        let check = |p: Predicate| {
            request_errors(&RequestRule {
                condition: Some(RuleCondition {
                    all: vec![],
                    any: vec![p],
                }),
                ..deny()
            })
        };
        let path = check(Predicate {
            path: Some("x".into()),
            ..Default::default()
        });
        assert_eq!(path, ["r.if.any[0].path: \"x\" does not start with /"]);
        let regex = check(Predicate {
            path_regex: Some("[".into()),
            ..Default::default()
        });
        assert!(regex[0].starts_with("r.if.any[0].pathRegex: \"[\" is not a valid regex"));
        let methods = check(Predicate {
            methods: vec!["GET".into(), "get".into()],
            ..Default::default()
        });
        assert_eq!(
            methods,
            ["r.if.any[0].methods[1]: \"get\" is not an upper-case HTTP method"]
        );
        let cidrs = check(Predicate {
            source_cidrs: vec!["10.0.0.0/8".into(), "::1".into(), "10.0.0.0/33".into()],
            ..Default::default()
        });
        assert_eq!(
            cidrs,
            ["r.if.any[0].sourceCidrs[2]: \"10.0.0.0/33\" is not a CIDR or IP address"]
        );
        let header = check(Predicate {
            header: Some(HeaderMatch {
                name: "X-Env".into(),
                value: Some("prod".into()),
                regex: Some("(".into()),
            }),
            ..Default::default()
        });
        assert_eq!(header.len(), 2, "{header:?}");
        assert_eq!(
            header[0],
            "r.if.any[0].header: value and regex are mutually exclusive"
        );
    }
}
