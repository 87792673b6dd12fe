//! Request and response rules, compiled once per apply (regexes, CIDRs,
//! header names and values) and evaluated per request without allocating
//! unless a rule changes something. Semantics: see `config::RequestRule`'s module.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use ipnet::IpNet;
use regex::Regex;

use super::{Client, ProxyBody, body, headers};
use crate::backend::BackendRuntime;
use crate::config::{
    self, Condition, Predicate, RedirectTo, RequestAction, ResponseAction, Test, cidr, header_name,
    header_value, regex,
};
use crate::{Error, Result};

/// A frontend's rules, ready to evaluate.
#[derive(Debug, Default)]
pub struct CompiledRules {
    request: Vec<(Option<Check>, Step)>,
    /// At most 128 (`validate` checks), so a `u128` marks which apply.
    response: Vec<(Option<Check>, Edit)>,
}

/// What request rules decided.
pub enum Verdict<'a> {
    /// Forward, to this backend if a `useBackend` rule chose one, else by routes.
    Forward(Option<&'a Arc<BackendRuntime>>),
    /// Answer with this response (a redirect).
    Answer(Response<ProxyBody>),
    /// Deny with this response.
    Deny(Response<ProxyBody>),
}

#[derive(Debug)]
enum Step {
    Redirect {
        to: Target,
        port: Option<u16>,
        code: StatusCode,
    },
    Edit(Edit),
    Deny(StatusCode),
    UseBackend(Arc<BackendRuntime>),
}

#[derive(Debug)]
enum Target {
    Scheme(&'static str),
    Location(HeaderValue),
    Prefix(String),
}

/// A header change, on a request or a response.
#[derive(Debug)]
enum Edit {
    Set(HeaderName, HeaderValue),
    Add(HeaderName, HeaderValue),
    Remove(HeaderName),
    Replace(HeaderName, Regex, String),
}

#[derive(Debug)]
struct Check {
    all: Vec<(bool, Probe)>,
    any: Vec<(bool, Probe)>,
}

#[derive(Debug)]
enum Probe {
    Tls(bool),
    Host(String),
    PathPrefix(String),
    Path(String),
    PathRegex(Regex),
    Methods(Vec<Method>),
    Header(HeaderName, HeaderTest),
    Source(Vec<IpNet>),
}

#[derive(Debug)]
enum HeaderTest {
    Present,
    Equals(HeaderValue),
    Matches(Regex),
}

impl CompiledRules {
    /// Compiles `spec`'s rules; `backend` resolves `useBackend` names.
    /// Errors (which `validate` rules out) name the frontend and field.
    pub fn build(
        spec: &config::Frontend,
        backend: impl Fn(&str) -> Result<Arc<BackendRuntime>>,
    ) -> Result<Self> {
        let bad = |field: String, reason: String| {
            Error::Invalid(format!("frontend {}: {field}: {reason}", spec.name))
        };
        let mut rules = CompiledRules::default();
        for (i, r) in spec.request_rules.iter().enumerate() {
            let field = format!("requestRules[{i}]");
            let check = r.condition.as_ref().map(Check::build).transpose();
            let check = check.map_err(|e| bad(format!("{field}.if"), e))?;
            let step = match &r.action {
                RequestAction::Redirect(rd) => Step::Redirect {
                    to: match &rd.to {
                        RedirectTo::Scheme(s) if s == "https" => Target::Scheme("https"),
                        RedirectTo::Scheme(_) => Target::Scheme("http"),
                        RedirectTo::Location(l) => Target::Location(
                            header_value(l).map_err(|e| bad(format!("{field}.redirect"), e))?,
                        ),
                        RedirectTo::Prefix(p) => Target::Prefix(p.trim_end_matches('/').into()),
                    },
                    port: rd.port,
                    code: status(rd.code).map_err(|e| bad(format!("{field}.redirect.code"), e))?,
                },
                RequestAction::Deny(d) => {
                    Step::Deny(status(d.status).map_err(|e| bad(format!("{field}.deny"), e))?)
                }
                RequestAction::UseBackend(b) => Step::UseBackend(backend(b)?),
                RequestAction::SetHeader(h) => Step::Edit(Edit::set(h).map_err(|e| bad(field, e))?),
                RequestAction::AddHeader(h) => Step::Edit(Edit::add(h).map_err(|e| bad(field, e))?),
                RequestAction::RemoveHeader(h) => Step::Edit(Edit::Remove(
                    header_name(&h.name).map_err(|e| bad(field, e))?,
                )),
                RequestAction::ReplaceHeaderValue(rv) => {
                    Step::Edit(Edit::replace(rv).map_err(|e| bad(field, e))?)
                }
            };
            rules.request.push((check, step));
        }
        if spec.response_rules.len() > u128::BITS as usize {
            return Err(bad("responseRules".into(), "too many rules".into()));
        }
        for (i, r) in spec.response_rules.iter().enumerate() {
            let field = format!("responseRules[{i}]");
            let check = r.condition.as_ref().map(Check::build).transpose();
            let check = check.map_err(|e| bad(format!("{field}.if"), e))?;
            let edit = match &r.action {
                ResponseAction::SetHeader(h) => Edit::set(h),
                ResponseAction::AddHeader(h) => Edit::add(h),
                ResponseAction::RemoveHeader(h) => header_name(&h.name).map(Edit::Remove),
                ResponseAction::ReplaceHeaderValue(rv) => Edit::replace(rv),
            };
            rules
                .response
                .push((check, edit.map_err(|e| bad(field, e))?));
        }
        Ok(rules)
    }

