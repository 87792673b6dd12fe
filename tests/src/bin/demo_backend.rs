//! `demo-backend`: a small real server for the quickstart, the integration
//! tests and the benchmarks.
//!
//! HTTP mode (HTTP/1.1, keep-alive) answers every path with its name, plus:
//! `/headers` (the request's headers, one `name: value` a line),
//! `/sleep?ms=N` (answer after N ms, at most 60000), `POST /count` (the number
//! of body bytes received, streamed), `/stream?bytes=N` (N bytes of `x`,
//! chunked, at most 1 GiB), `/bytes?n=N` (N bytes of `x` with a
//! Content-Length), `/close` (close without answering), `/bad` (a malformed
//! status line, then close), and upgrades (`101`, then echo).
//!
//! TCP mode writes `{name}\n`, echoes what it receives and, when the client
//! half-closes, writes `bye {name}\n` and closes.
//!
//! It prints `demo-backend {name} listening on {addr}` once per bound address
//! and nothing per request; SIGTERM or SIGINT ends it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderValue, UPGRADE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// Command line; every flag also reads an environment variable.
#[derive(Parser)]
#[command(about = "A demo backend for fairlead's quickstart, tests and benchmarks")]
struct Args {
    /// Address to listen on; repeat the flag (or separate with commas) for several. Port 0 picks a free port.
    #[arg(
        long,
        env = "DEMO_BACKEND_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1:8080"
    )]
    listen: Vec<SocketAddr>,
    /// Name written in every answer.
    #[arg(long, env = "DEMO_BACKEND_NAME", default_value = "demo")]
    name: String,
    /// Protocol to serve.
    #[arg(long, env = "DEMO_BACKEND_MODE", value_enum, default_value_t = Mode::Http)]
    mode: Mode,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Http,
    Tcp,
}

/// Longest `/sleep`, in ms.
const MAX_SLEEP_MS: u64 = 60_000;
/// Largest `/stream` or `/bytes` body.
const MAX_BODY_BYTES: u64 = 1 << 30;
/// What `/bad` writes instead of a response.
const BAD_RESPONSE: &[u8] = b"HTTP/1.1 9999 nope\r\n\r\n";
/// Bodies are served as slices of this.
static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

type ResponseBody = BoxBody<Bytes, Infallible>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name: Arc<str> = args.name.into();
    for addr in &args.listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        println!(
            "demo-backend {name} listening on {}",
            listener.local_addr()?
        );
        match args.mode {
            Mode::Http => tokio::spawn(accept_loop(listener, name.clone(), serve_http)),
            Mode::Tcp => tokio::spawn(accept_loop(listener, name.clone(), serve_tcp)),
        };
    }
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        interrupted = tokio::signal::ctrl_c() => interrupted?,
    }
    Ok(())
}

