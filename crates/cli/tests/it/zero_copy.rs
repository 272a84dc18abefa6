//! Blob GETs sent from the file with `sendfile` (plain HTTP/1.1, cached, large enough) and the
//! buffered paths beside them (HTTP/2, TLS, uncached): every client gets the blob's exact bytes,
//! ranges and HEAD answer as before, the metrics count what was sent, and neither a client that
//! hangs up mid-body nor a blob deleted and unlinked mid-send makes the server send wrong bytes.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rand::RngCore;

use crate::support::{client, push_blob, sha, LocalConfig, Serve};

/// What the server logs (at debug) for each body it sends from the file.
const SENT_FROM_FILE: &str = "blob body sent from its file";

const REPO: &str = "zc/blob";

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// Pushes `data` and brings its stored file into the page cache (uploads leave it uncached);
/// returns the digest and the file.
fn push_cached(s: &Serve, data: &[u8]) -> (String, PathBuf) {
    let r = push_blob(&s.base, REPO, data, None);
    assert_eq!(r.status().as_u16(), 201);
    let digest = sha(data);
    let hex = digest.strip_prefix("sha256:").unwrap();
    let file = find_file(&s.dir.path().join("root"), hex, data.len() as u64)
        .unwrap_or_else(|| panic!("no stored file of {digest}"));
    assert!(fs::read(&file).unwrap() == data);
    (digest, file)
}

/// The file under `dir` whose path names `hex` and whose size is `size`.
fn find_file(dir: &Path, hex: &str, size: u64) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, hex, size) {
                return Some(found);
            }
        } else if path.to_string_lossy().contains(hex)
            && fs::metadata(&path).map(|m| m.len()).ok() == Some(size)
        {
            return Some(path);
        }
    }
    None
}

/// `curl ARGS URL`: (status line's code, headers text, body).
fn curl(args: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = fs::read_to_string(head).unwrap();
    let code = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    (code, head, fs::read(body).unwrap_or_default())
}

/// A response header's value (last response, case-insensitive name).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().rev().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn metrics_config() -> String {
    LocalConfig {
        registry: "zot_features: {metrics_enabled: true, metrics_port: 0}",
        ..LocalConfig::default()
    }
    .render()
}

/// The server's total of response body bytes.
fn response_bytes(metrics_url: &str) -> f64 {
    let text = client().get(metrics_url).send().unwrap().text().unwrap();
    let exposition = ocireg_test_support::prom::parse(&text).unwrap();
    exposition.sum("ocireg_http_response_bytes_total", &[])
}

#[test]
fn every_client_path_gets_the_exact_bytes() {
    let s = Serve::start(&metrics_config(), &[]);
    let metrics_url = s
        .proc
        .next_line(Duration::from_secs(10))
        .and_then(|l| l.strip_prefix("metrics on ").map(|u| u.trim().to_owned()))
        .expect("metrics line");
    let data = random_bytes(9 << 20);
    let (digest, _) = push_cached(&s, &data);
    let url = format!("{}/v2/{REPO}/blobs/{digest}", s.base);
    let before = response_bytes(&metrics_url);

    let (code, head, body) = curl(&["--http1.1"], &url);
    assert_eq!(code, 200);
    assert!(body == data, "whole blob over HTTP/1.1");
    assert_eq!(header(&head, "content-length"), Some("9437184"));
    assert_eq!(s.log_count(SENT_FROM_FILE), 1, "{}", s.log());

    let (code, head, body) = curl(&["--http1.1", "-H", "Range: bytes=1000-6000999"], &url);
    assert_eq!(code, 206);
    assert!(body == data[1000..6_001_000], "range over HTTP/1.1");
    assert_eq!(
        header(&head, "content-range"),
        Some("bytes 1000-6000999/9437184")
    );
    assert_eq!(s.log_count(SENT_FROM_FILE), 2);

    // `-I` writes the head where the body would go: no blob bytes follow it.
    let (code, head, out) = curl(&["--http1.1", "-I"], &url);
    assert_eq!(code, 200);
    assert_eq!(out, head.as_bytes());
    assert_eq!(header(&head, "content-length"), Some("9437184"));

    let (code, _, body) = curl(&["--http2-prior-knowledge"], &url);
    assert_eq!(code, 200);
    assert!(body == data, "whole blob over HTTP/2");
    let (code, _, body) = curl(
        &["--http2-prior-knowledge", "-H", "Range: bytes=5-4194309"],
        &url,
    );
    assert_eq!(code, 206);
    assert!(body == data[5..4_194_310], "range over HTTP/2");
    assert_eq!(s.log_count(SENT_FROM_FILE), 2, "HTTP/2 stays buffered");

    // Small ranges are copied as before, and exact too.
    let (code, _, body) = curl(&["--http1.1", "-H", "Range: bytes=100-199"], &url);
    assert_eq!(code, 206);
    assert!(body == data[100..200]);
    assert_eq!(s.log_count(SENT_FROM_FILE), 2);

    let sent = (2 * data.len() + 6_000_000 + 4_194_305 + 100) as f64;
    let counted = response_bytes(&metrics_url) - before;
    assert_eq!(counted, sent, "response bytes counted");
}