    /// Runs the request rules in order on `req`; stops at a redirect or deny.
    /// An HTTP/2 request (or an absolute URI) without a Host header gets one
    /// from its authority first, so rules on `Host` see and change it.
    pub(super) fn on_request<B>(&self, req: &mut Request<B>, client: &Client) -> Verdict<'_> {
        if !self.request.is_empty() && !req.headers().contains_key(header::HOST) {
            let authority = req.uri().authority().map(|a| a.as_str());
            if let Some(Ok(host)) = authority.map(HeaderValue::from_str) {
                req.headers_mut().insert(header::HOST, host);
            }
        }
        let mut chosen = None;
        for (check, step) in &self.request {
            if matches!(step, Step::UseBackend(_)) && chosen.is_some() {
                continue;
            }
            if !check.as_ref().is_none_or(|c| c.holds(req, client)) {
                continue;
            }
            match step {
                Step::Edit(edit) => edit.apply(req.headers_mut()),
                Step::UseBackend(b) => chosen = Some(b),
                Step::Deny(status) => {
                    return Verdict::Deny(body::local(*status, "Request denied."));
                }
                Step::Redirect { to, port, code } => {
                    return Verdict::Answer(redirect(req, client.tls, to, *port, *code));
                }
            }
        }
        Verdict::Forward(chosen)
    }

    /// Which response rules apply to the answer to `req` (bit `i`: rule `i`).
    pub(super) fn response_mask<B>(&self, req: &Request<B>, client: &Client) -> u128 {
        let mut mask = 0;
        for (i, (check, _)) in self.response.iter().enumerate() {
            if check.as_ref().is_none_or(|c| c.holds(req, client)) {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// Applies the response rules that `mask` marks.
    pub(super) fn on_response<B>(&self, mask: u128, resp: &mut Response<B>) {
        for (i, (_, edit)) in self.response.iter().enumerate() {
            if mask & (1 << i) != 0 {
                edit.apply(resp.headers_mut());
            }
        }
    }
}

fn status(code: u16) -> Result<StatusCode, String> {
    StatusCode::from_u16(code).map_err(|_| format!("{code} is not a status code"))
}

/// The redirect response; 400 when a scheme redirect has no host to go to.
fn redirect<B>(
    req: &Request<B>,
    tls: bool,
    to: &Target,
    port: Option<u16>,
    code: StatusCode,
) -> Response<ProxyBody> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = match to {
        Target::Location(l) => Some(l.clone()),
        Target::Prefix(prefix) => HeaderValue::from_str(&format!("{prefix}{path}")).ok(),
        Target::Scheme(scheme) => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str()))
                .filter(|h| !h.is_empty());
            host.and_then(|host| {
                let host = with_port(host, port, if tls { 443 } else { 80 }, scheme);
                HeaderValue::from_str(&format!("{scheme}://{host}{path}")).ok()
            })
        }
    };
    let Some(location) = location else {
        return body::local(
            StatusCode::BAD_REQUEST,
            "The request has no usable Host to redirect to.",
        );
    };
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

/// `host` with its port replaced by `port`, or, without `port`, dropped when it
/// is `current_default`; a port that is `scheme`'s default is left out.
fn with_port(host: &str, port: Option<u16>, current_default: u16, scheme: &str) -> String {
    let name = headers::strip_port(host);
    let kept = host[name.len()..]
        .strip_prefix(':')
        .and_then(|p| p.parse::<u16>().ok());
    let port = match port {
        Some(p) => Some(p),
        None => kept.filter(|p| *p != current_default),
    };
    let scheme_default = if scheme == "https" { 443 } else { 80 };
    match port.filter(|p| *p != scheme_default) {
        Some(p) => format!("{name}:{p}"),
        None => name.to_string(),
    }
}

impl Edit {
    fn set(h: &config::HeaderValue) -> Result<Edit, String> {
        Ok(Edit::Set(header_name(&h.name)?, header_value(&h.value)?))
    }

