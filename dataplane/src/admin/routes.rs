//! Requests of the admin API, one function per endpoint.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;

use super::{Api, Caller};
use crate::DataplaneConfig;
use crate::config::limits::{MAX_CONFIG_BYTES, MAX_JSON_OBJECTS, count_json_objects};
use crate::health::status::EngineStatus;

type Reply = Response<Full<Bytes>>;

pub(super) async fn handle(api: &Api, req: Request<Incoming>, caller: Caller) -> Reply {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/readyz" if api.running.load().is_some() => return text(StatusCode::OK, "ready\n"),
        "/readyz" => return text(StatusCode::SERVICE_UNAVAILABLE, "no config yet\n"),
        _ => {}
    }
    let current = api.credentials.load();
    let client_cert = caller.client_cert && Arc::ptr_eq(&caller.credentials, &current);
    if let Err(reason) = current.auth.authorize(req.headers(), client_cert) {
        if let Some(suppressed) = super::UNAUTHORIZED.check() {
            tracing::warn!(peer = %caller.peer, method = %req.method(), path, reason, suppressed, "admin API call refused");
        }
        let mut reply = errors(StatusCode::UNAUTHORIZED, vec![reason.to_string()]);
        let challenge = http::HeaderValue::from_static("Bearer");
        reply.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        // Over HTTP/2 an answer before the body is read resets the stream
        // and the caller sees that, not the 401: read a little of it first.
        if req.version() == http::Version::HTTP_2 {
            discard(req.into_body(), UNAUTHORIZED_DRAIN_BYTES).await;
        }
        return reply;
    }
    caller.slot.authenticate();
    match (path.as_str(), req.method()) {
        ("/v1/config", &Method::PUT) => put_config(api, req, caller).await,
        ("/v1/config", &Method::GET) => get_config(api),
        ("/v1/status", &Method::GET) => get_status(api).await,
        ("/v1/config", _) => not_allowed("GET, PUT"),
        ("/v1/status", _) => not_allowed("GET"),
        _ => errors(StatusCode::NOT_FOUND, vec![format!("no endpoint {path}")]),
    }
}

async fn put_config(api: &Api, req: Request<Incoming>, caller: Caller) -> Reply {
    let peer = caller.peer;
    let too_large = || {
        let reason = format!("the body is larger than {MAX_CONFIG_BYTES} bytes");
        tracing::warn!(%peer, reason, "config refused");
        errors(StatusCode::PAYLOAD_TOO_LARGE, vec![reason])
    };
    // An answer before the whole body is read ends an HTTP/2 stream with a
    // reset, and an HTTP/1.1 connection while the client still sends (it
    // sees a broken pipe): clients report that instead of the answer. So the
    // rest of a body found too large while reading is read and discarded
    // first (within bounds); one declared too large over HTTP/1.1 is
    // answered at once (a client waiting for 100-continue sends nothing).
    let http2 = req.version() == http::Version::HTTP_2;
    let declared = req.headers().get(http::header::CONTENT_LENGTH);
    let declared = declared.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let body = req.into_body();
    if declared.is_some_and(|length| length > MAX_CONFIG_BYTES as u64) {
        if http2 && declared.is_some_and(|length| length <= DRAIN_BYTES as u64) {
            discard(body, DRAIN_BYTES).await;
        }
        return too_large();
    }
    let body = match read_body(body, MAX_CONFIG_BYTES).await {
        Ok(Some(body)) => body,
        Ok(None) => return too_large(),
        Err(e) => {
            tracing::warn!(%peer, error = %e, "config refused: reading the body failed");
            return errors(
                StatusCode::BAD_REQUEST,
                vec![format!("reading the body: {e}")],
            );
        }
    };
    let objects = count_json_objects(&body, MAX_JSON_OBJECTS);
    if objects > MAX_JSON_OBJECTS {
        let reason = format!("the config has more than {MAX_JSON_OBJECTS} JSON objects");
        tracing::warn!(%peer, reason, "config refused");
        return errors(StatusCode::UNPROCESSABLE_ENTITY, vec![reason]);
    }
    let config = match parse(&body) {
        Ok(config) => config,
        Err(reason) => {
            tracing::warn!(%peer, reason, "config refused: malformed JSON");
            return errors(StatusCode::BAD_REQUEST, vec![reason]);
        }
    };
    let version = config.version;

    let _push = api.push.lock().await;
    if let Some(running) = api.running.load_full() {
        if version < running.version {
            let reason = format!(
                "version {version} is older than the running version {}",
                running.version
            );
            tracing::warn!(%peer, version, running = running.version, "stale config refused");
            let body = json!({"errors": [reason], "running": running.version});
            return reply(StatusCode::CONFLICT, &body);
        }
        if *running == config {
            tracing::debug!(%peer, version, "config unchanged");
            return reply(StatusCode::OK, &json!({"version": version}));
        }
        if version == running.version {
            tracing::warn!(%peer, version, "config with the running version but new content");
        }
    }
    if let Err(e) = api.engine.apply(config.clone()).await {
        let problems: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
        tracing::warn!(%peer, version, errors = ?problems, "config rejected");
        return errors(StatusCode::UNPROCESSABLE_ENTITY, problems);
    }
    let config = Arc::new(config);
    api.running.store(Some(config.clone()));
    tracing::info!(
        %peer,
        version,
        frontends = config.frontends.len(),
        backends = config.backends.len(),
        "config applied"
    );
    let state = api.state.clone();
    let saved = tokio::task::spawn_blocking(move || state.save(&config)).await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(
            path = %api.state.config_path().display(),
            error = %e,
            "persisting the config failed; a restart would not restore it"
        ),
        Err(e) => tracing::error!(error = %e, "persisting the config failed"),
    }
    reply(StatusCode::OK, &json!({"version": version}))
}

