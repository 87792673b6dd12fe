//! What a frontend serves of the dataplane's statistics (`spec.stats`): the
//! Prometheus metrics on one path, and the stats page on another, as HTML
//! (`PATH`), CSV with HAProxy's columns (`PATH;csv`) and JSON (`PATH;json`).
//! Only frontends whose config has a `stats` block answer these paths; with
//! `auth` set, a request without the credentials gets 401.
//!
//! Everything is rendered from an engine [`Snapshot`], off the proxy's path.

mod auth;
mod csv;
mod html;
mod json;
mod rates;
mod rows;

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::config::FrontendStats;
use crate::snapshot::Snapshot;
pub use rows::{COLUMNS, Row, Value};

/// The content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where pages read the dataplane: its snapshots, and the session rates
/// measured between two reads. The engine holds it; frontends hold it weakly.
pub struct StatsSource {
    snapshot: Box<dyn Fn() -> Snapshot + Send + Sync>,
    rates: Mutex<rates::Rates>,
}

impl StatsSource {
    /// Reads the dataplane with `snapshot`.
    pub fn new(snapshot: impl Fn() -> Snapshot + Send + Sync + 'static) -> Self {
        StatsSource {
            snapshot: Box::new(snapshot),
            rates: Mutex::default(),
        }
    }

    /// The Prometheus metrics now.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&(self.snapshot)())
    }

    /// One row per frontend, backend and server, with HAProxy's CSV fields.
    pub fn rows(&self) -> (Snapshot, Vec<Row>) {
        let snapshot = (self.snapshot)();
        let rates = (self.rates.lock().unwrap_or_else(|e| e.into_inner()))
            .observe(&snapshot, std::time::Instant::now());
        let rows = rows::rows(&snapshot, &rates);
        (snapshot, rows)
    }
}

/// What one frontend answers of the statistics.
#[derive(Clone)]
pub struct StatsService {
    prometheus_path: Option<String>,
    page: Option<Page>,
    auth: Option<auth::Credentials>,
    source: Weak<StatsSource>,
}

/// The page's settings.
#[derive(Clone, Debug)]
pub struct Page {
    pub path: String,
    pub refresh_seconds: u32,
    pub show_node: bool,
}

impl std::fmt::Debug for StatsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsService")
            .field("prometheus_path", &self.prometheus_path)
            .field("page", &self.page)
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

/// What a path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Metrics,
    Html,
    Csv,
    Json,
}

impl StatsService {
    /// Serves what `spec` asks for, read from `source`.
    pub fn new(spec: &FrontendStats, source: &Arc<StatsSource>) -> Self {
        StatsService {
            prometheus_path: spec.prometheus_path.clone(),
            page: spec.path.clone().map(|path| Page {
                path,
                refresh_seconds: spec.refresh_seconds,
                show_node: spec.show_node,
            }),
            auth: spec.auth.as_ref().map(auth::Credentials::new),
            source: Arc::downgrade(source),
        }
    }

    fn form(&self, path: &str) -> Option<Form> {
        if self.prometheus_path.as_deref() == Some(path) {
            return Some(Form::Metrics);
        }
        let page = self.page.as_ref()?;
        let rest = path.strip_prefix(page.path.as_str())?;
        match rest {
            "" => Some(Form::Html),
            ";csv" => Some(Form::Csv),
            ";json" => Some(Form::Json),
            _ => None,
        }
    }

    /// Whether `req` asks for something served here.
    pub fn serves<B>(&self, req: &Request<B>) -> bool {
        self.form(req.uri().path()).is_some()
    }

    /// The answer to `req` (which [`StatsService::serves`]).
    pub fn respond<B>(&self, req: &Request<B>) -> Response<Bytes> {
        let Some(form) = self.form(req.uri().path()) else {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        };
        if let Some(creds) = &self.auth
            && !creds.accepts(req.headers().get(header::AUTHORIZATION))
        {
            let mut resp = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"fairlead statistics\""),
            );
            return resp;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some(source) = self.source.upgrade() else {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "stopping\n");
        };
        let (content_type, body) = match form {
            Form::Metrics => (METRICS_CONTENT_TYPE, source.metrics()),
            Form::Html => {
                let page = self.page.as_ref().expect("form Html needs a page");
                let (snapshot, rows) = source.rows();
                (
                    "text/html; charset=utf-8",
                    html::render(page, &snapshot, &rows),
                )
            }
            Form::Csv => ("text/csv; charset=utf-8", csv::render(&source.rows().1)),
            Form::Json => {
                let (snapshot, rows) = source.rows();
                ("application/json", json::render(&snapshot, &rows))
            }
        };
        let mut resp = Response::new(Bytes::from(body));
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from_static(text.as_bytes()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests;
