//! The registry's log file: last lines, and following it as it grows.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::error::DeployError;

/// How much of the file's end is read to find the last lines.
const TAIL_WINDOW: u64 = 1 << 20;

/// The last `n` lines of `path` (all of it when `n` is `None`), and the file length read up to.
/// A missing file has no lines.
pub fn tail(path: &Path, n: Option<usize>) -> Result<(Vec<String>, u64), DeployError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(DeployError::io("reading log", path, e)),
    };
    let len = f
        .metadata()
        .map_err(|e| DeployError::io("reading log", path, e))?
        .len();
    let start = match n {
        Some(_) => len.saturating_sub(TAIL_WINDOW),
        None => 0,
    };
    f.seek(SeekFrom::Start(start))
        .map_err(|e| DeployError::io("reading log", path, e))?;
    let mut bytes = Vec::new();
    f.take(len - start)
        .read_to_end(&mut bytes)
        .map_err(|e| DeployError::io("reading log", path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // partial first line
    }
    if let Some(n) = n {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok((lines, start + bytes.len() as u64))
}

/// Copies what is appended to `path` after `offset` to `out`, polling every `poll`, until
/// `keep_going` returns false. A truncated (rotated) file is read again from its start.
pub fn follow(
    path: &Path,
    mut offset: u64,
    out: &mut dyn Write,
    poll: Duration,
    keep_going: &dyn Fn() -> bool,
) -> Result<(), DeployError> {
    let mut buf = vec![0u8; 64 * 1024];
    while keep_going() {
        if let Ok(mut f) = File::open(path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offset {
                offset = 0;
            }
            if len > offset {
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| DeployError::io("reading log", path, e))?;
                loop {
                    let k = f
                        .read(&mut buf)
                        .map_err(|e| DeployError::io("reading log", path, e))?;
                    if k == 0 {
                        break;
                    }
                    out.write_all(&buf[..k])
                        .and_then(|()| out.flush())
                        .map_err(|e| DeployError::io("writing", "<stdout>", e))?;
                    offset += k as u64;
                }
            }
        }
        std::thread::sleep(poll);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn tail_gives_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        assert_eq!(tail(&p, Some(3)).unwrap().0.len(), 0);
        std::fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&p, Some(2)).unwrap().0, vec!["c", "d"]);
        let (all, end) = tail(&p, None).unwrap();
        assert_eq!(all, vec!["a", "b", "c", "d"]);
        assert_eq!(end, 8);
    }

    #[test]
    fn follow_copies_appended_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "old\n").unwrap();
        let mut out = Vec::new();
        let rounds = Cell::new(0);
        let path = p.clone();
        follow(&p, 4, &mut out, Duration::from_millis(1), &|| {
            rounds.set(rounds.get() + 1);
            if rounds.get() == 2 {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                f.write_all(b"new\n").unwrap();
            }
            rounds.get() < 4
        })
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "new\n");
    }
}
