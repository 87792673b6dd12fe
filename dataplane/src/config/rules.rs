//! HTTP request and response rules (haproxy `http-request` / `http-response`)
//! and their conditions, as plain data. The engine compiles them once per
//! apply (`crate::http::rules`); [`problems`] checks them with the same parsers.
//!
//! Semantics in short: request rules run in order before routing; a redirect
//! or deny answers at once and ends the list; `useBackend` overrides routes.
//! Response rules run in order on every response the client gets, the
//! server's and the proxy's own (redirects, denials, errors), so headers such
//! as HSTS are always present; their conditions are tested on the request as
//! request rules left it.

use std::net::IpAddr;

use http::{HeaderName as Name, HeaderValue as Value};
use ipnet::IpNet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Frontend;

/// Most rules of each kind per frontend (the API's limit too).
pub const MAX_RULES: usize = 128;

/// One request rule: an action, applied when its condition holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRule {
    /// Condition under which the action applies. Default: always.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// What the rule does; written as one key (`redirect`, `setHeader`, ...).
    #[serde(flatten)]
    pub action: RequestAction,
}

/// What a request rule does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestAction {
    /// Answer with a redirect and stop.
    Redirect(Redirect),
    /// Replace every value of a header with one value.
    SetHeader(HeaderValue),
    /// Append a header value.
    AddHeader(HeaderValue),
    /// Remove every value of a header.
    RemoveHeader(HeaderName),
    /// Rewrite each comma-separated value of a header that matches a regex.
    ReplaceHeaderValue(ReplaceHeaderValue),
    /// Answer with an error status and stop.
    Deny(Deny),
    /// Send the request to this backend, overriding routes.
    UseBackend(String),
}

/// One response rule: an action, applied when its condition holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRule {
    /// Condition, tested on the request, under which the action applies. Default: always.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// What the rule does; written as one key (`setHeader`, ...).
    #[serde(flatten)]
    pub action: ResponseAction,
}

/// What a response rule does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResponseAction {
    /// Replace every value of a header with one value.
    SetHeader(HeaderValue),
    /// Append a header value.
    AddHeader(HeaderValue),
    /// Remove every value of a header.
    RemoveHeader(HeaderName),
    /// Rewrite each comma-separated value of a header that matches a regex.
    ReplaceHeaderValue(ReplaceHeaderValue),
}

/// A redirect (haproxy `http-request redirect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    /// Where to: written as one key, `scheme`, `location` or `prefix`.
    #[serde(flatten)]
    pub to: RedirectTo,
    /// With `scheme`: the port of the new URL, replacing the Host's. Default:
    /// the Host's port, dropped when it is the default port of the request's scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Status: 301, 302, 303, 307 or 308. Default 302.
    #[serde(default = "default_redirect_code")]
    pub code: u16,
}

/// The target of a redirect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RedirectTo {
    /// `http` or `https`: the same host, path and query under this scheme.
    Scheme(String),
    /// This URL or path, as is.
    Location(String),
    /// This prefix followed by the request's path and query.
    Prefix(String),
}

/// A header and a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderValue {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// A header, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderName {
    /// Header name.
    pub name: String,
}

/// Rewrites each comma-separated value of a header that the whole `pattern` matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceHeaderValue {
    /// Header name.
    pub name: String,
    /// Regex (Rust `regex` syntax), anchored at both ends.
    pub pattern: String,
    /// Replacement; `$1` or `${1}` is the first group (`${1}` when a letter, digit or `_` follows).
    pub replacement: String,
}

/// Refuses a request (haproxy `http-request deny`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deny {
    /// Status of the answer, 400-599. Default 403.
    #[serde(default = "default_deny_status")]
    pub status: u16,
}

/// Holds when every `all` predicate holds and, when `any` is not empty, at
/// least one `any` predicate holds. At least one predicate is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Predicates that must all hold. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<Predicate>,
    /// Predicates of which one must hold, when not empty. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<Predicate>,
}

/// One test on the request, optionally negated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predicate {
    /// Invert the test. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
    /// The test; written as one key (`tls`, `host`, ...).
    #[serde(flatten)]
    pub test: Test,
}

