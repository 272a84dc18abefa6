//! Metrics and search end to end with the real binary: known operations over HTTP, then the
//! `/metrics` exposition (parsed by a strict text-format parser) shows exactly those counts and
//! byte totals; search by name, tag, annotation and artifactType with pagination and auth (a
//! user who may not read a repository never sees it), over HTTP and with `ocireg search`; the
//! `zot_features` switches (absent: search on, metrics off).

use std::fs;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

use crate::support::client;
use ocireg_test_support::{prom, sha256_str as sha};
use reqwest::blocking::{Body, Client};
use serde_json::{json, Value};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EXT: &str = "application/vnd.provisioning.extension.v1";
const KCL: &str = "application/vnd.provisioning.kcl-package.v1";

/// `ocireg --config FILE serve --listen 127.0.0.1:0`, killed on drop; keeps its stdout lines.
struct Serve {
    proc: ocireg_test_support::Serve,
    base: String,
    dir: tempfile::TempDir,
}

impl Serve {
    /// Writes `config` (`DIR` = a fresh directory holding `files`) and serves it.
    fn start(config: &str, files: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        let cfg = dir.path().join("ocireg.yaml");
        fs::write(&cfg, config.replace("DIR", &d)).unwrap();
        let proc = ocireg_test_support::Serve::builder()
            .config(&cfg)
            .listen("127.0.0.1:0")
            .home(dir.path())
            .log(dir.path().join("server.log"))
            .env("OCIREG_LOG", "info")
            .start();
        let base = proc.base.clone();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Serve { proc, base, dir }
    }

    /// The metrics URL from the second stdout line.
    fn metrics_url(&self) -> String {
        let line = self
            .proc
            .next_line(Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!("no metrics line; log:\n{}", self.log());
            });
        let url = line.strip_prefix("metrics on ").unwrap().trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
            "{url}"
        );
        url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn host(&self) -> &str {
        self.base.strip_prefix("http://").unwrap()
    }

    fn log(&self) -> String {
        self.proc.log_text()
    }
}

fn config(zot_features: &str, auth: &str) -> String {
    format!(
        "registry:\n  deployment: local\n  type: {ty}\n  endpoint: localhost\n{auth}  namespaces: {{}}\n{zot_features}  local:\n    data_dir: DIR\n    config_path: DIR/native.yml\n    storage_config: {{rootdirectory: DIR/root}}\n",
        ty = if zot_features.is_empty() { "distribution" } else { "zot" },
    )
}

fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8], auth: Option<(&str, &str)>) {
    let mut req = c
        .post(format!(
            "{base}/v2/{repo}/blobs/uploads/?digest={}",
            sha(data)
        ))
        .body(data.to_vec());
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    let r = req.send().unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap());
}

/// Pushes an artifact manifest (empty config, one layer); returns (digest, manifest bytes).
fn push_artifact(
    c: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    artifact_type: &str,
    annotations: Value,
    auth: Option<(&str, &str)>,
) -> (String, usize) {
    let layer = format!("{repo}:{tag}:{annotations}").into_bytes();
    push_blob(c, base, repo, b"{}", auth);
    push_blob(c, base, repo, &layer, auth);
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha(&layer), "size": layer.len()}],
        "annotations": annotations,
    }))
    .unwrap();
    let mut req = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", MANIFEST)
        .body(body.clone());
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    let r = req.send().unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().unwrap());
    (sha(&body), body.len())
}

/// A reader that hands out `data` in pieces, so reqwest sends it chunked (no Content-Length).
struct Pieces {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7_000).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn scrape(c: &Client, url: &str) -> prom::Exposition {
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().unwrap();
    prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn requests(e: &prom::Exposition, ep: &str, method: &str, status: &str) -> f64 {
    e.value(
        "ocireg_http_requests_total",
        &[("endpoint", ep), ("method", method), ("status", status)],
    )
    .unwrap_or(0.0)
}

/// The byte counts of the operations [`do_known_operations`] sent.
struct Done {
    /// Blob bytes uploaded (monolithic and chunked).
    uploaded: usize,
    /// Manifest bytes PUT.
    manifest_bytes: usize,
    /// Blob bytes served by the GETs.
    blob_bytes_out: usize,
    /// Body bytes of the manifest 404s.
    not_found: usize,
}

/// Uploads two blobs in monolithic POSTs and one in a chunked-encoding PATCH session (POST,
/// PATCH, PUT); returns the blobs `(config, small, big)`.
fn upload_three_blobs(c: &Client, s: &Serve, repo: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let config = br#"{"os":"linux"}"#.to_vec();
    let small: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 249) as u8).collect();
    push_blob(c, &s.base, repo, &config, None);
    push_blob(c, &s.base, repo, &small, None);
    let r = c
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let abs = |l: &str| {
        if l.starts_with("http") {
            l.to_owned()
        } else {
            s.url(l)
        }
    };
    let loc = abs(r.headers()["location"].to_str().unwrap());
    let body = Body::new(Pieces {
        data: big.clone(),
        pos: 0,
    });
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().unwrap());
    let loc = abs(r.headers()["location"].to_str().unwrap());
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={}", sha(&big)))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    (config, small, big)
}

