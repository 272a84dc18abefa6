//! `registry.local.limits_config`: upload sessions per client, request rate, request-head size,
//! repository-name length and manifest size, each from the config file of the real binary.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;

use crate::support::*;

pub(crate) fn serve_with_limits(limits: &str) -> Serve {
    let local = format!("limits_config: {limits}");
    let config = LocalConfig {
        local: &local,
        ..LocalConfig::default()
    };
    Serve::start(&config.render(), &[])
}

/// A client whose connections come from another loopback address (a second "client").
pub(crate) fn client_from(ip: &str) -> Client {
    Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Asserts a 429 `TOOMANYREQUESTS` envelope with a numeric `Retry-After`; returns it.
pub(crate) fn assert_too_many(r: reqwest::blocking::Response) -> u64 {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let after = r
        .headers()
        .get("retry-after")
        .expect("Retry-After on a 429")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(after >= 1);
    assert_eq!(error_code(r), "TOOMANYREQUESTS");
    after
}

/// Sends `GET /v2/` until one is refused, at most `max` passing; returns how many passed and
/// the refusal.
pub(crate) fn until_refused(c: &Client, base: &str, max: usize) -> (usize, Response) {
    let mut passed = 0;
    loop {
        let r = c.get(format!("{base}/v2/")).send().unwrap();
        if r.status() != StatusCode::OK {
            return (passed, r);
        }
        passed += 1;
        assert!(passed <= max, "no 429 after {passed} requests");
    }
}

fn start_session(c: &Client, base: &str, repo: &str) -> reqwest::blocking::Response {
    c.post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .unwrap()
}

fn location(base: &str, r: &reqwest::blocking::Response) -> String {
    let loc = r.headers()["location"].to_str().unwrap();
    if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc.to_owned()
    }
}

#[test]
fn upload_sessions_are_capped_per_client() {
    let s = serve_with_limits("{max_upload_sessions_per_client: 3, upload_session_ttl: 6}");
    let c = client();
    let mut open = Vec::new();
    for _ in 0..3 {
        let r = start_session(&c, &s.base, "cap/a");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        open.push(location(&s.base, &r));
    }
    assert_too_many(start_session(&c, &s.base, "cap/a"));
    // Another repository does not help: the cap is per client.
    assert_too_many(start_session(&c, &s.base, "cap/b"));
    // A single-request upload opens no session and is still served.
    assert_eq!(push_blob(&s.base, "cap/a", b"mono", None).status(), 201);
    // Another client address has its own count.
    let other = client_from("127.0.0.2");
    let r = start_session(&other, &s.base, "cap/a");
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", s.log());
    let r = other.delete(location(&s.base, &r)).send().unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Looking a session up through another repository (404) does not free a slot.
    let foreign = open[0].replacen("/v2/cap/a/", "/v2/cap/b/", 1);
    assert_eq!(c.get(&foreign).send().unwrap().status(), 404);
    assert_too_many(start_session(&c, &s.base, "cap/a"));
    // Cancelling one frees a slot.
    let cancelled = open.remove(0);
    assert_eq!(c.delete(&cancelled).send().unwrap().status(), 204);
    let r = start_session(&c, &s.base, "cap/a");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    open.push(location(&s.base, &r));
    assert_too_many(start_session(&c, &s.base, "cap/a"));
    // So does completing one.
    let done = open.remove(0);
    let sep = if done.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{done}{sep}digest={}", sha(b"")))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = start_session(&c, &s.base, "cap/a");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_too_many(start_session(&c, &s.base, "cap/a"));
    // Sessions left untouched for the TTL (6 s) stop counting.
    std::thread::sleep(Duration::from_millis(6300));
    let r = start_session(&c, &s.base, "cap/a");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[test]
fn rate_limit_answers_429_then_recovers() {
    let s = serve_with_limits("{rate_limit_rps: 2, rate_limit_burst: 4}");
    let c = client();
    // The burst passes; the bucket then empties (a slow machine may refill a token or two).
    let (passed, refused) = until_refused(&c, &s.base, 8);
    assert!(passed >= 4, "refused after {passed} requests");
    assert_eq!(assert_too_many(refused), 1);
    // Other clients are not throttled.
    let r = client_from("127.0.0.2")
        .get(format!("{}/v2/", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Half a second later a token is back (2 per second).
    std::thread::sleep(Duration::from_millis(600));
    let r = c.get(format!("{}/v2/", s.base)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Sends `head` raw and reads until the server closes; `Err` if it neither answers nor closes
/// within 10 s.
fn raw_until_close(addr: &str, head: &[u8]) -> Result<String, String> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = c.write_all(head);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => {
                return Ok(String::from_utf8_lossy(&out).into_owned())
            }
            Err(e) => {
                return Err(format!(
                    "{e} after {:?}",
                    String::from_utf8_lossy(&out[..out.len().min(200)])
                ))
            }
        }
    }
}

fn head_with(extra: usize, finished: bool) -> Vec<u8> {
    let mut h = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}",
        "a".repeat(extra)
    );
    if finished {
        h.push_str("\r\n\r\n");
    }
    h.into_bytes()
}

