//! Shared pieces of the security tests: the `ocireg serve --config FILE` process, htpasswd
//! lines, a client, digests and small request helpers.
#![allow(dead_code)]

use std::fs;
use std::time::Duration;

use reqwest::blocking::Client;

use ocireg_test_support::distribution::htpasswd_line as htpasswd_entry;
pub(crate) use ocireg_test_support::sha256_str as sha;

/// `ocireg --config FILE serve --listen 127.0.0.1:0` on a fresh root, killed on drop.
pub(crate) struct Serve {
    pub(crate) proc: ocireg_test_support::Serve,
    pub(crate) base: String,
    pub(crate) addr: String,
    pub(crate) dir: tempfile::TempDir,
}

impl Serve {
    /// Writes `config` (with `DIR` replaced by a fresh directory holding `files`) and serves it.
    pub(crate) fn start(config: &str, files: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        for (name, text) in files {
            fs::write(dir.path().join(name), text.replace("DIR", &d)).unwrap();
        }
        let cfg = dir.path().join("ocireg.yaml");
        fs::write(&cfg, config.replace("DIR", &d)).unwrap();
        let proc = ocireg_test_support::Serve::builder()
            .config(&cfg)
            .listen("127.0.0.1:0")
            .root(dir.path().join("root"))
            .home(dir.path())
            .log(dir.path().join("server.log"))
            .env("OCIREG_LOG", "info,ocireg_server=debug")
            .start();
        let base = proc.base.clone();
        let addr = proc.host();
        Serve {
            proc,
            base,
            addr,
            dir,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Writes a file in the server's directory (`DIR` replaced), e.g. a new config or users file.
    pub(crate) fn write(&self, name: &str, text: &str) {
        let d = self.dir.path().to_str().unwrap();
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!("{name}.tmp"));
        fs::write(&tmp, text.replace("DIR", d)).unwrap();
        fs::rename(tmp, path).unwrap();
    }

    /// How many times `needle` occurs in the log.
    pub(crate) fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Sends SIGHUP and waits until the log shows `needle` once more than before.
    pub(crate) fn sighup_and_wait(&self, needle: &str) {
        let before = self.log_count(needle);
        self.proc.signal("HUP");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.log_count(needle) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in the log after SIGHUP:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An htpasswd line for `user` (with its newline).
pub(crate) fn htpasswd_line(user: &str, pass: &str) -> String {
    htpasswd_entry(user, pass) + "\n"
}

pub(crate) fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub(crate) fn push_blob(
    base: &str,
    repo: &str,
    data: &[u8],
    auth: Option<(&str, &str)>,
) -> reqwest::blocking::Response {
    let url = format!("{base}/v2/{repo}/blobs/uploads/?digest={}", sha(data));
    let mut req = client().post(url).body(data.to_vec());
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    req.send().unwrap()
}

/// A token from the registry's token endpoint for `user` asking for `scope`; asserts a 200.
pub(crate) fn token(s: &Serve, user: &str, pass: &str, scope: &str) -> String {
    let r = client()
        .get(format!("{}/v2/_ocireg/token", s.base))
        .query(&[("service", "ocireg"), ("scope", scope)])
        .basic_auth(user, Some(pass))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "token for {user} ({scope})");
    r.json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `GET /v2/` with `token` as the bearer.
pub(crate) fn v2_with_bearer(s: &Serve, token: &str) -> reqwest::blocking::Response {
    client()
        .get(format!("{}/v2/", s.base))
        .bearer_auth(token)
        .send()
        .unwrap()
}

pub(crate) fn challenge(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

pub(crate) fn error_code(r: reqwest::blocking::Response) -> String {
    let v: serde_json::Value = r.json().unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_owned()
}

/// The config document of a local deployment served from `DIR` (see [`Serve::start`]). Each
/// text field holds YAML lines as they stand inside their section; `render` indents them.
pub(crate) struct LocalConfig<'a> {
    /// `zot` or `distribution`.
    pub(crate) kind: &'a str,
    /// More keys of `registry:`, e.g. [`ADMIN_AUTH`] or TLS paths.
    pub(crate) registry: &'a str,
    /// The value of `registry.namespaces` (a flow value, or block lines).
    pub(crate) namespaces: &'a str,
    /// More keys of `registry.local:` after `data_dir` and `config_path`.
    pub(crate) local: &'a str,
}

impl Default for LocalConfig<'_> {
    fn default() -> Self {
        LocalConfig {
            kind: "zot",
            registry: "",
            namespaces: "{}",
            local: "",
        }
    }
}

/// `registry:` keys that require a login, the admin's password read from `DIR/admin.pw`.
pub(crate) const ADMIN_AUTH: &str =
    "auth_required: true\nusername: admin\npassword_path: DIR/admin.pw";

/// `lines` with every line indented by `by` spaces.
fn indent(lines: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{pad}{l}\n"))
        .collect()
}

impl LocalConfig<'_> {
    pub(crate) fn render(&self) -> String {
        let namespaces = if self.namespaces.contains('\n') {
            format!("\n{}", indent(self.namespaces, 4))
        } else {
            format!(" {}\n", self.namespaces)
        };
        format!(
            "registry:\n  deployment: local\n  type: {}\n  endpoint: localhost\n{}  namespaces:{namespaces}  local:\n    data_dir: DIR\n    config_path: DIR/c.yml\n{}",
            self.kind,
            indent(self.registry, 2),
            indent(self.local, 4),
        )
    }
}

/// The multi-user config: admin login, users from `DIR/htpasswd`, tokens valid `expiry`
/// seconds, everyone reads `prod/**` and `writer` alone writes it.
pub(crate) fn multi_config(expiry: u32, writer: &str) -> String {
    let local = format!(
        r#"auth_config:
  htpasswd_path: DIR/htpasswd
  token_expiry: {expiry}
  access:
    - repositories: ["prod/**"]
      read: ["*"]
      write: [{writer}]"#
    );
    LocalConfig {
        registry: ADMIN_AUTH,
        local: &local,
        ..LocalConfig::default()
    }
    .render()
}

pub(crate) fn multi(expiry: u32) -> Serve {
    let users = htpasswd_line("alice", "alicepw") + &htpasswd_line("bob", "bobpw");
    Serve::start(
        &multi_config(expiry, "bob"),
        &[("admin.pw", "adminpw\n"), ("htpasswd", &users)],
    )
}