/// The operations whose counts [`metrics_count_what_was_done`] checks: 3 uploads, N = 4
/// manifest PUTs, M = 3 GETs of the big blob and 2 of the small one, 3 unknown tags, 1 unknown
/// repository's tag list and one path outside the API.
fn do_known_operations(c: &Client, s: &Serve, repo: &str) -> Done {
    let (config, small, big) = upload_three_blobs(c, s, repo);
    let mut manifest_bytes = 0;
    for i in 0..4 {
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&small), "size": small.len()},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&big), "size": big.len()}
            ],
            "annotations": {"i": i.to_string()},
        }))
        .unwrap();
        manifest_bytes += body.len();
        let r = c
            .put(s.url(&format!("/v2/{repo}/manifests/v{i}")))
            .header("content-type", MANIFEST)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    for (data, times) in [(&big, 3), (&small, 2)] {
        for _ in 0..times {
            let r = c
                .get(s.url(&format!("/v2/{repo}/blobs/{}", sha(data))))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(r.bytes().unwrap().len(), data.len());
        }
    }
    let mut not_found = 0;
    for t in ["a", "b", "c"] {
        let r = c
            .get(s.url(&format!("/v2/{repo}/manifests/{t}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
        not_found += r.bytes().unwrap().len();
    }
    let r = c.get(s.url("/v2/nobody/here/tags/list")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = c.get(s.url("/not-the-api")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    Done {
        uploaded: config.len() + small.len() + big.len(),
        manifest_bytes,
        blob_bytes_out: 3 * big.len() + 2 * small.len(),
        not_found,
    }
}

#[test]
fn metrics_count_what_was_done() {
    let s = Serve::start(
        &config(
            "  zot_features: {metrics_enabled: true, metrics_port: 0}\n",
            "",
        ),
        &[],
    );
    let metrics = s.metrics_url();
    let c = client();
    let done = do_known_operations(&c, &s, "provisioning-extensions/net/vpc");

    let e = scrape(&c, &metrics);
    for (ep, method, status, count) in [
        ("upload", "POST", "201", 2.0),
        ("upload", "POST", "202", 1.0),
        ("upload", "PATCH", "202", 1.0),
        ("upload", "PUT", "201", 1.0),
        ("manifest", "PUT", "201", 4.0),
        ("blob", "GET", "200", 5.0),
        ("manifest", "GET", "404", 3.0),
        ("tags", "GET", "404", 1.0),
        ("invalid", "GET", "404", 1.0),
        // The harness's readiness probe is not there: no GET /v2/ was sent.
        ("base", "GET", "200", 0.0),
    ] {
        assert_eq!(
            requests(&e, ep, method, status),
            count,
            "{method} {ep} answered {status}"
        );
    }
    assert_eq!(e.sum("ocireg_http_requests_total", &[]), 19.0);
    assert_eq!(
        e.sum("ocireg_http_request_duration_seconds_count", &[]),
        19.0
    );
    let bytes = |name: &str, ep: &str| e.value(name, &[("endpoint", ep)]).unwrap() as usize;
    assert_eq!(
        bytes("ocireg_http_request_bytes_total", "upload"),
        done.uploaded
    );
    assert_eq!(
        bytes("ocireg_http_request_bytes_total", "manifest"),
        done.manifest_bytes
    );
    assert_eq!(
        bytes("ocireg_http_response_bytes_total", "blob"),
        done.blob_bytes_out
    );
    assert_eq!(
        bytes("ocireg_http_response_bytes_total", "manifest"),
        done.not_found
    );
    // Store gauges.
    assert_eq!(e.value("ocireg_repositories", &[]), Some(1.0));
    assert_eq!(e.value("ocireg_artifacts", &[]), Some(4.0));
    assert_eq!(
        e.value(
            "ocireg_namespace_artifacts",
            &[("namespace", "provisioning-extensions")]
        ),
        Some(4.0)
    );
    let stored = e.value("ocireg_storage_bytes", &[]).unwrap() as usize;
    assert_eq!(stored, done.uploaded + done.manifest_bytes);
    assert_eq!(e.value("ocireg_upload_sessions", &[]), Some(0.0));
    assert_eq!(e.value("ocireg_gc_runs_total", &[]), Some(0.0));
    // Scraping is not counted; other paths on the metrics port are 404.
    let e2 = scrape(&c, &metrics);
    assert_eq!(e2.sum("ocireg_http_requests_total", &[]), 19.0);
    let r = c.get(metrics.replace("/metrics", "/other")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn without_zot_features_search_is_on_and_metrics_off() {
    let s = Serve::start(&config("", ""), &[]);
    assert_eq!(
        s.proc.next_line(Duration::from_millis(1500)),
        None,
        "no metrics line"
    );
    let c = client();
    let r = c.get(s.url("/v2/_ocireg/search?q=x")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().unwrap(), json!({"results": []}));
    drop(s);
    let s = Serve::start(
        &config(
            "  zot_features: {search_enabled: false, metrics_enabled: false}\n",
            "",
        ),
        &[],
    );
    assert_eq!(
        s.proc.next_line(Duration::from_millis(1500)),
        None,
        "no metrics line"
    );
    let r = c.get(s.url("/v2/_ocireg/search?q=x")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: Value = r.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "UNSUPPORTED");
}

fn htpasswd_line(user: &str, pass: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", "4", user, pass])
        .output()
        .expect("htpasswd (apache2-utils) is installed by scripts/install-test-deps.sh");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned() + "\n"
}

/// Runs `ocireg search ARGS` as `user` against `s`; returns stdout (asserts success).
fn cli_search(s: &Serve, user: &str, args: &[&str]) -> String {
    let d = s.dir.path();
    let cfg = d.join(format!("client-{user}.yaml"));
    let port = s.host().split(':').nth(1).unwrap();
    fs::write(
        &cfg,
        format!(
            "registry:\n  deployment: remote\n  type: distribution\n  endpoint: 127.0.0.1\n  port: {port}\n  username: {user}\n  password_path: {}/{user}.pw\n  namespaces: {{}}\n  remote:\n    timeout: 10\n    retries: 1\n    retry_delay: 0\n",
            d.display()
        ),
    )
    .unwrap();
    let home = d.join(format!("home-{user}"));
    fs::create_dir_all(&home).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ocireg"))
        .arg("--config")
        .arg(&cfg)
        .arg("search")
        .args(args)
        .env("HOME", &home)
        .env_remove("OCIREG_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ocireg search {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_repos(out: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(out).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["repository"].as_str().unwrap().to_owned())
        .collect()
}

const ALICE: Option<(&str, &str)> = Some(("alice", "alicepw"));
const BOB: Option<(&str, &str)> = Some(("bob", "bobpw"));
const VPC: &str = "provisioning-extensions/aws/vpc";

/// A search server where only bob may read or write `secret/**`, holding two versions of an
/// extension and a KCL package (pushed by alice) and a secret extension (pushed by bob);
/// returns it and the digests of the extension's versions 1.0.0 and 1.1.0.
fn serve_search_fixture(c: &Client) -> (Serve, String, String) {
    let users = htpasswd_line("alice", "alicepw") + &htpasswd_line("bob", "bobpw");
    let auth = "  auth_required: true\n  username: admin\n  password_path: DIR/admin.pw\n";
    let cfg = config("  zot_features: {metrics_enabled: false}\n", auth).replace(
        "    storage_config:",
        "    auth_config:\n      htpasswd_path: DIR/htpasswd\n      access:\n        - repositories: [\"secret/**\"]\n          read: [bob]\n          write: [bob]\n    storage_config:",
    );
    let s = Serve::start(
        &cfg,
        &[
            ("admin.pw", "adminpw\n"),
            ("alice.pw", "alicepw\n"),
            ("bob.pw", "bobpw\n"),
            ("htpasswd", &users),
        ],
    );
    let ann = |v: &str| json!({"org.opencontainers.image.version": v, "team": "net"});
    let pushes = [
        (VPC, "1.0.0", EXT, ann("1.0.0"), ALICE),
        (VPC, "1.1.0", EXT, ann("1.1.0"), ALICE),
        (
            "provisioning-kcl/netlib",
            "0.3.0",
            KCL,
            json!({"team": "net"}),
            ALICE,
        ),
        ("secret/aws-keys", "1.0.0", EXT, ann("1.0.0"), BOB),
    ];
    let digests: Vec<String> = pushes
        .into_iter()
        .map(|(repo, tag, ty, ann, who)| push_artifact(c, &s.base, repo, tag, ty, ann, who).0)
        .collect();
    (s, digests[0].clone(), digests[1].clone())
}

#[test]
fn search_filters_pages_and_respects_read_access() {
    let c = client();
    let (s, vpc1, vpc2) = serve_search_fixture(&c);
    http_search_respects_read_access(&c, &s);
    cli_search_as_alice_and_bob(&s);
    cli_search_filters(&s, &vpc1, &vpc2);
}

/// Over HTTP: bob sees the secret repository, alice never does, on any page.
fn http_search_respects_read_access(c: &Client, s: &Serve) {
    let search = |who: Option<(&str, &str)>, q: &str| -> reqwest::blocking::Response {
        let mut req = c.get(s.url(&format!("/v2/_ocireg/search?{q}")));
        if let Some((u, p)) = who {
            req = req.basic_auth(u, Some(p));
        }
        req.send().unwrap()
    };
    let repos = |r: reqwest::blocking::Response| -> Vec<String> {
        assert_eq!(r.status().as_u16(), 200);
        json_repos(&r.text().unwrap())
    };
    assert_eq!(repos(search(BOB, "q=aws")), [VPC, VPC, "secret/aws-keys"]);
    assert_eq!(repos(search(ALICE, "q=aws")), [VPC, VPC]);
    assert_eq!(search(None, "q=aws").status().as_u16(), 401);
    // Paging as alice over HTTP with Link: 3 readable hits, one per page.
    let mut path = "/v2/_ocireg/search?n=1".to_owned();
    let mut seen = Vec::new();
    loop {
        let r = search(ALICE, path.split_once('?').unwrap().1);
        assert_eq!(r.status().as_u16(), 200);
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        seen.extend(json_repos(&r.text().unwrap()));
        match link {
            Some(l) => {
                path = l
                    .split('<')
                    .nth(1)
                    .unwrap()
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            }
            None => break,
        }
        assert!(seen.len() < 10);
    }
    assert_eq!(seen, [VPC, VPC, "provisioning-kcl/netlib"]);
}

/// `ocireg search` as alice and bob; one page at a time with -n / --last.
fn cli_search_as_alice_and_bob(s: &Serve) {
    let out = cli_search(s, "alice", &["--json"]);
    assert_eq!(json_repos(&out).len(), 3);
    assert!(!out.contains("secret/"), "{out}");
    let out = cli_search(s, "bob", &["aws", "--json"]);
    assert_eq!(json_repos(&out), [VPC, VPC, "secret/aws-keys"]);
    let out = cli_search(s, "alice", &["-n", "2"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let cursor = lines[2]
        .strip_prefix("(more: --last ")
        .and_then(|l| l.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{out}"));
    let out = cli_search(s, "alice", &["-n", "2", "--last", cursor, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json_repos(&out), ["provisioning-kcl/netlib"]);
    assert_eq!(v["more"], false);
}

/// `ocireg search` filters by tag, annotation and artifact type; its text output names the
/// repository, digest and tags.
fn cli_search_filters(s: &Serve, vpc1: &str, vpc2: &str) {
    let out = cli_search(s, "alice", &["--tag", "1.1.0"]);
    let v: Value =
        serde_json::from_str(&cli_search(s, "alice", &["--tag", "1.1.0", "--json"])).unwrap();
    let size = v["results"][0]["size"].as_u64().unwrap();
    assert_eq!(
        out.trim(),
        format!(
            "{}/{VPC}@{vpc2} tags=1.1.0 artifactType={EXT} size={size}",
            s.host()
        )
    );
    let out = cli_search(
        s,
        "alice",
        &["-a", "org.opencontainers.image.version=1.0.0", "--json"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    assert_eq!(v["results"][0]["digest"], vpc1);
    assert_eq!(v["results"][0]["tags"], json!(["1.0.0"]));
    assert_eq!(v["results"][0]["annotations"]["team"], "net");
    let out = cli_search(
        s,
        "bob",
        &["-a", "team=net", "--artifact-type", KCL, "--json"],
    );
    assert_eq!(json_repos(&out), ["provisioning-kcl/netlib"]);
    let out = cli_search(
        s,
        "alice",
        &["--artifact-type", "application/none", "--json"],
    );
    assert_eq!(json_repos(&out).len(), 0);
}