/// A test on the request or its connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Test {
    /// The client connection is (true) or is not (false) TLS (`ssl_fc`).
    Tls(bool),
    /// The request's host without port equals this, case-insensitive.
    Host(String),
    /// The path starts with this (`path_beg`, plain string prefix).
    PathPrefix(String),
    /// The path equals this (`path`, query excluded).
    Path(String),
    /// The path contains a match of this regex (`path_reg`, unanchored).
    PathRegex(String),
    /// The method is one of these.
    Methods(Vec<String>),
    /// A header is present, or one of its field lines equals or matches.
    Header(HeaderMatch),
    /// The client address is in one of these CIDRs or addresses (`src`).
    SourceCidrs(Vec<String>),
}

/// A header test: present; or a field line equal to `value`; or containing a
/// match of `regex` (unanchored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Header name.
    pub name: String,
    /// Exact value. Default: not tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Regex. Default: not tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

fn default_redirect_code() -> u16 {
    302
}
fn default_deny_status() -> u16 {
    403
}

/// A header name, parsed.
pub(crate) fn header_name(name: &str) -> Result<Name, String> {
    Name::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a valid header name"))
}

/// A header value, parsed.
pub(crate) fn header_value(value: &str) -> Result<Value, String> {
    Value::from_str(value).map_err(|_| format!("{value:?} is not a valid header value"))
}

/// A regex; `anchored` makes it match whole strings only.
pub(crate) fn regex(pattern: &str, anchored: bool) -> Result<Regex, String> {
    let full = if anchored {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_string()
    };
    Regex::new(&full).map_err(|e| {
        // Syntax errors span lines (pattern, caret, reason): keep the reason.
        let text = e.to_string();
        let reason = text.lines().last().unwrap_or_default();
        let reason = reason.trim().trim_start_matches("error: ");
        format!("{pattern:?} is not a valid regex: {reason}")
    })
}

/// A CIDR, or a single address as a /32 or /128.
pub(crate) fn cidr(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR or IP address"))
}

/// Every problem with a frontend's rules, as (field, reason); `backend_is_http`
/// tells whether a `useBackend` target exists in http mode (`None`: missing).
pub(crate) fn problems(
    f: &Frontend,
    backend_is_http: impl Fn(&str) -> Option<bool>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut check = |field: String, result: Result<(), String>| {
        if let Err(reason) = result {
            out.push((field, reason));
        }
    };
    for (kind, len) in [
        ("requestRules", f.request_rules.len()),
        ("responseRules", f.response_rules.len()),
    ] {
        if len > MAX_RULES {
            check(
                kind.into(),
                Err(format!("{len} rules, at most {MAX_RULES}")),
            );
        }
        if len > 0 && f.mode != super::Mode::Http {
            check(kind.into(), Err("rules need http mode".into()));
        }
    }
    for (i, r) in f.request_rules.iter().enumerate() {
        let field = format!("requestRules[{i}]");
        condition_problems(&mut check, &field, r.condition.as_ref());
        match &r.action {
            RequestAction::Redirect(redirect) => {
                let field = format!("{field}.redirect");
                check(
                    format!("{field}.code"),
                    match redirect.code {
                        301 | 302 | 303 | 307 | 308 => Ok(()),
                        c => Err(format!(
                            "{c} is not a redirect code (301, 302, 303, 307, 308)"
                        )),
                    },
                );
                let (key, text) = match &redirect.to {
                    RedirectTo::Scheme(s) => ("scheme", s),
                    RedirectTo::Location(l) => ("location", l),
                    RedirectTo::Prefix(p) => ("prefix", p),
                };
                let target = match &redirect.to {
                    RedirectTo::Scheme(s) if s != "http" && s != "https" => {
                        Err(format!("{s:?} is not http or https"))
                    }
                    _ if text.is_empty() => Err("must not be empty".into()),
                    _ => header_value(text).map(drop),
                };
                check(format!("{field}.{key}"), target);
                let port = match (redirect.port, &redirect.to) {
                    (Some(0), _) => Err("0 is not a port (1-65535)".into()),
                    (Some(_), RedirectTo::Location(_) | RedirectTo::Prefix(_)) => {
                        Err("a port goes only with scheme".into())
                    }
                    _ => Ok(()),
                };
                check(format!("{field}.port"), port);
            }
            RequestAction::SetHeader(h) => {
                header_problems(&mut check, &format!("{field}.setHeader"), h);
            }
            RequestAction::AddHeader(h) => {
                header_problems(&mut check, &format!("{field}.addHeader"), h);
            }
            RequestAction::RemoveHeader(h) => {
                check(
                    format!("{field}.removeHeader.name"),
                    header_name(&h.name).map(drop),
                );
            }
            RequestAction::ReplaceHeaderValue(rv) => replace_problems(&mut check, &field, rv),
            RequestAction::Deny(d) => check(
                format!("{field}.deny.status"),
                if (400..=599).contains(&d.status) {
                    Ok(())
                } else {
                    Err(format!("{} is out of range (400-599)", d.status))
                },
            ),
            RequestAction::UseBackend(b) => check(
                format!("{field}.useBackend"),
                match backend_is_http(b) {
                    None => Err(format!("backend {b:?} does not exist")),
                    Some(false) => Err(format!("backend {b:?} is not in http mode")),
                    Some(true) => Ok(()),
                },
            ),
        }
    }
    for (i, r) in f.response_rules.iter().enumerate() {
        let field = format!("responseRules[{i}]");
        condition_problems(&mut check, &field, r.condition.as_ref());
        match &r.action {
            ResponseAction::SetHeader(h) => {
                header_problems(&mut check, &format!("{field}.setHeader"), h);
            }
            ResponseAction::AddHeader(h) => {
                header_problems(&mut check, &format!("{field}.addHeader"), h);
            }
            ResponseAction::RemoveHeader(h) => {
                check(
                    format!("{field}.removeHeader.name"),
                    header_name(&h.name).map(drop),
                );
            }
            ResponseAction::ReplaceHeaderValue(rv) => replace_problems(&mut check, &field, rv),
        }
    }
    out
}

