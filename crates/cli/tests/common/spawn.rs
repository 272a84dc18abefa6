//! Starting `ocireg serve` as a child process: stdout piped, stderr to a log file, and the
//! `listening on URL` line awaited. Included with `#[path = "common/spawn.rs"] mod spawn;` by
//! test crates that build their own `ocireg` command line (config files, extra flags).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Spawns `cmd` (an `ocireg ... serve` command line) with stdin closed, stdout piped and stderr
/// written to `log`; waits up to 30 s for the `listening on URL` line and returns the child and
/// the URL (`http://127.0.0.1:PORT`). Later stdout lines are drained so the child never blocks.
/// On failure the child is killed and the panic message carries the log.
pub fn spawn_serve(mut cmd: Command, log: &Path) -> (Child, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn ocireg serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "no listening line; log:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
    };
    let Some(base) = line.strip_prefix("listening on ") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("unexpected first line {line:?}");
    };
    (child, base.trim().to_owned())
}
