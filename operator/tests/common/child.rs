//! What tests do with a child process: read its stderr as lines on a
//! channel (a thread of its own reads it), send it a signal.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::mpsc;

/// Takes `child`'s piped stderr and sends each of its lines on the channel returned.
pub fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (lines, log) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    log
}

/// Sends signal `name` (`TERM`, `KILL`, `HUP`) to `child`.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {}", child.id());
}
