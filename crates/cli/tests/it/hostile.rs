//! Hostile-input corpus: every case under `tests/it/hostile/*.cases` is sent byte for byte over a
//! raw TcpStream to the real `ocireg serve`, once with auth off and once with auth on (htpasswd
//! users + token service). Each case must get a 4xx answer — never a 5xx, a dropped connection or
//! a timeout — carrying the spec's error envelope when it reached the registry, or a 4xx and a
//! clean close when hyper refused it at the HTTP level; after every case the server must still
//! answer `GET /v2/`. The corpus format is described in `tests/it/hostile/README.md`.

mod corpus;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;
use base64::Engine as _;
use corpus::{Case, Kind};

/// Short timeouts, so that a case that stalls the server shows as a timeout, not a hang.
const HTTP_CONFIG: &str = "http_config: {read_timeout: 5, write_timeout: 5, idle_timeout: 5}";

/// The corpus server's config: with `auth`, an admin login and `reader` who may only read.
fn corpus_config(auth: bool) -> String {
    if !auth {
        return LocalConfig {
            local: HTTP_CONFIG,
            ..LocalConfig::default()
        }
        .render();
    }
    let local = format!(
        r#"{HTTP_CONFIG}
auth_config:
  htpasswd_path: DIR/htpasswd
  max_failed_logins: 0
  access:
    - repositories: ["hostile/**"]
      read: ["*"]
      write: [admin]"#
    );
    LocalConfig {
        registry: ADMIN_AUTH,
        local: &local,
        ..LocalConfig::default()
    }
    .render()
}

/// What the placeholders of the corpus expand to on one server.
pub(crate) struct Fixture {
    pub(crate) addr: SocketAddr,
    /// `Authorization: Basic ...` of the admin (auth on), or `None`.
    pub(crate) auth: Option<String>,
    pub(crate) blob: String,
    pub(crate) blob_len: usize,
    pub(crate) manifest: String,
}

fn basic(user: &str, pass: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Authorization: Basic {token}")
}

impl Fixture {
    /// Pushes the blob and image the corpus refers to.
    fn new(s: &Serve, auth: bool) -> Fixture {
        let creds = auth.then_some(("admin", "adminpw"));
        let layer = b"hostile corpus layer".to_vec();
        let config = b"{}".to_vec();
        for data in [&layer, &config] {
            let r = push_blob(&s.base, "hostile/a", data, creds);
            assert_eq!(r.status(), 201, "fixture blob: {}", s.log());
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(&config), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&layer), "size": layer.len()}]
        })
        .to_string();
        let mut req = client()
            .put(format!("{}/v2/hostile/a/manifests/v1", s.base))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone());
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        assert_eq!(req.send().unwrap().status(), 201, "fixture manifest");
        Fixture {
            addr: s.addr.parse().unwrap(),
            auth: auth.then(|| basic("admin", "adminpw")),
            blob: sha(&layer),
            blob_len: layer.len(),
            manifest: sha(manifest.as_bytes()),
        }
    }

    /// A fresh upload session's path, with `prefill` bytes already uploaded.
    pub(crate) fn session(&self, prefill: usize) -> String {
        let c = client();
        let base = format!("http://{}", self.addr);
        let auth = |r: reqwest::blocking::RequestBuilder| match &self.auth {
            Some(_) => r.basic_auth("admin", Some("adminpw")),
            None => r,
        };
        let r = auth(c.post(format!("{base}/v2/hostile/a/blobs/uploads/")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        let mut loc = r.headers()["location"].to_str().unwrap().to_owned();
        if prefill > 0 {
            let r = auth(c.patch(format!("{base}{loc}")))
                .header("content-range", format!("0-{}", prefill - 1))
                .header("content-type", "application/octet-stream")
                .body(vec![b'x'; prefill])
                .send()
                .unwrap();
            assert_eq!(r.status(), 202);
            loc = r.headers()["location"].to_str().unwrap().to_owned();
        }
        loc
    }

    /// `GET /v2/` still answers 200.
    fn alive(&self) -> Result<(), String> {
        let mut head = "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_string();
        if let Some(a) = &self.auth {
            head.push_str(a);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let reply = wire::exchange(self.addr, head.as_bytes(), false, false)?;
        match reply.status {
            200 => Ok(()),
            other => Err(format!("GET /v2/ afterwards answered {other}")),
        }
    }
}

/// Runs one case; `Err` describes what was wrong.
fn run_case(case: &Case, fx: &Fixture) -> Result<(), String> {
    let bytes = case.render(fx);
    let must_close = case.close || case.kind == Kind::Http;
    let reply = wire::exchange(fx.addr, &bytes, case.half_close, must_close)
        .map_err(|e| format!("no HTTP answer: {e}"))?;
    if must_close && !reply.closed {
        return Err(format!(
            "answered {} without closing the connection",
            reply.status
        ));
    }
    if case.accept == Some(reply.status) {
        return Ok(());
    }
    if !(400..500).contains(&reply.status) {
        return Err(format!(
            "expected a 4xx, got {} ({})",
            reply.status,
            reply.body_text()
        ));
    }
    if !case.statuses.is_empty() && !case.statuses.contains(&reply.status) {
        return Err(format!(
            "expected status in {:?}, got {} ({})",
            case.statuses,
            reply.status,
            reply.body_text()
        ));
    }
    match case.kind {
        Kind::Http => {}
        Kind::Registry => {
            if !case.is_head() {
                let codes = wire::envelope_codes(&reply.body)
                    .map_err(|e| format!("status {} but {e}", reply.status))?;
                if !case.codes.is_empty() && !codes.iter().any(|c| case.codes.contains(c)) {
                    return Err(format!(
                        "status {} with codes {codes:?}, expected one of {:?}",
                        reply.status, case.codes
                    ));
                }
            }
        }
    }
    Ok(())
}

fn run_corpus(auth: bool) {
    let users = htpasswd_line("reader", "readerpw");
    let s = Serve::start(
        &corpus_config(auth),
        &[("admin.pw", "adminpw\n"), ("htpasswd", &users)],
    );
    let fx = Fixture::new(&s, auth);
    let cases = corpus::load();
    let mut ran = 0;
    let mut refusals = 0;
    let mut failures = Vec::new();
    for case in cases.iter().filter(|c| c.applies(auth)) {
        ran += 1;
        refusals += usize::from(case.accept.is_none());
        let started = std::time::Instant::now();
        if let Err(e) = run_case(case, &fx) {
            failures.push(format!("{} [{}]: {e}", case.name, case.file));
        }
        if let Err(e) = fx.alive() {
            failures.push(format!(
                "{} [{}]: server not answering: {e}",
                case.name, case.file
            ));
        }
        if started.elapsed() > Duration::from_secs(8) {
            failures.push(format!(
                "{} [{}]: took {:?}",
                case.name,
                case.file,
                started.elapsed()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} hostile cases failed (auth {}):\n{}\nserver log tail:\n{}",
        failures.len(),
        if auth { "on" } else { "off" },
        failures.join("\n"),
        tail(&s.log(), 3000)
    );
    assert!(
        s.log().matches("internal error").count() == 0,
        "internal errors logged:\n{}",
        tail(&s.log(), 3000)
    );
    eprintln!("{ran} hostile cases passed (auth {auth}), {refusals} of them refusals");
    assert!(refusals >= 80, "only {refusals} cases expect a refusal");
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[test]
fn corpus_with_auth_off() {
    run_corpus(false);
}

#[test]
fn corpus_with_auth_on() {
    run_corpus(true);
}
