//! Request and response header handling: hop-by-hop headers, forwarding
//! headers, origin-form URIs, the request's host.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode};

use crate::frontend::FrontendRuntime;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The client address as a header value, made once per connection.
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_canonical().to_string())
        .expect("an IP address is a valid header value")
}

/// True when the client asks to switch protocols (WebSocket and others).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(header::UPGRADE) && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Why a request's Transfer-Encoding is refused, as HAProxy 2.6 does: 400
/// for `chunked` named twice (in one header or two) or a value that is not
/// text, 422 for any other coding (only `chunked` is accepted).
pub fn transfer_encoding_error(headers: &HeaderMap) -> Option<StatusCode> {
    let mut chunked = false;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(value) = value.to_str() else {
            return Some(StatusCode::BAD_REQUEST);
        };
        for coding in value.split(',').map(str::trim) {
            if !coding.eq_ignore_ascii_case("chunked") {
                return Some(StatusCode::UNPROCESSABLE_ENTITY);
            }
            if chunked {
                return Some(StatusCode::BAD_REQUEST);
            }
            chunked = true;
        }
    }
    None
}

/// Removes hop-by-hop headers, including those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Makes a client request fit to send to a server: origin-form URI, no
/// hop-by-hop headers (but the Upgrade pair when upgrading), forwarding headers.
pub fn prepare_request<B>(
    req: &mut Request<B>,
    frontend: &FrontendRuntime,
    peer_header: &HeaderValue,
    peer: SocketAddr,
    upgrade: bool,
) {
    if req.uri().authority().is_some() {
        if !req.headers().contains_key(header::HOST)
            && let Some(Ok(host)) = req
                .uri()
                .authority()
                .map(|a| HeaderValue::from_str(a.as_str()))
        {
            req.headers_mut().insert(header::HOST, host);
        }
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
    }
    let upgrade_to = upgrade
        .then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten();
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    if let Some(to) = upgrade_to {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, to);
    }
    let spec = &frontend.spec;
    if spec.x_forwarded_for {
        headers.append(&X_FORWARDED_FOR, peer_header.clone());
    }
    if spec.forwarded {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let value = forwarded_value(peer.ip(), host);
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(&FORWARDED, v);
        }
    }
}

/// RFC 7239 `Forwarded` element for this hop.
fn forwarded_value(ip: IpAddr, host: Option<&str>) -> String {
    let for_ = match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    match host {
        Some(h)
            if h.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') =>
        {
            format!("for={for_};proto=http;host=\"{h}\"")
        }
        _ => format!("for={for_};proto=http"),
    }
}

/// Removes hop-by-hop headers from a server's response and answers in
/// HTTP/1.1 whatever the server spoke (hyper downgrades for 1.0 clients).
pub fn clean_response<B>(resp: &mut Response<B>) {
    strip_hop_by_hop(resp.headers_mut());
    *resp.version_mut() = http::Version::HTTP_11;
}

/// The request's host without port: from an absolute URI or the Host header.
pub fn request_host<B>(req: &Request<B>) -> Option<&str> {
    let raw = match req.uri().host() {
        Some(h) => h,
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    Some(strip_port(raw))
}

/// `host` without its `:port`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }

    #[test]
    fn hop_by_hop_headers_and_named_ones_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_quotes_ipv6_and_host() {
        assert_eq!(
            forwarded_value("::1".parse().unwrap(), Some("a.example")),
            "for=\"[::1]\";proto=http;host=\"a.example\""
        );
        assert_eq!(
            forwarded_value("10.1.2.3".parse().unwrap(), None),
            "for=10.1.2.3;proto=http"
        );
    }
}
