//! Routes prepared once per apply: host, path and server-name patterns
//! normalised, backend resolved.

use std::sync::Arc;

use crate::backend::BackendRuntime;
use crate::config::Route;

/// A route with its patterns normalised and its backend resolved.
#[derive(Debug)]
pub struct RouteRuntime {
    host: Option<HostPattern>,
    sni: Option<HostPattern>,
    path_prefix: Option<String>,
    path: Option<String>,
    pub backend: Arc<BackendRuntime>,
}

/// A host or TLS server name pattern: a name (case-insensitive), or
/// `*.example.com`, which matches names of one or more labels before the suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
}

impl HostPattern {
    /// Parses `name` or `*.suffix`.
    pub fn new(pattern: &str) -> Self {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix('*') {
            Some(suffix) => HostPattern::Suffix(suffix.to_string()),
            None => HostPattern::Exact(pattern),
        }
    }

    /// Whether `name` matches, ignoring ASCII case.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(h) => name.eq_ignore_ascii_case(h),
            HostPattern::Suffix(s) => {
                name.len() > s.len()
                    && name
                        .get(name.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
        }
    }
}

impl RouteRuntime {
    pub fn new(route: &Route, backend: Arc<BackendRuntime>) -> Self {
        let path_prefix = route
            .path_prefix
            .as_ref()
            .map(|p| p.trim_end_matches('/').to_string());
        RouteRuntime {
            host: route.host.as_deref().map(HostPattern::new),
            sni: route.sni.as_deref().map(HostPattern::new),
            path_prefix,
            path: route.path.clone(),
            backend,
        }
    }

    /// True when every set HTTP field (host, path, path prefix) matches.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(pattern), Some(got)) => pattern.matches(got),
        };
        host_ok
            && self.path.as_ref().is_none_or(|p| p == path)
            && self.path_prefix.as_ref().is_none_or(|p| {
                // Segment boundary: `/api` matches `/api` and `/api/x`, not `/apix`; `/` matches all.
                path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
            })
    }

    /// True when the route has a server-name pattern and `name` matches it.
    pub fn matches_sni(&self, name: &str) -> bool {
        self.sni.as_ref().is_some_and(|p| p.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::HostPattern;

    #[test]
    fn exact_and_wildcard_names() {
        let m = |p: &str, n: &str| HostPattern::new(p).matches(n);
        assert!(m("a.example.com", "A.example.com"));
        assert!(m("A.Example.com", "a.example.COM"));
        assert!(!m("a.example.com", "b.example.com"));
        assert!(m("*.example.com", "x.example.com"));
        assert!(m("*.Example.com", "y.x.EXAMPLE.com"));
        assert!(!m("*.example.com", "example.com"));
        assert!(!m("*.example.com", ".example.com"));
        assert!(!m("*.example.com", "é.example.co"));
    }
}
