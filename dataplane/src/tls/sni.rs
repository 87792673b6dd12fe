//! Reads the server name (SNI) from a TLS ClientHello without decrypting
//! anything: a hand-written, bounds-checked parser over the bytes received so
//! far. It never panics; malformed input is [`Hello::NotTls`].

/// Largest ClientHello handshake message accepted (records may split it).
pub const MAX_HELLO: usize = 16 * 1024;

/// What the bytes received so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// A complete ClientHello, with its server name if it sent one.
    Complete(Option<String>),
    /// A valid prefix: read more.
    Incomplete,
    /// Not a TLS ClientHello (or one larger than [`MAX_HELLO`]).
    NotTls,
}

/// Parses the TLS records at the start of `buf`.
pub fn parse(buf: &[u8]) -> Hello {
    match handshake(buf) {
        Ok(Some(msg)) => match server_name(msg) {
            Some(name) => Hello::Complete(name),
            None => Hello::NotTls,
        },
        Ok(None) => Hello::Incomplete,
        Err(()) => Hello::NotTls,
    }
}

/// Joins handshake records until the first handshake message is whole; returns
/// its body (after type and length) if it is a ClientHello.
fn handshake(mut buf: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let mut joined = Vec::new();
    loop {
        let Some(header) = buf.get(..5) else {
            return Ok(None);
        };
        // Content type 22 (handshake), legacy version 3.x.
        if header[0] != 22 || header[1] != 3 {
            return Err(());
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_HELLO + 2048 {
            return Err(());
        }
        let Some(fragment) = buf.get(5..5 + len) else {
            joined.extend_from_slice(&buf[5..]);
            return check_prefix(&joined).map(|()| None);
        };
        joined.extend_from_slice(fragment);
        buf = &buf[5 + len..];
        check_prefix(&joined)?;
        if joined.len() >= 4 {
            let body_len =
                usize::from(joined[1]) << 16 | usize::from(joined[2]) << 8 | usize::from(joined[3]);
            if joined.len() - 4 >= body_len {
                return Ok(Some(joined[4..4 + body_len].to_vec()));
            }
        }
    }
}

/// Rejects a handshake prefix that is not a ClientHello or is too large.
fn check_prefix(joined: &[u8]) -> Result<(), ()> {
    if joined.first().is_some_and(|t| *t != 1) {
        return Err(());
    }
    if let Some(l) = joined.get(1..4) {
        let body_len = usize::from(l[0]) << 16 | usize::from(l[1]) << 8 | usize::from(l[2]);
        if body_len > MAX_HELLO {
            return Err(());
        }
    }
    Ok(())
}

/// A cursor that fails instead of reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    /// A vector with a length prefix of 1 or 2 bytes.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The host name of the server_name extension: `Some(None)` when the hello
/// has none, `None` when the hello is malformed.
fn server_name(body: Vec<u8>) -> Option<Option<String>> {
    let mut r = Reader(&body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.0.is_empty() {
        return Some(None); // no extensions at all
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                    return None;
                }
                return Some(Some(name.to_ascii_lowercase()));
            }
        }
        return Some(None);
    }
    Some(None)
}

#[cfg(test)]
mod tests;