/// Most bytes of an unauthorized request's body read and discarded.
const UNAUTHORIZED_DRAIN_BYTES: usize = 1 << 20;

/// Most bytes of a body too large read and discarded, and how long that
/// may take; past either, the stream is reset or the connection closed.
const DRAIN_BYTES: usize = 4 * MAX_CONFIG_BYTES;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The body if it has at most `limit` bytes; `None` if it has more (the
/// rest read and discarded first, see [`discard`]).
async fn read_body(mut body: Incoming, limit: usize) -> Result<Option<Bytes>, hyper::Error> {
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        if read.len() + data.len() > limit {
            drop(read);
            discard(body, DRAIN_BYTES - limit).await;
            return Ok(None);
        }
        read.extend_from_slice(&data);
    }
    Ok(Some(read.freeze()))
}

/// Reads and drops up to `bytes` more of `body` within [`DRAIN_TIME`].
async fn discard(mut body: Incoming, bytes: usize) {
    if body.is_end_stream() {
        return;
    }
    let drain = async {
        let mut left = bytes;
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            match left.checked_sub(data.len()) {
                Some(rest) => left = rest,
                None => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// Parses a config; the error names the JSON path (`frontends[0].bind: ...`).
fn parse(body: &[u8]) -> Result<DataplaneConfig, String> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let config = serde_path_to_error::deserialize(&mut json)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    json.end().map_err(|e| format!(".: {e}"))?;
    Ok(config)
}

fn get_config(api: &Api) -> Reply {
    match api.running.load_full() {
        Some(config) => reply(StatusCode::OK, &*config),
        None => errors(
            StatusCode::NOT_FOUND,
            vec!["no config has been applied yet".into()],
        ),
    }
}

/// The node name and every field of [`EngineStatus`].
#[derive(Serialize)]
struct Status<'a> {
    node: &'a str,
    #[serde(flatten)]
    engine: EngineStatus,
}

async fn get_status(api: &Api) -> Reply {
    let status = Status {
        node: api.engine.node(),
        engine: api.engine.status().await,
    };
    reply(StatusCode::OK, &status)
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut reply = errors(
        StatusCode::METHOD_NOT_ALLOWED,
        vec![format!("allowed methods: {allow}")],
    );
    reply
        .headers_mut()
        .insert(ALLOW, http::HeaderValue::from_static(allow));
    reply
}

fn errors(status: StatusCode, errors: Vec<String>) -> Reply {
    reply(status, &json!({ "errors": errors }))
}

fn reply(status: StatusCode, body: &impl Serialize) -> Reply {
    let mut body = serde_json::to_vec(body).expect("JSON values serialize");
    body.push(b'\n');
    respond(status, "application/json", body)
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    respond(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_json_path() {
        let e = parse(br#"{"frontends": [{"name": "fe", "bind": "nope"}]}"#).unwrap_err();
        assert!(e.starts_with("frontends[0].bind: "), "{e}");
        let e = parse(br#"{"version": "7"}"#).unwrap_err();
        assert!(e.starts_with("version: invalid type"), "{e}");
        let e = parse(br#"{"version": 7} x"#).unwrap_err();
        assert!(e.contains("trailing characters"), "{e}");
        assert_eq!(parse(br#"{"version": 7}"#).unwrap().version, 7);
    }
}
