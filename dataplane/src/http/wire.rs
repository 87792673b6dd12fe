//! The HTTP/1 wire format of the proxy path: request and response heads
//! parsed with `httparse` into `http` types (header values share the read
//! buffer), heads written back, and message framing (Content-Length,
//! chunked, until close) tracked over the bytes as they pass.

use bytes::{BufMut, Bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};

use super::headers;

/// Headers accepted in one head (HAProxy's default `tune.http.maxhdr` is 101).
const MAX_HEADERS: usize = 101;

/// A head that is not there yet, or one that cannot be read.
#[derive(Debug)]
pub enum Parsed<T> {
    /// The head and its length in bytes.
    Complete(T, usize),
    /// More bytes are needed.
    Partial,
    /// Not HTTP/1: answered with this status (400, 422).
    Invalid(StatusCode),
}

/// Parses a request head from the start of `buf`.
pub fn request(buf: &Bytes) -> Parsed<Request<()>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid(StatusCode::BAD_REQUEST),
    };
    let bad = Parsed::Invalid(StatusCode::BAD_REQUEST);
    let (Some(method), Some(path), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return bad;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return bad;
    };
    let Ok(uri) = Uri::from_maybe_shared(buf.slice_ref(path.as_bytes())) else {
        return bad;
    };
    // Origin form, `*`, absolute form with an http(s) scheme, or CONNECT's
    // authority form (RFC 9112 §3.2); anything else is a bad request.
    let target_ok = match path.as_bytes()[0] {
        b'/' => true,
        b'*' => path == "*",
        _ if method == Method::CONNECT => uri.authority().is_some(),
        _ => matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some(),
    };
    if !target_ok {
        return bad;
    }
    let Some(headers) = header_map(buf, parsed.headers) else {
        return bad;
    };
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = if version == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *req.headers_mut() = headers;
    Parsed::Complete(req, len)
}

/// Parses a response head from the start of `buf`.
pub fn response(buf: &Bytes) -> Parsed<Response<()>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid(StatusCode::BAD_GATEWAY),
    };
    let bad = Parsed::Invalid(StatusCode::BAD_GATEWAY);
    let Some(Ok(status)) = parsed.code.map(StatusCode::from_u16) else {
        return bad;
    };
    let Some(headers) = header_map(buf, parsed.headers) else {
        return bad;
    };
    let mut resp = Response::new(());
    *resp.status_mut() = status;
    *resp.version_mut() = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *resp.headers_mut() = headers;
    Parsed::Complete(resp, len)
}

fn header_map(buf: &Bytes, parsed: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(parsed.len());
    for h in parsed {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_maybe_shared(buf.slice_ref(h.value)).ok()?;
        map.append(name, value);
    }
    Some(map)
}

/// How a message's body ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Framing {
    /// No body.
    Empty,
    /// This many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// A request's body framing, or why it is refused (400, 422 as HAProxy 2.6).
pub fn request_framing(headers: &HeaderMap) -> Result<Framing, StatusCode> {
    if let Some(status) = headers::transfer_encoding_error(headers) {
        return Err(status);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Both: chunked wins and Content-Length goes (RFC 9112 6.3).
        return Ok(Framing::Chunked);
    }
    match content_length(headers) {
        Err(()) => Err(StatusCode::BAD_REQUEST),
        Ok(None | Some(0)) => Ok(Framing::Empty),
        Ok(Some(n)) => Ok(Framing::Length(n)),
    }
}

/// A response's body framing: `head` for a HEAD request.
pub fn response_framing(head: bool, status: StatusCode, headers: &HeaderMap) -> Option<Framing> {
    if head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Some(Framing::Empty);
    }
    if let Some(te) = headers.get(header::TRANSFER_ENCODING) {
        let last = te.to_str().ok()?.rsplit(',').next()?.trim();
        return Some(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    match content_length(headers) {
        Err(()) => None,
        Ok(None) => Some(Framing::UntilClose),
        Ok(Some(0)) => Some(Framing::Empty),
        Ok(Some(n)) => Some(Framing::Length(n)),
    }
}

/// The Content-Length; an error when values differ or are not numbers.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut found = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.to_str().map_err(|_| ())?.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            let n: u64 = part.parse().map_err(|_| ())?;
            if found.is_some_and(|f| f != n) {
                return Err(());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// True when the client keeps the connection open after this request.
pub fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let mut close = version == Version::HTTP_10;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") {
                return false;
            }
            if token.eq_ignore_ascii_case("keep-alive") {
                close = false;
            }
        }
    }
    !close
}

