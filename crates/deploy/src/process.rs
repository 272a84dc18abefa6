//! Background processes: spawning in their own process group with output appended to a log,
//! liveness that survives pid reuse and zombies, signals, bounded waits.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::error::DeployError;

/// Starts `program args` in the background: its own process group (so terminal signals and
/// our exit do not reach it), stdin from /dev/null, stdout and stderr appended to `log`.
pub(crate) fn spawn_detached(
    program: &Path,
    args: &[std::ffi::OsString],
    log: &Path,
    cwd: &Path,
) -> Result<Child, DeployError> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| DeployError::io("opening log file", log, e))?;
    let err = out
        .try_clone()
        .map_err(|e| DeployError::io("opening log file", log, e))?;
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| DeployError::io("starting", program, e))
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 onwards).
fn proc_stat(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The kernel's start time of `pid` (clock ticks since boot), identifying it across pid reuse.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    // Field 22 (`starttime`) is index 19 after the command name.
    proc_stat(pid)?.get(19)?.parse().ok()
}

/// Whether `/proc` is available (Linux).
fn have_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// Is `pid` a live process — not a zombie and, when `start` is known, the same process that
/// was started then (not a later one that reused the pid)?
pub fn is_alive(pid: i32, start: Option<u64>) -> bool {
    if pid <= 0 {
        return false;
    }
    if have_proc() {
        let Some(fields) = proc_stat(pid) else {
            return false;
        };
        if matches!(fields.first().map(String::as_str), Some("Z" | "X" | "x")) {
            return false;
        }
        return match (start, fields.get(19).and_then(|t| t.parse::<u64>().ok())) {
            (Some(expected), Some(actual)) => expected == actual,
            _ => true,
        };
    }
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Sends `sig` to the process group led by `pid` (falling back to the process alone).
pub(crate) fn signal(pid: i32, sig: Signal) -> Result<(), DeployError> {
    let p = Pid::from_raw(pid).ok_or(DeployError::Signal {
        pid,
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    match rustix::process::kill_process_group(p, sig) {
        Ok(()) => Ok(()),
        Err(_) => match rustix::process::kill_process(p, sig) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
            Err(e) => Err(DeployError::Signal {
                pid,
                source: e.into(),
            }),
        },
    }
}

/// SIGTERM to the process group; waits up to `grace`; then SIGKILL and waits up to 5 s more.
/// Returns whether SIGKILL was needed.
pub(crate) fn terminate(
    pid: i32,
    start: Option<u64>,
    grace: Duration,
) -> Result<bool, DeployError> {
    signal(pid, Signal::TERM)?;
    if wait_dead(pid, start, grace) {
        return Ok(false);
    }
    signal(pid, Signal::KILL)?;
    if wait_dead(pid, start, Duration::from_secs(5)) {
        Ok(true)
    } else {
        Err(DeployError::Unkillable { pid })
    }
}

/// Polls until `pid` is gone (or a zombie); false on timeout.
pub(crate) fn wait_dead(pid: i32, start: Option<u64>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_alive(pid, start) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `program --version` (bounded by `timeout`) and returns its first non-empty output line.
pub(crate) fn version_of(program: &Path, timeout: Duration) -> Option<String> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_with_its_start_time() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let start = start_ticks(pid);
        assert!(start.is_some());
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start.map(|s| s + 1)));
        assert!(!is_alive(0, None));
    }

    #[test]
    fn a_reaped_child_is_dead_and_a_zombie_is_dead() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let start = start_ticks(pid);
        assert!(is_alive(pid, start));
        signal(pid, Signal::KILL).unwrap();
        // Not yet reaped: a zombie, which counts as dead.
        assert!(wait_dead(pid, start, Duration::from_secs(5)));
        child.wait().unwrap();
        assert!(!is_alive(pid, start));
    }
}
