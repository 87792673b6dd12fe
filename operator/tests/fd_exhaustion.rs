//! `fairlead run` out of file descriptors (issue 12, item 13): the proxy
//! listener's failed accepts log about a line a second with a count of those
//! suppressed, and it serves again once descriptors are free.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A server answering every connection `HTTP/1.0 200` with body `ok`, for
/// at most `n` connections.
fn answering_server(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(n) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    port
}

/// A child process killed on drop (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request on a new connection; the whole answer, or None.
fn fetch(port: u16) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.write_all(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n").ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn out_of_descriptors_logs_a_line_a_second_and_serves_again() {
    let dir = scratch("nofile");
    let file = dir.join("lb.yaml");
    let port = free_port();
    std::fs::write(&file, web_manifests(port, "s", answering_server(1000), "")).unwrap();
    let log = dir.join("stderr.log");
    let _child = Killed(
        Command::new("prlimit")
            .arg("--nofile=40")
            .arg(env!("CARGO_BIN_EXE_fairlead"))
            .args(["run", "-f", file.to_str().unwrap(), "--threads", "1"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prlimit runs fairlead"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch(port).is_some_and(|a| a.ends_with("ok")) {
        assert!(
            Instant::now() < deadline,
            "never served: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Connections held open: fairlead runs out of descriptors accepting them.
    let held: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("accept failed"))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{} accept-failure lines in {seconds:.1} s ({} connections held)",
        lines.len(),
        held.len()
    );
    for l in &lines {
        eprintln!("  {l}");
    }
    assert!(!lines.is_empty(), "descriptors never ran out:\n{text}");
    assert!(lines.len() <= 2 + seconds.ceil() as usize, "{text}");
    assert!(
        lines
            .iter()
            .skip(1)
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "{text}"
    );
    // Descriptors back: it serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch(port).is_some_and(|a| a.ends_with("ok")) {
        assert!(
            Instant::now() < deadline,
            "not serving after the descriptors came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