/// Appends a request head (origin form, HTTP/1.1).
pub fn write_request(out: &mut Vec<u8>, req: &Request<()>) {
    out.put_slice(req.method().as_str().as_bytes());
    out.put_u8(b' ');
    // An absolute-form target keeps its path and query; an empty path is `/`.
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    if !target.starts_with('/') && target != "*" {
        out.put_u8(b'/');
    }
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    write_headers(out, req.headers());
}

/// Appends a response head (always HTTP/1.1 on the status line).
pub fn write_response(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    write_headers(out, headers);
}

fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Where a body stands as its bytes go by.
#[derive(Debug)]
pub enum BodyState {
    Length(u64),
    Chunked(Chunks),
    UntilClose,
    Done,
}

/// A broken chunked body (bad size line, overflowing size, bad CRLF).
#[derive(Debug, PartialEq)]
pub struct BadChunk;

impl BodyState {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(Chunks::default()),
            Framing::UntilClose => BodyState::UntilClose,
        }
    }

    pub fn done(&self) -> bool {
        matches!(self, BodyState::Done)
    }

    /// Takes the body's bytes from the start of `data`: returns how many
    /// belong to it; `payload` gets the data without chunk framing.
    pub fn feed(
        &mut self,
        data: &[u8],
        payload: &mut impl FnMut(&[u8]),
    ) -> Result<usize, BadChunk> {
        match self {
            BodyState::Done => Ok(0),
            BodyState::UntilClose => {
                payload(data);
                Ok(data.len())
            }
            BodyState::Length(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                payload(&data[..n]);
                *left -= n as u64;
                if *left == 0 {
                    *self = BodyState::Done;
                }
                Ok(n)
            }
            BodyState::Chunked(chunks) => {
                let n = chunks.feed(data, payload)?;
                if chunks.step == Step::End {
                    *self = BodyState::Done;
                }
                Ok(n)
            }
        }
    }
}

/// The chunked coding's state machine (RFC 9112 7.1).
#[derive(Debug, Default)]
pub struct Chunks {
    step: Step,
    size: u64,
    digits: bool,
}

#[derive(Debug, Default, PartialEq, Clone, Copy)]
enum Step {
    #[default]
    Size,
    /// Chunk extension, up to the line's end.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Start of a trailer line (or the final CRLF).
    TrailerStart,
    Trailer,
    EndLf,
    End,
}

