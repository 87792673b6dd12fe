//! A child's stderr as lines on a channel, read by a thread of its own.

use std::io::{BufRead, BufReader};
use std::process::Child;
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
