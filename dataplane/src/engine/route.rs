//! HTTP route matching, prepared once per apply.

use std::sync::Arc;

use crate::backend::BackendRuntime;
use crate::config::Route;

/// A route with its patterns normalised and its backend resolved.
#[derive(Debug)]
pub struct RouteRuntime {
    host: Option<HostPattern>,
    path_prefix: Option<String>,
    path: Option<String>,
    pub backend: Arc<BackendRuntime>,
}

#[derive(Debug, PartialEq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
}

impl RouteRuntime {
    pub fn new(route: &Route, backend: Arc<BackendRuntime>) -> Self {
        let host = route.host.as_deref().map(|h| {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix('*') {
                Some(suffix) => HostPattern::Suffix(suffix.to_string()),
                None => HostPattern::Exact(h),
            }
        });
        let path_prefix = route
            .path_prefix
            .as_ref()
            .map(|p| p.trim_end_matches('/').to_string());
        RouteRuntime {
            host,
            path_prefix,
            path: route.path.clone(),
            backend,
        }
    }

    /// True when every set field matches.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(HostPattern::Exact(h)), Some(got)) => got.eq_ignore_ascii_case(h),
            (Some(HostPattern::Suffix(s)), Some(got)) => {
                got.len() > s.len() && got[got.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        };
        host_ok
            && self.path.as_ref().is_none_or(|p| p == path)
            && self.path_prefix.as_ref().is_none_or(|p| {
                // Segment boundary: `/api` matches `/api` and `/api/x`, not `/apix`; `/` matches all.
                path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
            })
    }
}