impl Chunks {
    fn feed(&mut self, data: &[u8], payload: &mut impl FnMut(&[u8])) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < data.len() && self.step != Step::End {
            let b = data[i];
            match self.step {
                Step::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).expect("hex digit") as u64;
                        self.size = self.size.checked_mul(16).ok_or(BadChunk)? | digit;
                        if self.size > u64::MAX >> 8 {
                            return Err(BadChunk);
                        }
                        self.digits = true;
                    }
                    b';' | b' ' | b'\t' if self.digits => self.step = Step::Extension,
                    b'\r' if self.digits => self.step = Step::SizeLf,
                    _ => return Err(BadChunk),
                },
                Step::Extension => match b {
                    b'\r' => self.step = Step::SizeLf,
                    b'\n' => return Err(BadChunk),
                    _ => {}
                },
                Step::SizeLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.digits = false;
                    self.step = if self.size == 0 {
                        Step::TrailerStart
                    } else {
                        Step::Data
                    };
                }
                Step::Data => {
                    let n = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(data.len() - i);
                    payload(&data[i..i + n]);
                    self.size -= n as u64;
                    i += n;
                    if self.size == 0 {
                        self.step = Step::DataCr;
                    }
                    continue;
                }
                Step::DataCr => {
                    if b != b'\r' {
                        return Err(BadChunk);
                    }
                    self.step = Step::DataLf;
                }
                Step::DataLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.step = Step::Size;
                }
                Step::TrailerStart => {
                    self.step = if b == b'\r' {
                        Step::EndLf
                    } else {
                        Step::Trailer
                    }
                }
                Step::Trailer => {
                    if b == b'\n' {
                        self.step = Step::TrailerStart;
                    }
                }
                Step::EndLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.step = Step::End;
                }
                Step::End => unreachable!("the loop stops at the end"),
            }
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target found `GET ://a? HTTP/1.1` parsed and written back as
    /// `GET ? HTTP/1.1`, which does not parse.
    #[test]
    fn request_targets_are_checked_and_written_back_in_origin_form() {
        for bad in ["://a?", "a/b", "?x", "**", "ftp://a/b"] {
            let head = Bytes::from(format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n"));
            assert!(
                matches!(request(&head), Parsed::Invalid(StatusCode::BAD_REQUEST)),
                "{bad}"
            );
        }
        for (method, target, written) in [
            ("GET", "/p?q", "GET /p?q "),
            ("GET", "http://a?x", "GET /?x "),
            ("GET", "https://a/b", "GET /b "),
            ("OPTIONS", "*", "OPTIONS * "),
            ("CONNECT", "a:443", "CONNECT / "),
        ] {
            let head = Bytes::from(format!("{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n"));
            let Parsed::Complete(req, _) = request(&head) else {
                panic!("{target} not parsed");
            };
            let mut out = Vec::new();
            write_request(&mut out, &req);
            assert!(out.starts_with(written.as_bytes()), "{target}: {out:?}");
            assert!(
                matches!(request(&Bytes::from(out)), Parsed::Complete(..)),
                "{target}"
            );
        }
    }

    fn feed_all(framing: Framing, input: &[u8]) -> Result<(usize, Vec<u8>, bool), BadChunk> {
        let mut state = BodyState::new(framing);
        let mut out = Vec::new();
        let mut used = 0;
        // One byte at a time: the machine must not depend on read boundaries.
        for b in input {
            used += state.feed(std::slice::from_ref(b), &mut |p| out.extend_from_slice(p))?;
        }
        Ok((used, out, state.done()))
    }

    #[test]
    fn chunked_bodies_end_where_the_coding_says() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1";
        let (used, payload, done) = feed_all(Framing::Chunked, body).unwrap();
        assert!(done);
        assert_eq!(payload, b"hello world");
        assert_eq!(&body[used..], b"GET / HTTP/1.1");
        let (_, _, done) = feed_all(Framing::Chunked, b"0\r\n\r\n").unwrap();
        assert!(done);
    }

    #[test]
    fn broken_chunks_are_errors() {
        for bad in [
            &b"fffffffffffffffff\r\n"[..],
            b"zz\r\n",
            b"\r\n",
            b"5\r\nhelloX\r\n",
            b"5\nhello",
        ] {
            assert_eq!(feed_all(Framing::Chunked, bad), Err(BadChunk), "{bad:?}");
        }
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        let (used, payload, done) = feed_all(Framing::Length(3), b"abcdef").unwrap();
        assert_eq!((used, payload.as_slice(), done), (3, &b"abc"[..], true));
    }

    #[test]
    fn request_heads_parse_and_framing_is_checked() {
        let buf =
            Bytes::from_static(b"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
        let Parsed::Complete(req, len) = request(&buf) else {
            panic!("not parsed");
        };
        assert_eq!(&buf[len..], b"body");
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(request_framing(req.headers()), Ok(Framing::Length(4)));
        assert!(matches!(
            request(&Bytes::from_static(b"GET / HTTP/1.1\r\nHost")),
            Parsed::Partial
        ));
        let two =
            Bytes::from_static(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        let Parsed::Complete(req, _) = request(&two) else {
            panic!("not parsed");
        };
        assert_eq!(request_framing(req.headers()), Err(StatusCode::BAD_REQUEST));
        assert!(matches!(
            request(&Bytes::from_static(b"GET / HTTP/9.9\r\n\r\n")),
            Parsed::Invalid(_)
        ));
    }

    #[test]
    fn responses_without_bodies() {
        let h = HeaderMap::new();
        assert_eq!(
            response_framing(true, StatusCode::OK, &h),
            Some(Framing::Empty)
        );
        for s in [
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
            StatusCode::CONTINUE,
        ] {
            assert_eq!(response_framing(false, s, &h), Some(Framing::Empty));
        }
        assert_eq!(
            response_framing(false, StatusCode::OK, &h),
            Some(Framing::UntilClose)
        );
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        let mut h = HeaderMap::new();
        assert!(keeps_alive(Version::HTTP_11, &h));
        assert!(!keeps_alive(Version::HTTP_10, &h));
        h.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        assert!(keeps_alive(Version::HTTP_10, &h));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(!keeps_alive(Version::HTTP_11, &h));
    }
}