#[test]
fn tls_and_uncached_blobs_stay_buffered_and_exact() {
    let pki = tempfile::tempdir().unwrap();
    let files = ocireg_test_support::tls::make_self_signed(pki.path());
    let registry = format!(
        "tls_enabled: true\ntls_cert_path: {}\ntls_key_path: {}",
        files.cert.display(),
        files.key.display()
    );
    let config = LocalConfig {
        registry: &registry,
        ..LocalConfig::default()
    };
    let s = Serve::start(&config.render(), &[]);
    let data = random_bytes(5 << 20);
    let c = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = c
        .post(format!(
            "{}/v2/{REPO}/blobs/uploads/?digest={}",
            s.base,
            sha(&data)
        ))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let url = format!("{}/v2/{REPO}/blobs/{}", s.base, sha(&data));
    assert!(url.starts_with("https://"), "{url}");
    for _ in 0..2 {
        let (code, _, body) = curl(&["-k", "--http1.1"], &url);
        assert_eq!(code, 200);
        assert!(body == data, "whole blob over TLS");
    }
    let (code, _, body) = curl(&["-k", "--http1.1", "-H", "Range: bytes=7-3000006"], &url);
    assert_eq!(code, 206);
    assert!(body == data[7..3_000_007], "range over TLS");
    assert_eq!(s.log_count(SENT_FROM_FILE), 0, "TLS stays buffered");
}

/// Sends a GET for `path` on a new connection and reads the head and `body_bytes` of the body.
fn start_get(s: &Serve, path: &str, body_bytes: usize) -> (TcpStream, Vec<u8>) {
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.addr
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let head_end = loop {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = got.split_off(head_end);
    while body.len() < body_bytes {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        body.extend_from_slice(&buf[..n]);
    }
    (conn, body)
}

#[test]
fn hang_ups_and_deletes_mid_body_never_send_wrong_bytes() {
    let s = Serve::start(&LocalConfig::default().render(), &[]);
    let data = random_bytes(24 << 20);
    let (digest, file) = push_cached(&s, &data);
    let path = format!("/v2/{REPO}/blobs/{digest}");

    // A client that hangs up after 1 MiB: the server carries on serving.
    let (conn, _) = start_get(&s, &path, 1 << 20);
    drop(conn);
    for _ in 0..3 {
        let (code, _, body) = curl(&["--http1.1"], &format!("{}{path}", s.base));
        assert_eq!(code, 200);
        assert!(body == data, "blob after a client hung up");
    }

    // The blob is deleted and its file unlinked (what garbage collection does) while a client
    // is still reading it: that client still gets exactly the blob.
    let (mut conn, mut body) = start_get(&s, &path, 1 << 20);
    let r = client().delete(format!("{}{path}", s.base)).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    fs::remove_file(&file).unwrap();
    conn.read_to_end(&mut body).unwrap();
    assert_eq!(body.len(), data.len());
    assert!(body == data, "blob deleted mid-send");
    assert!(s.log_count(SENT_FROM_FILE) >= 5, "{}", s.log());
    let (code, _, _) = curl(&["--http1.1"], &format!("{}{path}", s.base));
    assert_eq!(code, 404);
}
