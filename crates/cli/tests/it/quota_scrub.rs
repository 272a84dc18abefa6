//! Quotas and scrub end to end with the real binary: a push over a namespace quota is answered
//! `403 DENIED` over HTTP (also a blob upload whose Content-Length passes the storage limit,
//! before its body is read); `ocireg scrub` finds a blob whose bytes were flipped on disk —
//! through the running server, and in-process when no server runs — and the registry then
//! refuses to serve it, also after a restart.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::raw;
use crate::support::LocalConfig;
use ocireg_test_support::{free_port, sha256_str as sha, Serve};
use reqwest::blocking::Client;
use serde_json::{json, Value};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `ocireg --config DIR/ocireg.yaml serve` on the configured loopback port; run `run` logs to
/// its own file.
fn serve(dir: &Path, run: u32) -> Serve {
    let s = Serve::builder()
        .config(dir.join("ocireg.yaml"))
        .home(dir)
        .log(dir.join(format!("server-{run}.log")))
        .env("OCIREG_LOG", "info")
        .start();
    assert!(s.base.starts_with("http://127.0.0.1:"), "{}", s.base);
    s
}

fn write_config(dir: &Path, port: u16) {
    let d = dir.to_str().unwrap();
    let local = format!(
        "http_config:
  listen_address: 127.0.0.1
  listen_port: {port}
storage_config:
  rootdirectory: DIR/root"
    );
    let config = LocalConfig {
        kind: "distribution",
        namespaces: "custom:\n  team: team-artifacts",
        registry: "features:
  quota_enabled: true
  quota_config:
    storage_limit_gb: 4
    artifact_limit: 100
    namespace_quotas:
      team: { storage_limit_gb: 1, artifact_limit: 1 }",
        local: &local,
    };
    fs::write(dir.join("ocireg.yaml"), config.render().replace("DIR", d)).unwrap();
}

fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap());
    digest
}

/// Pushes a config and a layer, then a manifest tagged `tag`; returns the reply and the
/// layer's (bytes, digest).
fn push_image(
    c: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    n: u32,
) -> (reqwest::blocking::Response, Vec<u8>, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{n}}}"#).into_bytes();
    let layer: Vec<u8> = (0..5000u32).map(|i| (i * 7 + n) as u8).collect();
    push_blob(c, base, repo, &config);
    let layer_digest = push_blob(c, base, repo, &layer);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer.len()}],
    });
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", MANIFEST)
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .unwrap();
    (r, layer, layer_digest)
}

