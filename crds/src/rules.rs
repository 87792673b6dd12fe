//! Ordered HTTP request and response rules (`http-request ...`,
//! `http-response ...`) and the conditions that guard them (`if ...`).
//!
//! Each rule is a struct of optional actions of which exactly one is set; a CEL
//! rule in the schema and [`crate::validate`] both enforce it. (kube cannot
//! express this as a Rust enum with data in a structural schema.)

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One request rule: an action, applied when its condition holds.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "(has(self.redirect) ? 1 : 0) + (has(self.setHeader) ? 1 : 0) + (has(self.addHeader) ? 1 : 0) + (has(self.removeHeader) ? 1 : 0) + (has(self.replaceHeaderValue) ? 1 : 0) + (has(self.deny) ? 1 : 0) + (has(self.useBackend) ? 1 : 0) == 1",
    "requestRules: set exactly one action of redirect, setHeader, addHeader, removeHeader, replaceHeaderValue, deny, useBackend"
))]
#[serde(rename_all = "camelCase")]
pub struct RequestRule {
    /// Condition under which the action applies. Default: always.
    #[serde(rename = "if")]
    pub condition: Option<RuleCondition>,
    /// Answer with a redirect (`http-request redirect`). Default: none.
    pub redirect: Option<Redirect>,
    /// Set a header, replacing any existing one (`http-request set-header`). Default: none.
    pub set_header: Option<HeaderValue>,
    /// Append a header (`http-request add-header`). Default: none.
    pub add_header: Option<HeaderValue>,
    /// Remove a header (`http-request del-header`). Default: none.
    pub remove_header: Option<HeaderName>,
    /// Rewrite a header's value with a regex (`http-request replace-value`). Default: none.
    pub replace_header_value: Option<ReplaceHeaderValue>,
    /// Refuse the request (`http-request deny`). Default: none.
    pub deny: Option<Deny>,
    /// Send the request to this Backend, overriding routes (`use_backend`). Default: none.
    #[schemars(length(min = 1))]
    pub use_backend: Option<String>,
}

/// One response rule: an action, applied when its condition holds.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "(has(self.setHeader) ? 1 : 0) + (has(self.addHeader) ? 1 : 0) + (has(self.removeHeader) ? 1 : 0) + (has(self.replaceHeaderValue) ? 1 : 0) == 1",
    "responseRules: set exactly one action of setHeader, addHeader, removeHeader, replaceHeaderValue"
))]
#[serde(rename_all = "camelCase")]
pub struct ResponseRule {
    /// Condition (on the request) under which the action applies. Default: always.
    #[serde(rename = "if")]
    pub condition: Option<RuleCondition>,
    /// Set a header, replacing any existing one (`http-response set-header`). Default: none.
    pub set_header: Option<HeaderValue>,
    /// Append a header (`http-response add-header`). Default: none.
    pub add_header: Option<HeaderValue>,
    /// Remove a header (`http-response del-header`). Default: none.
    pub remove_header: Option<HeaderName>,
    /// Rewrite a header's value with a regex (`http-response replace-value`). Default: none.
    pub replace_header_value: Option<ReplaceHeaderValue>,
}

/// An HTTP redirect (`http-request redirect scheme|location|prefix ... code`).
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "(has(self.scheme) ? 1 : 0) + (has(self.location) ? 1 : 0) + (has(self.prefix) ? 1 : 0) == 1",
    "redirect: set exactly one of scheme, location, prefix"
))]
#[x_kube(validation = (
    "!has(self.code) || self.code in [301, 302, 303, 307, 308]",
    "redirect.code must be one of 301, 302, 303, 307, 308"
))]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    /// Redirect to the same URL with this scheme, `http` or `https`. Default: none.
    #[schemars(pattern(r"^https?$"))]
    pub scheme: Option<String>,
    /// Redirect to this absolute URL or path. Default: none.
    #[schemars(length(min = 1))]
    pub location: Option<String>,
    /// Redirect to this prefix followed by the original path. Default: none.
    #[schemars(length(min = 1))]
    pub prefix: Option<String>,
    /// Port of the redirect URL, 1-65535 (with `scheme`). Default: the scheme's port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Status code: 301, 302, 303, 307 or 308. Default: 302.
    pub code: Option<i32>,
}

/// A header and its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValue {
    /// Header name, an HTTP token. Required.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Header value. Required.
    pub value: String,
}

/// A header, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderName {
    /// Header name, an HTTP token. Required.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Rewrites each value of a header that matches a regex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplaceHeaderValue {
    /// Header name, an HTTP token. Required.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Regex matched against the whole value. Required.
    #[schemars(length(min = 1))]
    pub pattern: String,
    /// Replacement; `$1`, `$2`... refer to the pattern's groups. Required.
    pub replacement: String,
}

/// Refuses a request with an error status (`http-request deny deny_status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deny {
    /// Status code of the answer, 400-599. Default: 403.
    #[schemars(range(min = 400, max = 599))]
    pub status: Option<i32>,
}

/// A condition: it holds when every `all` predicate holds and, if `any` is not
/// empty, at least one `any` predicate holds.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "(has(self.all) && size(self.all) > 0) || (has(self.any) && size(self.any) > 0)",
    "if: set at least one predicate in all or any"
))]
#[serde(rename_all = "camelCase")]
pub struct RuleCondition {
    /// Predicates that must all hold; at most 16. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub all: Vec<Predicate>,
    /// Predicates of which at least one must hold, when not empty; at most 16. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub any: Vec<Predicate>,
}

/// One test on the request, optionally negated. Exactly one test is set.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "(has(self.tls) ? 1 : 0) + (has(self.host) ? 1 : 0) + (has(self.pathPrefix) ? 1 : 0) + (has(self.path) ? 1 : 0) + (has(self.pathRegex) ? 1 : 0) + (has(self.methods) && size(self.methods) > 0 ? 1 : 0) + (has(self.header) ? 1 : 0) + (has(self.sourceCidrs) && size(self.sourceCidrs) > 0 ? 1 : 0) == 1",
    "predicate: set exactly one test of tls, host, pathPrefix, path, pathRegex, methods, header, sourceCidrs"
))]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    /// Invert the test (`!`). Default: false.
    pub negate: Option<bool>,
    /// The connection is (true) or is not (false) TLS (`ssl_fc`). Default: not tested.
    pub tls: Option<bool>,
    /// The Host header, without port, equals this (case-insensitive). Default: not tested.
    pub host: Option<String>,
    /// The path starts with this (`path_beg`). Default: not tested.
    #[schemars(pattern(r"^/"))]
    pub path_prefix: Option<String>,
    /// The path equals this (`path`). Default: not tested.
    #[schemars(pattern(r"^/"))]
    pub path: Option<String>,
    /// The path matches this regex (`path_reg`). Default: not tested.
    #[schemars(length(min = 1))]
    pub path_regex: Option<String>,
    /// The method is one of these (`method`). Default: not tested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(r"^[A-Z]+$")))]
    pub methods: Vec<String>,
    /// A header is present or matches (`req.hdr`). Default: not tested.
    pub header: Option<HeaderMatch>,
    /// The client address is in one of these CIDRs or IPs (`src`). Default: not tested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_cidrs: Vec<String>,
}

/// A header test: present, equal to `value`, or matching `regex`.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = (
    "!(has(self.value) && has(self.regex))",
    "header: value and regex are mutually exclusive"
))]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name, an HTTP token. Required.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The value equals this exactly. Default: not tested (presence only).
    pub value: Option<String>,
    /// The value matches this regex. Default: not tested (presence only).
    pub regex: Option<String>,
}
