//! Raw HTTP/1.1 over a TcpStream, for requests an HTTP client library would refuse or normalise:
//! `..` segments, encoded slashes, lying Content-Length, truncated bodies.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed raw response.
#[derive(Debug)]
pub struct RawReply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl RawReply {
    /// First header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (request line + headers, without the final blank line; `Connection: close` and
/// `Host` are added) and `body`; if `close_write`, half-closes the connection after sending so the
/// server sees EOF (a truncated body). Returns the response, or an error string when the server
/// closed the connection without answering.
pub fn send(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
    close_write: bool,
) -> Result<RawReply, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes();
    req.extend_from_slice(body);
    // Write from another thread while this one reads: a server may answer early (e.g. 413) and
    // close, and the answer must be read before the reset that our unread bytes will cause.
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&req);
        let _ = w.flush();
        if close_write {
            let _ = w.shutdown(Shutdown::Write);
        }
    });
    let is_head = head.starts_with("HEAD ");
    let reply = read_reply(&mut s, is_head);
    let _ = s.shutdown(Shutdown::Both);
    let _ = writer.join();
    reply
}

/// Convenience: a request without body.
pub fn get(addr: SocketAddr, method: &str, path: &str) -> Result<RawReply, String> {
    send(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nContent-Length: 0"),
        b"",
        false,
    )
}

fn read_reply(s: &mut TcpStream, is_head: bool) -> Result<RawReply, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some((status, head, rest)) = final_head(&mut buf)? {
            let headers = parse_headers(&head);
            let body = read_body(s, rest, &headers, is_head, status)?;
            return Ok(RawReply {
                status,
                headers,
                body,
            });
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("read: {e} after {} bytes", buf.len()))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "connection closed without a response".to_string()
            } else {
                format!(
                    "connection closed mid-headers: {:?}",
                    String::from_utf8_lossy(&buf)
                )
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The final response head in `buf` once it has fully arrived: its status, its text and the
/// bytes after it. Interim 1xx heads before it are dropped from `buf`.
pub(crate) fn final_head(buf: &mut Vec<u8>) -> Result<Option<(u16, String, Vec<u8>)>, String> {
    while let Some(end) = find(buf, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status = parse_status(&head)?;
        if (100..200).contains(&status) {
            buf.drain(..end + 4);
            continue;
        }
        return Ok(Some((status, head, buf[end + 4..].to_vec())));
    }
    Ok(None)
}

/// The status code of the status line that starts `head`.
fn parse_status(head: &str) -> Result<u16, String> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let proto = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 status line: {line:?}"));
    }
    parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn read_body(
    s: &mut TcpStream,
    mut have: Vec<u8>,
    headers: &[(String, String)],
    is_head: bool,
    status: u16,
) -> Result<Vec<u8>, String> {
    if is_head || status == 204 || status == 304 {
        return Ok(Vec::new());
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut chunk = [0u8; 65536];
    if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while have.len() < len {
            // A reset after the headers (server answered early and closed) still counts as an
            // answer: keep the status and whatever body arrived.
            let n = s.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                return Ok(have);
            }
            have.extend_from_slice(&chunk[..n]);
        }
        have.truncate(len);
        return Ok(have);
    }
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    loop {
        if chunked {
            if let Some(body) = dechunk(&have) {
                return Ok(body);
            }
        }
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return Ok(have);
        }
        have.extend_from_slice(&chunk[..n]);
    }
}

/// Decodes a complete chunked body, or None if more bytes are needed.
pub(crate) fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(b, b"\r\n")?;
        let size_str = String::from_utf8_lossy(&b[..line_end]);
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