fn error_code(body: &Value) -> (String, String) {
    let e = &body["errors"][0];
    (
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    root.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn flip(path: &Path) {
    let mut data = fs::read(path).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0xff;
    fs::write(path, data).unwrap();
}

fn scrub(dir: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_ocireg"))
        .arg("--config")
        .arg(dir.join("ocireg.yaml"))
        .args(["scrub", "--json"])
        .env("HOME", dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "scrub printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn assert_blob_refused(c: &Client, s: &Serve, repo: &str, digest: &str) {
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = c.get(s.url(&path)).send().unwrap();
    assert_eq!(r.status().as_u16(), 404, "GET {path}: {}", s.log_text());
    let (code, _) = error_code(&r.json().unwrap());
    assert_eq!(code, "BLOB_UNKNOWN");
    let r = c.head(s.url(&path)).send().unwrap();
    assert_eq!(r.status().as_u16(), 404, "HEAD {path}");
}

/// The registry's usage report.
fn usage(c: &Client, s: &Serve) -> Value {
    c.get(s.url("/v2/_ocireg/usage"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn quota_denied_over_http_and_scrub_quarantines_flipped_blobs() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), free_port());
    let root = dir.path().join("root");
    let c = Client::new();
    let s = serve(dir.path(), 0);

    // Usage and limits are visible.
    let usage_before = usage(&c, &s);
    assert_eq!(
        usage_before["limits"]["namespaces"]["team-artifacts"]["artifact_limit"], 1,
        "{usage_before}"
    );
    assert_eq!(usage_before["limits"]["storage_limit_bytes"], 4u64 << 30);
    team_quota_is_enforced(&c, &s, &root);

    // Other namespaces are not limited by it.
    let (r, layer, layer_digest) = push_image(&c, &s.base, "other/app", "v1", 3);
    assert_eq!(r.status().as_u16(), 201);
    let (r, _, second_digest) = push_image(&c, &s.base, "other/lib", "v1", 4);
    assert_eq!(r.status().as_u16(), 201);
    let usage_after = usage(&c, &s);
    assert_eq!(
        usage_after["namespaces"]["other"]["artifacts"], 2,
        "{usage_after}"
    );
    assert_eq!(usage_after["namespaces"]["team-artifacts"]["artifacts"], 1);

    scrub_through_the_server(dir.path(), &c, &s, &layer_digest, &second_digest);
    drop(s);
    scrub_without_a_server(dir.path(), &c, &layer, &layer_digest, &second_digest);
}

/// The `team-artifacts` namespace: its artifact limit 1 lets the first image in and denies the
/// second; its storage limit (1 GiB) refuses an upload announcing 2 GiB before its body.
fn team_quota_is_enforced(c: &Client, s: &Serve, root: &Path) {
    let (r, _, _) = push_image(c, &s.base, "team-artifacts/app", "v1", 1);
    assert_eq!(r.status().as_u16(), 201);
    let (r, _, _) = push_image(c, &s.base, "team-artifacts/app", "v2", 2);
    assert_eq!(r.status().as_u16(), 403);
    let (code, message) = error_code(&r.json().unwrap());
    assert_eq!(code, "DENIED");
    assert!(
        message.contains("namespace \"team-artifacts\" artifact limit 1 (in use 1"),
        "{message}"
    );
    let r = c
        .get(s.url("/v2/team-artifacts/app/manifests/v2"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    let digest = sha(b"never sent");
    let reply = raw::send(
        s.base.strip_prefix("http://").unwrap().parse().unwrap(),
        &format!(
            "POST /v2/team-artifacts/app/blobs/uploads/?digest={digest} HTTP/1.1\r\nContent-Length: {}",
            2u64 << 30
        ),
        b"",
        false,
    )
    .unwrap();
    assert_eq!(reply.status, 403);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    let (code, message) = error_code(&body);
    assert_eq!(code, "DENIED");
    assert!(
        message.starts_with(
            "quota exceeded: namespace \"team-artifacts\" storage limit 1 GiB (in use"
        ),
        "{message}"
    );
    assert!(!blob_path(root, &digest).exists());
}

/// Scrub while the server runs: the flipped layer of `other/app` is quarantined and refused,
/// the intact layer of `other/lib` still served.
fn scrub_through_the_server(dir: &Path, c: &Client, s: &Serve, flipped: &str, intact: &str) {
    flip(&blob_path(&dir.join("root"), flipped));
    let (status, report) = scrub(dir);
    assert_eq!(status, 1, "{report}");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["expected"], flipped);
    assert_eq!(findings[0]["repositories"], json!(["other/app"]));
    assert!(findings[0]["quarantined_to"]
        .as_str()
        .unwrap()
        .starts_with("quarantine/"));
    assert_blob_refused(c, s, "other/app", flipped);
    let r = c
        .get(s.url(&format!("/v2/other/lib/blobs/{intact}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(s
        .log_text()
        .contains("scrub: stored object does not match its digest"));
}

/// Scrub in-process (no server) finds the second flipped blob; both findings hold after a
/// restart, and pushing `layer` again restores it.
fn scrub_without_a_server(dir: &Path, c: &Client, layer: &[u8], first: &str, second: &str) {
    flip(&blob_path(&dir.join("root"), second));
    let (status, report) = scrub(dir);
    assert_eq!(status, 1, "{report}");
    assert_eq!(report["findings"][0]["expected"], second);
    assert_eq!(report["findings"][0]["repositories"], json!(["other/lib"]));
    let s = serve(dir, 1);
    assert_blob_refused(c, &s, "other/app", first);
    assert_blob_refused(c, &s, "other/lib", second);
    push_blob(c, &s.base, "other/app", layer);
    let r = c
        .get(s.url(&format!("/v2/other/app/blobs/{first}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), layer);
    let (status, report) = scrub(dir);
    assert_eq!(status, 0, "{report}");
}