#[test]
fn request_heads_over_the_limit_get_431() {
    let s = serve_with_limits("{max_header_bytes: 8192}");
    // Under the limit: served.
    let reply = raw_until_close(&s.addr, &head_with(6000, true)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // Over it: 431 (with the envelope, from the limits layer), then a clean close.
    let reply = raw_until_close(&s.addr, &head_with(9000, true)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(reply.contains("\"errors\""), "{reply}");
    // A head that does not even fit hyper's 1 MiB read buffer: 431 from hyper while it is
    // still arriving, then a clean close.
    let reply = raw_until_close(&s.addr, &head_with(1_100_000, false)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // Other clients are unaffected.
    let r = client().get(format!("{}/v2/", s.base)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The default limit (64 KiB) admits a 20 KB head.
    let d = serve_with_limits("{}");
    let reply = raw_until_close(&d.addr, &head_with(20_000, true)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let reply = raw_until_close(&d.addr, &head_with(70_000, true)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
}

#[test]
fn names_longer_than_the_limit_are_name_invalid() {
    let s = serve_with_limits("{max_name_length: 20}");
    let c = client();
    let ok = "abcdefghij/klmnopqrs"; // 20 characters
    let long = "abcdefghij/klmnopqrst"; // 21
    let tags_list = |repo: &str| {
        let r = c
            .get(format!("{}/v2/{repo}/tags/list", s.base))
            .send()
            .unwrap();
        (r.status(), error_code(r))
    };
    assert_eq!(
        tags_list(ok),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN".to_owned())
    );
    assert_eq!(push_blob(&s.base, ok, b"fits", None).status(), 201);
    assert_eq!(
        tags_list(long),
        (StatusCode::BAD_REQUEST, "NAME_INVALID".to_owned())
    );
    let r = push_blob(&s.base, long, b"too long", None);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "NAME_INVALID");
    let r = c
        .put(format!("{}/v2/{long}/manifests/v1", s.base))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "NAME_INVALID");
    let r = c
        .head(format!("{}/v2/{long}/manifests/v1", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// An image manifest padded with an annotation to about `size` bytes.
fn padded_manifest(config: &str, layer: &str, size: usize) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}],
        "annotations": {"pad": ""}
    });
    let base = m.to_string().len();
    m["annotations"]["pad"] = serde_json::Value::String("p".repeat(size - base));
    let out = m.to_string().into_bytes();
    assert_eq!(out.len(), size);
    out
}

#[test]
fn max_manifest_bytes_comes_from_the_config() {
    let s = serve_with_limits("{max_manifest_bytes: 5242880}");
    assert_eq!(push_blob(&s.base, "big/m", b"{}", None).status(), 201);
    assert_eq!(push_blob(&s.base, "big/m", b"layer", None).status(), 201);
    let put = |tag: &str, body: Vec<u8>| {
        client()
            .put(format!("{}/v2/big/m/manifests/{tag}", s.base))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .send()
            .unwrap()
    };
    // 4.5 MiB: over the 4 MiB default, under the configured 5 MiB.
    let r = put(
        "fits",
        padded_manifest(&sha(b"{}"), &sha(b"layer"), 4_718_592),
    );
    assert_eq!(r.status(), StatusCode::CREATED, "{}", s.log());
    // Over it: refused from the Content-Length, possibly before the body is read (so read the
    // answer while sending).
    let body = padded_manifest(&sha(b"{}"), &sha(b"layer"), 5_300_000);
    let head = format!(
        "PUT /v2/big/m/manifests/huge HTTP/1.1\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}",
        body.len()
    );
    let r = crate::common::raw::send(s.addr.parse().unwrap(), &head, &body, false).unwrap();
    assert_eq!(r.status, 413);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["errors"][0]["code"], "SIZE_INVALID");
    let r = client()
        .get(format!("{}/v2/big/m/manifests/huge", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
