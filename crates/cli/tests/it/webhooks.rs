//! Webhooks end to end with the real binary: manifest pushes and deletes while the receiver is
//! down, a `kill -9` and restart of the server, then the receiver comes up → every event arrives
//! with the right fields and a valid signature, exactly once after dedup by id; a SIGTERM stops
//! the server (and its notifier) cleanly.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{client, LocalConfig, ADMIN_AUTH};
use ocireg_test_support::{free_port, sha256_str as sha, Serve};
use sha2::Digest as _;

const SECRET: &str = "hook-secret";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `ocireg --config DIR/ocireg.yaml serve` on a free loopback port; each run logs to its own file.
fn serve(dir: &Path) -> Serve {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    Serve::builder()
        .config(dir.join("ocireg.yaml"))
        .listen("127.0.0.1:0")
        .root(dir.join("root"))
        .home(dir)
        .log(dir.join(format!("server-{run}.log")))
        .env("OCIREG_LOG", "info,ocireg_webhook=debug")
        .start()
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 webhook receiver on a fixed loopback port: records every POST, answers
/// 200 and closes the connection. Stopped on drop.
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

fn handle(mut conn: TcpStream) -> Option<Hit> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    Some(Hit {
        headers,
        body: buf[head_end..head_end + len].to_vec(),
    })
}

impl Receiver {
    fn start(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Some(hit) = conn.ok().and_then(handle) {
                    h.lock().unwrap().push(hit);
                }
            }
        });
        Receiver { hits, stop, port }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The event bodies, deduplicated by event id (first arrival kept).
    fn events(&self) -> Vec<serde_json::Value> {
        let mut seen = std::collections::HashSet::new();
        self.hits()
            .into_iter()
            .map(|h| serde_json::from_slice::<serde_json::Value>(&h.body).unwrap())
            .filter(|v| seen.insert(v["event"]["id"].as_str().unwrap().to_owned()))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    // HMAC-SHA256 by its definition (RFC 2104), independent of the code under test.
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(body.iter().copied())
        .collect();
    let inner_hash = sha2::Sha256::digest(&inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner_hash).collect();
    hex::encode(sha2::Sha256::digest(&outer))
}

fn push_blob(base: &str, repo: &str, data: &[u8]) {
    let r = crate::support::push_blob(base, repo, data, Some(("admin", "adminpw")));
    assert_eq!(r.status().as_u16(), 201, "blob push");
}

/// Pushes an image manifest (and its blobs) under `reference`; returns (digest, size).
fn push_manifest(base: &str, repo: &str, reference: Option<&str>, n: u32) -> (String, usize) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{n}}}"#).into_bytes();
    let layer = format!("layer {n}").into_bytes();
    push_blob(base, repo, &config);
    push_blob(base, repo, &layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let digest = sha(&manifest);
    let r = client()
        .put(format!(
            "{base}/v2/{repo}/manifests/{}",
            reference.unwrap_or(&digest)
        ))
        .basic_auth("admin", Some("adminpw"))
        .header("Content-Type", MANIFEST)
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "manifest push");
    (digest, manifest.len())
}