/// Accepts connections forever, serving each on its own task.
async fn accept_loop<F, Fut>(listener: TcpListener, name: Arc<str>, serve: F)
where
    F: Fn(TcpStream, Arc<str>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, name.clone()));
            }
            Err(e) => {
                // Typically out of file descriptors: wait instead of spinning.
                eprintln!("demo-backend {name}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_tcp(mut stream: TcpStream, name: Arc<str>) {
    let _ = echo_until_eof(&mut stream, &name).await;
}

async fn echo_until_eof(stream: &mut TcpStream, name: &str) -> io::Result<()> {
    stream.write_all(format!("{name}\n").as_bytes()).await?;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.write_all(format!("bye {name}\n").as_bytes()).await?;
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn serve_http(stream: TcpStream, name: Arc<str>) {
    let ending = Arc::new(OnceLock::new());
    let io = TokioIo::new(EndableStream {
        stream,
        ending: ending.clone(),
        sent: 0,
    });
    let service = service_fn(move |req| respond(req, name.clone(), ending.clone()));
    // Errors here are clients going away or `/close` and `/bad` ending on purpose.
    let _ = http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}

async fn respond(
    mut req: Request<Incoming>,
    name: Arc<str>,
    ending: Arc<OnceLock<&'static [u8]>>,
) -> Result<Response<ResponseBody>, Infallible> {
    if let Some(protocol) = upgrade_requested(&req) {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut from, mut to) = tokio::io::split(TokioIo::new(upgraded));
                if tokio::io::copy(&mut from, &mut to).await.is_ok() {
                    let _ = to.shutdown().await;
                }
            }
        });
        let mut response = reply(StatusCode::SWITCHING_PROTOCOLS, &name, Bytes::new());
        response.headers_mut().insert(UPGRADE, protocol);
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        return Ok(response);
    }
    let query = |key: &str| query_number(req.uri().query(), key);
    let response = match (req.method(), req.uri().path()) {
        (_, "/headers") => {
            let lines: String = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            reply(StatusCode::OK, &name, lines.into())
        }
        (_, "/sleep") => {
            let ms = query("ms").unwrap_or(0).min(MAX_SLEEP_MS);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply(StatusCode::OK, &name, format!("{name}\n").into())
        }
        (&Method::POST, "/count") => match count_body(req.into_body()).await {
            Some(bytes) => reply(StatusCode::OK, &name, format!("{bytes}\n").into()),
            None => reply(StatusCode::BAD_REQUEST, &name, "body error\n".into()),
        },
        (_, "/stream") => {
            let bytes = query("bytes").unwrap_or(0).min(MAX_BODY_BYTES);
            filled(
                &name,
                Filler {
                    left: bytes,
                    exact: false,
                },
            )
        }
        (_, "/bytes") => {
            let n = query("n").unwrap_or(0).min(MAX_BODY_BYTES);
            let mut response = filled(
                &name,
                Filler {
                    left: n,
                    exact: true,
                },
            );
            response.headers_mut().insert(CONTENT_LENGTH, n.into());
            response
        }
        (_, "/close") | (_, "/bad") => {
            let raw = if req.uri().path() == "/bad" {
                BAD_RESPONSE
            } else {
                b""
            };
            let _ = ending.set(raw);
            // Never reaches the client: the stream replaces it with `raw`.
            reply(StatusCode::OK, &name, Bytes::new())
        }
        _ => reply(StatusCode::OK, &name, format!("{name}\n").into()),
    };
    Ok(response)
}

/// The `Upgrade` header when the request asks to switch protocols.
fn upgrade_requested(req: &Request<Incoming>) -> Option<HeaderValue> {
    let connection = req.headers().get(CONNECTION)?.to_str().ok()?;
    let asks = connection
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| req.headers().get(UPGRADE).cloned()).flatten()
}

/// A number from the query string (`key=N`); None when absent or not a number.
fn query_number(query: Option<&str>, key: &str) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Bytes of body received, reading frame by frame; None if the body fails.
async fn count_body(mut body: Incoming) -> Option<u64> {
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.ok()?.data_ref() {
            total += data.len() as u64;
        }
    }
    Some(total)
}

fn reply(status: StatusCode, name: &str, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(name) {
        response.headers_mut().insert("x-served-by", value);
    }
    response
}

fn filled(name: &str, body: Filler) -> Response<ResponseBody> {
    let mut response = reply(StatusCode::OK, name, Bytes::new());
    *response.body_mut() = body.boxed();
    response
}

/// A body of `left` bytes of `x` sent in 64 KiB frames; with `exact` its
/// length is known up front (Content-Length), else it is sent chunked.
struct Filler {
    left: u64,
    exact: bool,
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len() as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &CHUNK[..n as usize],
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.left)
        } else {
            SizeHint::default()
        }
    }
}

/// A connection that a handler can end on purpose: once `ending` is set,
/// whatever hyper writes next is replaced by those raw bytes, the write side
/// is shut down and the write fails, so hyper drops the connection.
struct EndableStream {
    stream: TcpStream,
    ending: Arc<OnceLock<&'static [u8]>>,
    /// How much of the ending bytes went out.
    sent: usize,
}

impl AsyncRead for EndableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for EndableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(raw) = this.ending.get() else {
            return Pin::new(&mut this.stream).poll_write(cx, buf);
        };
        while this.sent < raw.len() {
            match ready!(Pin::new(&mut this.stream).poll_write(cx, &raw[this.sent..]))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => this.sent += n,
            }
        }
        ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection ended on purpose",
        )))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
