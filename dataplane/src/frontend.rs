//! A frontend at run time: its spec with backends resolved, its connection
//! slots, TLS termination, compiled HTTP rules, and routing (host and path for
//! HTTP, server name for TLS passthrough). Built by the engine at apply time;
//! the protocol handlers read it.

mod route;
mod slots;

use std::collections::HashMap;
use std::sync::Arc;

use crate::access_log::FrontendLog;
use crate::backend::BackendRuntime;
use crate::config;
use crate::counters::FrontendCounters;
use crate::stats::StatsService;
use crate::{Error, Result};
pub use route::{HostPattern, RouteRuntime};
pub use slots::{Slot, Slots};

/// A frontend ready to serve: its spec with backends resolved.
#[derive(Debug)]
pub struct FrontendRuntime {
    pub spec: config::Frontend,
    pub default_backend: Option<Arc<BackendRuntime>>,
    pub routes: Vec<RouteRuntime>,
    /// Connection slots (maxconn) of its listener, kept across applies.
    pub slots: Arc<Slots>,
    /// TLS termination, when the frontend terminates TLS.
    pub tls: Option<crate::tls::Terminator>,
    /// HTTP request and response rules, compiled.
    pub rules: crate::http::rules::CompiledRules,
    /// Traffic counters, kept across applies by name.
    pub counters: Arc<FrontendCounters>,
    /// Serves the statistics: the Prometheus metrics and the stats page.
    pub stats: Option<StatsService>,
    /// Access log, when the frontend logs.
    pub log: Option<FrontendLog>,
}

impl FrontendRuntime {
    /// Resolves `spec`'s backends in `backends` and compiles its TLS and rules;
    /// `slots` are the connection slots to serve with, `counters` its counters.
    pub fn build(
        spec: config::Frontend,
        backends: &HashMap<String, Arc<BackendRuntime>>,
        slots: Arc<Slots>,
        counters: Arc<FrontendCounters>,
        stats: Option<StatsService>,
        log: Option<FrontendLog>,
    ) -> Result<Self> {
        // validate() has checked that every referenced backend exists.
        let lookup = |name: &str| {
            backends.get(name).cloned().ok_or_else(|| {
                Error::Invalid(format!(
                    "frontend {}: backend {name:?} does not exist",
                    spec.name
                ))
            })
        };
        let default_backend = spec.default_backend.as_deref().map(lookup).transpose()?;
        let routes = spec
            .routes
            .iter()
            .map(|r| Ok(RouteRuntime::new(r, lookup(&r.backend)?)))
            .collect::<Result<Vec<_>>>()?;
        let tls = spec
            .tls
            .as_ref()
            .filter(|t| t.mode == config::TlsMode::Terminate)
            .map(|t| crate::tls::Terminator::build(&spec, t))
            .transpose()?;
        let rules = crate::http::rules::CompiledRules::build(&spec, lookup)?;
        Ok(FrontendRuntime {
            spec,
            default_backend,
            routes,
            slots,
            tls,
            rules,
            counters,
            stats,
            log,
        })
    }

    /// The backend for an HTTP request to `host` (without port) and `path`:
    /// the first matching route's, else the default.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<BackendRuntime>> {
        self.routes
            .iter()
            .find(|r| r.matches(host, path))
            .map(|r| &r.backend)
            .or(self.default_backend.as_ref())
    }

    /// The backend for a TLS server name (passthrough): the first route whose
    /// `sni` matches, else the default (also when the client sent no name).
    pub fn route_sni(&self, name: Option<&str>) -> Option<&Arc<BackendRuntime>> {
        name.and_then(|name| self.routes.iter().find(|r| r.matches_sni(name)))
            .map(|r| &r.backend)
            .or(self.default_backend.as_ref())
    }
}
