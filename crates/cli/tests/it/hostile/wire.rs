//! Sending raw bytes and reading one HTTP/1.1 answer, noting whether the server then closed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::raw::{dechunk, final_head};

/// One answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// The server closed the connection after answering (within 3 s; only checked on request).
    pub(crate) closed: bool,
}

impl Reply {
    pub(crate) fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned()
    }
}

/// Sends `bytes` (from another thread, so an early answer is read before our unread bytes
/// reset the connection), optionally half-closes, and reads the answer (10 s at most).
pub(crate) fn exchange(
    addr: SocketAddr,
    bytes: &[u8],
    half_close: bool,
    want_close: bool,
) -> Result<Reply, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let is_head = bytes.starts_with(b"HEAD ");
    let bytes = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
        let _ = w.flush();
        if half_close {
            let _ = w.shutdown(Shutdown::Write);
        }
    });
    let reply = read_reply(&s, is_head, want_close);
    let _ = s.shutdown(Shutdown::Both);
    let _ = writer.join();
    reply
}

fn read_reply(mut s: &TcpStream, is_head: bool, want_close: bool) -> Result<Reply, String> {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut eof = false;
    // The head (skipping interim 1xx answers).
    let (status, headers, mut rest) = loop {
        if let Some(head) = final_head(&mut buf)? {
            break head;
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return Err(if buf.is_empty() {
                    format!(
                        "connection closed without an answer after {:?}",
                        started.elapsed()
                    )
                } else {
                    format!("closed mid-head: {:?}", String::from_utf8_lossy(&buf))
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read after {:?}: {e}", started.elapsed())),
        }
    };
    let header = |name: &str| {
        headers.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let no_body = status == 204 || status == 304 || is_head;
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let body = if no_body {
        Vec::new()
    } else if let Some(len) = length {
        while rest.len() < len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    eof = true;
                    break;
                }
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
        rest.truncate(len);
        rest
    } else if chunked {
        loop {
            if let Some(b) = dechunk(&rest) {
                break b;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return Err("chunked body cut short".into()),
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
    } else {
        // Delimited by the close.
        loop {
            match s.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break rest;
                }
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("body without length not closed: {e}")),
            }
        }
    };
    let closed = eof || (want_close && closes(s));
    Ok(Reply {
        status,
        body,
        closed,
    })
}

/// Whether the server closes the connection within 3 s (EOF or reset).
fn closes(mut s: &TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                )
            }
        }
    }
}

/// The error codes of a spec error envelope `{"errors":[{"code":..,"message":..}]}`.
pub(crate) fn envelope_codes(body: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    let errors = v["errors"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| format!("no errors array: {v}"))?;
    errors
        .iter()
        .map(|e| {
            let code = e["code"].as_str().ok_or_else(|| format!("no code: {e}"))?;
            e["message"]
                .as_str()
                .ok_or_else(|| format!("no message: {e}"))?;
            Ok(code.to_owned())
        })
        .collect()
}
