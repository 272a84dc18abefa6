//! Connection timeouts: a slow client is cut off while others are served.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::*;

#[test]
fn slow_loris_is_cut_off_while_others_are_served() {
    use std::io::{Read, Write};
    let config = LocalConfig {
        local: "http_config: {read_timeout: 2, write_timeout: 5, idle_timeout: 5}",
        ..LocalConfig::default()
    };
    let s = Serve::start(&config.render(), &[]);
    let addr = s.addr.clone();
    let started = std::time::Instant::now();
    let loris = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        let request = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for b in request {
            if c.write_all(&[*b]).is_err() {
                return (started.elapsed(), true);
            }
            std::thread::sleep(Duration::from_secs(1));
            // Closed by the server? A read returns 0 (or an error) once it is.
            c.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 512];
            let closed = match c.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            c.set_nonblocking(false).unwrap();
            if closed {
                return (started.elapsed(), true);
            }
        }
        (started.elapsed(), false)
    });
    // Meanwhile other clients are served promptly.
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let r = client().get(format!("{}/v2/", s.base)).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(t.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(500));
    }
    let (after, cut) = loris.join().unwrap();
    assert!(cut, "the slow client was never cut off");
    assert!(
        after < Duration::from_secs(10),
        "cut off only after {after:?}"
    );
}