fn delete_manifest(base: &str, repo: &str, reference: &str) {
    let r = client()
        .delete(format!("{base}/v2/{repo}/manifests/{reference}"))
        .basic_auth("admin", Some("adminpw"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "manifest delete");
}

fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(dir: &Path, port: u16) {
    let d = dir.to_str().unwrap();
    fs::write(dir.join("admin.pw"), "adminpw\n").unwrap();
    fs::write(dir.join("hook.key"), format!("{SECRET}\n")).unwrap();
    let registry = format!(
        r#"{ADMIN_AUTH}
features:
  webhook_enabled: true
  webhook_endpoints: ["http://127.0.0.1:{port}/hook"]"#
    );
    let config = LocalConfig {
        registry: &registry,
        local: "ops_config:
  webhook_secret_path: DIR/hook.key
  webhook_timeout: 2
  webhook_retry_delay: 1
  webhook_retry_max_delay: 1",
        ..LocalConfig::default()
    };
    fs::write(dir.join("ocireg.yaml"), config.render().replace("DIR", d)).unwrap();
}

#[test]
fn events_survive_a_crash_and_arrive_once_after_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_config(dir.path(), port);
    let mut s = serve(dir.path());
    // (action, repository, tag, digest, size), in request order; the receiver is down.
    let mut want: Vec<(&str, &str, Option<&str>, String, usize)> = Vec::new();
    let (a, a_len) = push_manifest(&s.base, "team/app", Some("v1"), 1);
    want.push(("push", "team/app", Some("v1"), a.clone(), a_len));
    let (b, b_len) = push_manifest(&s.base, "team/app", None, 2);
    want.push(("push", "team/app", None, b.clone(), b_len));
    let (c, c_len) = push_manifest(&s.base, "other/lib", Some("latest"), 3);
    want.push(("push", "other/lib", Some("latest"), c, c_len));
    delete_manifest(&s.base, "team/app", "v1");
    want.push(("delete", "team/app", Some("v1"), a, a_len));
    delete_manifest(&s.base, "team/app", &b);
    want.push(("delete", "team/app", None, b, b_len));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.log_text().contains("webhook delivery failed"),
        "deliveries fail while the receiver is down; log:\n{}",
        s.log_text()
    );
    // Crash: acknowledged requests must have durable events.
    s.kill();
    drop(s);
    let rx = Receiver::start(port);
    let mut s = serve(dir.path());
    wait_until(Duration::from_secs(30), "5 events", || {
        rx.events().len() >= 5
    });
    // One more push with everything up is delivered live.
    let (d, d_len) = push_manifest(&s.base, "team/app", Some("v3"), 4);
    want.push(("push", "team/app", Some("v3"), d, d_len));
    wait_until(Duration::from_secs(30), "6 events", || {
        rx.events().len() >= 6
    });
    std::thread::sleep(Duration::from_millis(1500));
    let events = rx.events();
    assert_eq!(
        events.len(),
        want.len(),
        "exactly once after dedup: {events:#?}"
    );
    for (got, (action, repo, tag, digest, size)) in events.iter().zip(&want) {
        assert_eq!(got["version"], 1);
        let e = &got["event"];
        assert_eq!(e["action"], *action, "{e}");
        assert_eq!(e["repository"], *repo, "{e}");
        assert_eq!(e["tag"].as_str(), *tag, "{e}");
        assert_eq!(e["digest"].as_str(), Some(digest.as_str()), "{e}");
        assert_eq!(e["mediaType"], MANIFEST, "{e}");
        assert_eq!(e["size"].as_u64(), Some(*size as u64), "{e}");
        assert_eq!(e["actor"], "admin", "{e}");
        let ts = e["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
    }
    for h in rx.hits() {
        let v: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(h.headers["content-type"], "application/json");
        assert_eq!(
            h.headers["x-ocireg-event-id"],
            v["event"]["id"].as_str().unwrap()
        );
        assert!(
            h.headers["x-ocireg-delivery-attempt"]
                .parse::<u32>()
                .unwrap()
                >= 1
        );
        assert_eq!(
            h.headers["x-ocireg-signature"],
            format!("sha256={}", hmac_hex(SECRET.as_bytes(), &h.body))
        );
    }
    assert!(!s.log_text().contains(SECRET), "the secret is never logged");
    // SIGTERM: the server and its notifier stop cleanly.
    let status = s.terminate(Duration::from_secs(20));
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM; log:\n{}", s.log_text()));
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        s.log_text()
    );
    assert!(
        s.log_text().contains("webhook notifier stopped"),
        "{}",
        s.log_text()
    );
}

#[test]
fn invalid_endpoint_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), 1);
    let cfg = dir.path().join("ocireg.yaml");
    let text = fs::read_to_string(&cfg).unwrap().replace(
        "[\"http://127.0.0.1:1/hook\"]",
        "[\"http://127.0.0.1:1/ok\", \"not a url\"]",
    );
    fs::write(&cfg, text).unwrap();
    let out = Command::new(ocireg_test_support::ocireg_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path().join("root"))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("registry.features.webhook_endpoints[1]"),
        "stderr: {err}"
    );
}
