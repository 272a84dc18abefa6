//! A fake registry for the client tests: it serves one artifact and can corrupt its layer on the
//! wire, which no real registry under test would do.

/// A one-artifact registry on 127.0.0.1 (plain HTTP/1.1, one request per connection) that can
/// serve its layer with one content byte flipped: same size, a well-formed tar, wrong digest.
pub(crate) struct TamperingRegistry {
    pub(crate) port: u16,
    pub(crate) corrupt: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TamperingRegistry {
    pub(crate) fn start(
        manifest: Vec<u8>,
        blobs: Vec<(String, Vec<u8>, Vec<u8>)>,
    ) -> TamperingRegistry {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let corrupt = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (corrupt.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                let (status, ctype, body): (&str, &str, Vec<u8>) = if path == "/v2/" {
                    ("200 OK", "application/json", b"{}".to_vec())
                } else if path.ends_with("/manifests/1") {
                    (
                        "200 OK",
                        "application/vnd.oci.image.manifest.v1+json",
                        manifest.clone(),
                    )
                } else if let Some((_, good, bad)) = blobs
                    .iter()
                    .find(|(d, _, _)| path.ends_with(&format!("/blobs/{d}")))
                {
                    let b = if c.load(Ordering::SeqCst) { bad } else { good };
                    ("200 OK", "application/octet-stream", b.clone())
                } else {
                    (
                        "404 Not Found",
                        "application/json",
                        b"{\"errors\":[]}".to_vec(),
                    )
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                if method != "HEAD" {
                    let _ = conn.write_all(&body);
                }
            }
        });
        TamperingRegistry {
            port,
            corrupt,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TamperingRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
