//! The HTTP/1 codec of the proxy path on any bytes: parsing a request head
//! never panics, a parsed head written back parses to the same request, and
//! the body framing machine gives the same answer whatever the read
//! boundaries.
#![no_main]

use bytes::Bytes;
use fairlead_dataplane::http::wire::{self, BodyState, Framing, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    if let Parsed::Complete(req, len) = wire::request(&buf) {
        assert!(len <= data.len());
        let mut out = Vec::new();
        wire::write_request(&mut out, &req);
        let again = Bytes::from(out);
        let Parsed::Complete(back, n) = wire::request(&again) else {
            panic!("written head does not parse: {again:?}");
        };
        assert_eq!(n, again.len());
        assert_eq!(back.method(), req.method());
        assert_eq!(back.headers(), req.headers());
        if let Ok(framing) = wire::request_framing(req.headers()) {
            check_framing(framing, &data[len..]);
        }
    }
    check_framing(Framing::Chunked, data);
    let _ = wire::response(&buf);
});

/// Fed whole or in two pieces, the body takes the same bytes and payload.
fn check_framing(framing: Framing, body: &[u8]) {
    let whole = run(framing, &[body]);
    let cut = body.len() / 3;
    let split = run(framing, &[&body[..cut], &body[cut..]]);
    assert_eq!(whole, split, "{framing:?}");
}

fn run(framing: Framing, pieces: &[&[u8]]) -> Option<(usize, Vec<u8>, bool)> {
    let mut state = BodyState::new(framing);
    let (mut used, mut payload) = (0, Vec::new());
    for piece in pieces {
        let n = state.feed(piece, &mut |p| payload.extend_from_slice(p)).ok()?;
        assert!(n <= piece.len());
        used += n;
        if n < piece.len() {
            assert!(state.done(), "bytes left over before the body's end");
            break;
        }
    }
    Some((used, payload, state.done()))
}
