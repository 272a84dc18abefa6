//! A full disk, end to end, on a 24 MiB tmpfs the test mounts itself (mounting needs root, which
//! CI has; without it the test says it was skipped and why): `507` with a message that says so,
//! a failed upload's bytes freed at once, new uploads refused below the free-space reserve while
//! manifests, deletes and GC keep working, and recovery by delete + GC without a restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

use crate::support::{client, sha, LocalConfig};

const MIB: u64 = 1 << 20;

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason on stderr) where this process may not mount.
    fn mount(size_mib: u64) -> Option<Tmpfs> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        if !root {
            eprintln!("SKIPPED full_disk: mounting a small tmpfs needs root (CI runs as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "SKIPPED full_disk: mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Bytes in the upload sessions' data files under `root`.
fn upload_bytes(root: &Path) -> u64 {
    walkdir(root)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "_uploads"))
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Asserts a `507` whose spec envelope says the storage is full.
fn assert_full(r: Response, what: &str) -> String {
    let status = r.status().as_u16();
    assert_full_raw(status, &r.bytes().unwrap(), what)
}

fn assert_full_raw(status: u16, body: &[u8], what: &str) -> String {
    assert_eq!(status, 507, "{what}: {}", String::from_utf8_lossy(body));
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED", "{what}: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("storage is full"), "{what}: {message}");
    message.to_owned()
}

struct Registry {
    base: String,
    http: Client,
}

impl Registry {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `head` and `body` over a raw connection that reads the answer while it is still
    /// sending: a refusal before the body is read must be seen, not a broken pipe.
    fn raw(&self, head: &str, body: &[u8]) -> crate::common::raw::RawReply {
        let addr = self.base.trim_start_matches("http://").parse().unwrap();
        crate::common::raw::send(addr, head, body, false).unwrap()
    }

    fn start_upload(&self, repo: &str) -> Response {
        self.http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .unwrap()
    }

    fn push_blob(&self, repo: &str, data: &[u8]) -> Response {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", sha(data)));
        self.http.post(url).body(data.to_vec()).send().unwrap()
    }

    fn put_manifest(&self, repo: &str, tag: &str, body: &[u8]) -> Response {
        self.http
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(body.to_vec())
            .send()
            .unwrap()
    }

