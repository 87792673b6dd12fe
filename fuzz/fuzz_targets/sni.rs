//! The ClientHello SNI parser on any bytes: never panics; a complete hello
//! stays complete with more bytes after it, and a server name it returns is
//! a valid DNS name.
#![no_main]

use fairlead_dataplane::tls::sni::{Hello, MAX_HELLO, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let hello = parse(data);
    if let Hello::Complete(Some(name)) = &hello {
        assert!(!name.is_empty() && name.len() <= 255, "{name:?}");
        assert!(name.is_ascii(), "{name:?}");
    }
    if let Hello::Complete(_) = &hello {
        // Bytes after a complete hello (the client's next records) change nothing.
        let mut more = data.to_vec();
        more.extend_from_slice(&[22, 3, 1, 0, 1, 0]);
        assert_eq!(parse(&more), hello);
    }
    // Every prefix of a valid input is a valid prefix, or already complete.
    if data.len() <= MAX_HELLO && !matches!(hello, Hello::NotTls) {
        for cut in [data.len() / 2, data.len().saturating_sub(1)] {
            assert_ne!(parse(&data[..cut]), Hello::NotTls, "prefix of {cut} bytes");
        }
    }
});