    fn add(h: &config::HeaderValue) -> Result<Edit, String> {
        Ok(Edit::Add(header_name(&h.name)?, header_value(&h.value)?))
    }

    fn replace(r: &config::ReplaceHeaderValue) -> Result<Edit, String> {
        Ok(Edit::Replace(
            header_name(&r.name)?,
            regex(&r.pattern, true)?,
            r.replacement.clone(),
        ))
    }

    fn apply(&self, headers: &mut HeaderMap) {
        match self {
            Edit::Set(name, value) => {
                headers.insert(name, value.clone());
            }
            Edit::Add(name, value) => {
                headers.append(name, value.clone());
            }
            Edit::Remove(name) => {
                headers.remove(name);
            }
            Edit::Replace(name, regex, replacement) => replace(headers, name, regex, replacement),
        }
    }
}

/// haproxy `replace-value`: each comma-separated value of each field line that
/// the whole regex matches is replaced; lines that change nothing are kept as is.
fn replace(headers: &mut HeaderMap, name: &HeaderName, regex: &Regex, replacement: &str) {
    let matches = |v: &HeaderValue| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|part| regex.is_match(part.trim())))
    };
    if !headers.get_all(name).iter().any(matches) {
        return;
    }
    let lines: Vec<HeaderValue> = headers
        .get_all(name)
        .iter()
        .map(|v| match v.to_str() {
            Ok(s) if matches(v) => {
                let parts: Vec<_> = s
                    .split(',')
                    .map(|part| regex.replace(part.trim(), replacement))
                    .collect();
                HeaderValue::from_str(&parts.join(", ")).unwrap_or_else(|_| v.clone())
            }
            _ => v.clone(),
        })
        .collect();
    headers.remove(name);
    for line in lines {
        headers.append(name, line);
    }
}

impl Check {
    fn build(c: &Condition) -> Result<Check, String> {
        let probes = |ps: &[Predicate]| -> Result<Vec<(bool, Probe)>, String> {
            ps.iter()
                .map(|p| Ok((p.negate, Probe::build(&p.test)?)))
                .collect()
        };
        Ok(Check {
            all: probes(&c.all)?,
            any: probes(&c.any)?,
        })
    }

    fn holds<B>(&self, req: &Request<B>, client: &Client) -> bool {
        let test = |(negate, probe): &(bool, Probe)| probe.holds(req, client) != *negate;
        self.all.iter().all(test) && (self.any.is_empty() || self.any.iter().any(test))
    }
}

impl Probe {
    fn build(test: &Test) -> Result<Probe, String> {
        Ok(match test {
            Test::Tls(tls) => Probe::Tls(*tls),
            Test::Host(h) => Probe::Host(h.to_ascii_lowercase()),
            Test::PathPrefix(p) => Probe::PathPrefix(p.clone()),
            Test::Path(p) => Probe::Path(p.clone()),
            Test::PathRegex(r) => Probe::PathRegex(regex(r, false)?),
            Test::Methods(ms) => Probe::Methods(
                ms.iter()
                    .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?,
            ),
            Test::Header(h) => {
                let test = match (&h.value, &h.regex) {
                    (Some(v), _) => HeaderTest::Equals(header_value(v)?),
                    (None, Some(r)) => HeaderTest::Matches(regex(r, false)?),
                    (None, None) => HeaderTest::Present,
                };
                Probe::Header(header_name(&h.name)?, test)
            }
            Test::SourceCidrs(cs) => {
                Probe::Source(cs.iter().map(|c| cidr(c)).collect::<Result<_, _>>()?)
            }
        })
    }

    fn holds<B>(&self, req: &Request<B>, client: &Client) -> bool {
        let path = req.uri().path();
        match self {
            Probe::Tls(tls) => client.tls == *tls,
            Probe::Host(h) => {
                headers::request_host(req).is_some_and(|got| got.eq_ignore_ascii_case(h))
            }
            Probe::PathPrefix(p) => path.starts_with(p.as_str()),
            Probe::Path(p) => path == p,
            Probe::PathRegex(r) => r.is_match(path),
            Probe::Methods(ms) => ms.contains(req.method()),
            Probe::Header(name, test) => {
                let mut values = req.headers().get_all(name).iter();
                match test {
                    HeaderTest::Present => values.next().is_some(),
                    HeaderTest::Equals(v) => values.any(|got| got == v),
                    HeaderTest::Matches(r) => {
                        values.any(|got| got.to_str().is_ok_and(|s| r.is_match(s)))
                    }
                }
            }
            Probe::Source(nets) => {
                let ip: IpAddr = client.peer.ip().to_canonical();
                nets.iter().any(|n| n.contains(&ip))
            }
        }
    }
}

#[cfg(test)]
mod tests;