    fn storage(&self) -> Value {
        let usage: Value = self
            .http
            .get(self.url("/v2/_ocireg/usage"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        usage["storage"].clone()
    }
}

/// A manifest of one `layer` (the empty JSON config), pushed and tagged `repo:v1`.
fn push_image(reg: &Registry, repo: &str, layer: &[u8]) -> (Vec<u8>, String) {
    let config = b"{}";
    for blob in [&config[..], layer] {
        assert_eq!(reg.push_blob(repo, blob).status().as_u16(), 201);
    }
    let desc = |media: &str, data: &[u8]| json!({"mediaType": media, "digest": sha(data), "size": data.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", layer)],
    }))
    .unwrap();
    let r = reg.put_manifest(repo, "v1", &manifest);
    assert_eq!(r.status().as_u16(), 201);
    let digest = sha(&manifest);
    (manifest, digest)
}

/// `ocireg serve` with its storage root on `disk`, a 1 MiB reserve and no GC grace period.
fn serve_on(disk: &Tmpfs, work: &Path) -> (ocireg_test_support::Serve, Registry, PathBuf) {
    let config = LocalConfig {
        local: "ops_config: {gc_grace_period: 0}\nlimits_config: {min_free_space: 1048576}",
        ..LocalConfig::default()
    }
    .render()
    .replace("DIR", work.to_str().unwrap());
    std::fs::write(work.join("ocireg.yaml"), config).unwrap();
    let root = disk.path().join("root");
    let proc = ocireg_test_support::Serve::builder()
        .config(work.join("ocireg.yaml"))
        .listen("127.0.0.1:0")
        .root(&root)
        .home(work)
        .log(work.join("server.log"))
        .start();
    let reg = Registry {
        base: proc.base.clone(),
        http: client(),
    };

    (proc, reg, root)
}

/// A declared length that cannot fit is refused before its body is read; a chunked body meets
/// ENOSPC: its session's bytes are freed at once and the session is gone.
fn uploads_that_cannot_fit(reg: &Registry, root: &Path) {
    let big = crate::common::random_bytes(40 * MIB as usize);
    let head = format!(
        "POST /v2/full/b/blobs/uploads/?digest={} HTTP/1.1\r\nContent-Length: {}",
        sha(&big),
        big.len()
    );
    let reply = reg.raw(&head, &big);
    let message = assert_full_raw(reply.status, &reply.body, "40 MiB, Content-Length");
    assert!(
        message.contains("do not fit"),
        "not refused unread: {message}"
    );
    assert_eq!(upload_bytes(root), 0, "the refused push left bytes");

    let r = reg.start_upload("full/b");
    assert_eq!(r.status().as_u16(), 202);
    let location = reg.url(r.headers()["location"].to_str().unwrap());
    let part = &big[..20 * MIB as usize];
    let mut body = format!("{:x}\r\n", part.len()).into_bytes();
    body.extend_from_slice(part);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let path = location.trim_start_matches(&reg.base).to_owned();
    let reply = reg.raw(
        &format!("PATCH {path} HTTP/1.1\r\nTransfer-Encoding: chunked"),
        &body,
    );
    assert_full_raw(
        reply.status,
        &reply.body,
        "20 MiB chunked PATCH onto 14 MiB of free space",
    );
    assert_eq!(upload_bytes(root), 0, "the failed upload's bytes stay");
    assert_eq!(
        reg.http.get(&location).send().unwrap().status().as_u16(),
        404
    );
}

/// Below the reserve: new uploads refused up front; manifests, deletes and GC still work.
fn below_the_reserve(reg: &Registry, disk: &Tmpfs, manifest: &[u8], digest: &str) {
    let storage = reg.storage();
    assert_eq!(
        storage["reserve_bytes"], MIB,
        "the configured reserve: {storage}"
    );
    let free = storage["available_bytes"].as_u64().unwrap();
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![1u8; (free - 100 * 1024) as usize]).unwrap();
    let message = assert_full(reg.start_upload("full/c"), "upload start below the reserve");
    assert!(message.contains("below the reserve"), "{message}");
    let storage = reg.storage();
    assert!(
        storage["available_bytes"].as_u64() < storage["reserve_bytes"].as_u64(),
        "{storage}"
    );
    let r = reg.put_manifest("full/a", "v2", manifest);
    assert_eq!(r.status().as_u16(), 201, "a tag below the reserve");
    let r = reg
        .http
        .delete(reg.url(&format!("/v2/full/a/manifests/{digest}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "a delete below the reserve");
    let r = reg.http.post(reg.url("/v2/_ocireg/gc")).send().unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "GC below the reserve: {:?}",
        r.text()
    );
}

#[test]
fn a_full_disk_refuses_uploads_frees_their_bytes_and_recovers_by_delete_and_gc() {
    let Some(disk) = Tmpfs::mount(24) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (proc, reg, root) = serve_on(&disk, work.path());
    let layer = crate::common::random_bytes(10 * MIB as usize);
    let (manifest, digest) = push_image(&reg, "full/a", &layer);
    uploads_that_cannot_fit(&reg, &root);
    below_the_reserve(&reg, &disk, &manifest, &digest);
    // Recovered without a restart: the 10 MiB layer is gone and uploads work again.
    let storage = reg.storage();
    assert!(
        storage["available_bytes"].as_u64().unwrap() > 9 * MIB,
        "{storage}"
    );
    let small = crate::common::random_bytes(MIB as usize);
    assert_eq!(reg.push_blob("full/c", &small).status().as_u16(), 201);
    let text = std::fs::read_to_string(work.path().join("server.log")).unwrap();
    assert_eq!(
        text.matches("below twice the reserve").count(),
        1,
        "one low-space warning:\n{text}"
    );
    drop(proc);
}
