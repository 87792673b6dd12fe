//! Requests of the admin API, one function per endpoint.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;

use super::{Api, Caller};
use crate::DataplaneConfig;
use crate::health::status::EngineStatus;

/// Largest config body accepted.
pub(super) const BODY_LIMIT: usize = 64 << 20;

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
    let body = match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let reason = format!("the body is larger than {BODY_LIMIT} bytes");
            tracing::warn!(%peer, reason, "config refused");
            return errors(StatusCode::PAYLOAD_TOO_LARGE, vec![reason]);
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "config refused: reading the body failed");
            return errors(
                StatusCode::BAD_REQUEST,
                vec![format!("reading the body: {e}")],
            );
        }
    };
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
