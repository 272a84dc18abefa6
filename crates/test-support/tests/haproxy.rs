#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HAProxy harness in front of three plain HTTP servers: requests spread over all three
//! (each answer names its server in `X-Served-By`), and a killed server is taken out while
//! every request keeps being answered by the others.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ocireg_test_support::haproxy::{http_get, SERVED_BY};
use ocireg_test_support::Haproxy;

/// A plain HTTP server on a free loopback port answering `200 ok` to every request (the
/// health check `GET /v2/` included), one connection at a time, until stopped.
struct Plain {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Plain {
    fn start() -> Plain {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                // Read the request head; bodies are not sent by these tests.
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Plain {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops accepting: the listener is closed, so connections are refused.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `n` requests through the proxy; counts answers per `X-Served-By`.
fn spread(proxy: &Haproxy, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let head = http_get(proxy.addr, &format!("/v2/x/blobs/{i}"))
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", proxy.log()));
        assert_eq!(head.status, 200, "request {i}: {head:?}\n{}", proxy.log());
        let by = head
            .header(SERVED_BY)
            .unwrap_or_else(|| panic!("no {SERVED_BY} in {head:?}"));
        *counts.entry(by.to_owned()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn requests_spread_over_every_backend_and_a_dead_one_is_taken_out() {
    let mut servers: Vec<Plain> = (0..3).map(|_| Plain::start()).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let proxy = Haproxy::start(&addrs);
    let config = std::fs::read_to_string(proxy.config_path()).unwrap();
    for want in [
        "balance roundrobin",
        "option http-server-close",
        "option redispatch 1",
        "http-check expect rstatus ^(200|401)$",
        "check inter 500 fall 2 rise 2",
    ] {
        assert!(config.contains(want), "{want:?} missing:\n{config}");
    }

    // Round robin, one request per connection: 30 requests, 10 per server.
    let counts = spread(&proxy, 30);
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["r0", "r1", "r2"],
        "{counts:?}"
    );
    assert!(counts.values().all(|&n| n >= 8), "uneven: {counts:?}");

    // r1 dies: connections to it are refused, retried and redispatched, so no request fails;
    // once its health checks fail it gets nothing at all.
    servers[1].stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts = spread(&proxy, 12);
        if !counts.contains_key("r1") {
            assert_eq!(counts.len(), 2, "{counts:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "r1 still served requests after 10 s: {counts:?}\n{}",
            proxy.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}