type Check<'a> = dyn FnMut(String, Result<(), String>) + 'a;

fn header_problems(check: &mut Check<'_>, field: &str, h: &HeaderValue) {
    check(format!("{field}.name"), header_name(&h.name).map(drop));
    check(format!("{field}.value"), header_value(&h.value).map(drop));
}

fn replace_problems(check: &mut Check<'_>, field: &str, r: &ReplaceHeaderValue) {
    let field = format!("{field}.replaceHeaderValue");
    check(format!("{field}.name"), header_name(&r.name).map(drop));
    check(
        format!("{field}.pattern"),
        regex(&r.pattern, true).map(drop),
    );
    check(
        format!("{field}.replacement"),
        header_value(&r.replacement).map(drop),
    );
}

fn condition_problems(check: &mut Check<'_>, field: &str, condition: Option<&Condition>) {
    let Some(c) = condition else { return };
    let field = format!("{field}.if");
    if c.all.is_empty() && c.any.is_empty() {
        check(
            field.clone(),
            Err("set at least one predicate in all or any".into()),
        );
    }
    let all = c
        .all
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{field}.all[{i}]"), p));
    let any = c
        .any
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{field}.any[{i}]"), p));
    for (field, p) in all.chain(any) {
        match &p.test {
            Test::Tls(_) => {}
            Test::Host(h) => check(
                format!("{field}.host"),
                if h.is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(())
                },
            ),
            Test::PathPrefix(path) | Test::Path(path) => {
                let key = if matches!(p.test, Test::Path(_)) {
                    "path"
                } else {
                    "pathPrefix"
                };
                check(
                    format!("{field}.{key}"),
                    if path.starts_with('/') {
                        Ok(())
                    } else {
                        Err("must start with /".into())
                    },
                );
            }
            Test::PathRegex(r) => check(format!("{field}.pathRegex"), regex(r, false).map(drop)),
            Test::Methods(methods) => {
                if methods.is_empty() {
                    check(format!("{field}.methods"), Err("must not be empty".into()));
                }
                for (j, m) in methods.iter().enumerate() {
                    check(
                        format!("{field}.methods[{j}]"),
                        http::Method::from_bytes(m.as_bytes())
                            .map(drop)
                            .map_err(|_| format!("{m:?} is not an HTTP method")),
                    );
                }
            }
            Test::Header(h) => {
                let field = format!("{field}.header");
                check(format!("{field}.name"), header_name(&h.name).map(drop));
                if h.value.is_some() && h.regex.is_some() {
                    check(
                        field.clone(),
                        Err("value and regex are mutually exclusive".into()),
                    );
                }
                if let Some(r) = &h.regex {
                    check(format!("{field}.regex"), regex(r, false).map(drop));
                }
            }
            Test::SourceCidrs(cidrs) => {
                if cidrs.is_empty() {
                    check(
                        format!("{field}.sourceCidrs"),
                        Err("must not be empty".into()),
                    );
                }
                for (j, c) in cidrs.iter().enumerate() {
                    check(format!("{field}.sourceCidrs[{j}]"), cidr(c).map(drop));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
