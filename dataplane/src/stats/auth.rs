//! HTTP basic auth for the stats paths (`stats auth`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;

use crate::config::BasicAuth;

/// The one user name and password accepted.
#[derive(Clone)]
pub struct Credentials {
    /// `username:password`, as a client sends it before base64.
    expected: Vec<u8>,
}

impl Credentials {
    pub fn new(auth: &BasicAuth) -> Self {
        Credentials {
            expected: format!("{}:{}", auth.username, auth.password).into_bytes(),
        }
    }

    /// Whether `authorization` (the header) carries these credentials.
    pub fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(given) = STANDARD.decode(token.trim()) else {
            return false;
        };
        same(&given, &self.expected)
    }
}

/// Compares in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
