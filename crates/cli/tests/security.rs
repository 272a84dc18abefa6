//! Registry security end to end, with the real binary: authentication (solo mode and htpasswd +
//! token service), authorization, the Docker token flow through skopeo, token expiry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::StatusCode;
use sha2::Digest as _;

/// `ocireg serve --config FILE` on a free loopback port, killed on drop.
struct Serve {
    child: Child,
    base: String,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Writes `config` (with `DIR` replaced by a fresh directory holding `files`) and serves it.
    fn start(config: &str, files: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        for (name, text) in files {
            fs::write(dir.path().join(name), text.replace("DIR", &d)).unwrap();
        }
        let cfg = dir.path().join("ocireg.yaml");
        fs::write(&cfg, config.replace("DIR", &d)).unwrap();
        let log = dir.path().join("server.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ocireg"))
            .arg("--config")
            .arg(&cfg)
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(dir.path().join("root"))
            .env("HOME", dir.path())
            .env("OCIREG_LOG", "info,ocireg_server=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "no listening line; log:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let base = line
            .strip_prefix("listening on ")
            .unwrap()
            .trim()
            .to_owned();
        let addr = base.split("://").nth(1).unwrap().to_owned();
        assert!(addr.starts_with("127.0.0.1:"));
        Serve {
            child,
            base,
            addr,
            dir,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

fn htpasswd_line(user: &str, pass: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", "4", user, pass])
        .output()
        .expect("htpasswd (apache2-utils) is installed by scripts/install-test-deps.sh");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned() + "\n"
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn push_blob(
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

fn challenge(r: &reqwest::blocking::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn error_code(r: reqwest::blocking::Response) -> String {
    let v: serde_json::Value = r.json().unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_owned()
}

const MULTI: &str = r#"
registry:
  deployment: local
  type: zot
  endpoint: localhost
  auth_required: true
  username: admin
  password_path: DIR/admin.pw
  namespaces: {}
  local:
    data_dir: DIR
    config_path: DIR/c.yml
    auth_config:
      htpasswd_path: DIR/htpasswd
      token_expiry: TOKEN_EXPIRY
      access:
        - repositories: ["prod/**"]
          read: ["*"]
          write: [bob]
"#;

fn multi(expiry: u32) -> Serve {
    let users = htpasswd_line("alice", "alicepw") + &htpasswd_line("bob", "bobpw");
    Serve::start(
        &MULTI.replace("TOKEN_EXPIRY", &expiry.to_string()),
        &[("admin.pw", "adminpw\n"), ("htpasswd", &users)],
    )
}

#[test]
fn solo_mode_basic_auth() {
    let s = Serve::start(
        r#"
registry:
  deployment: local
  type: zot
  endpoint: localhost
  auth_required: true
  username: solo
  password_path: DIR/pw
  auth_token_path: DIR/token
  namespaces: {}
  local: {data_dir: DIR, config_path: DIR/c.yml}
"#,
        &[("pw", "s3cret\n"), ("token", "static-token-1234\n")],
    );
    let r = push_blob(&s.base, "a/b", b"1", None);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let ch = challenge(&r);
    assert_eq!(
        ch,
        format!("Basic realm=\"{}/v2/\",charset=\"UTF-8\"", s.base)
    );
    assert_eq!(error_code(r), "UNAUTHORIZED");
    let r = push_blob(&s.base, "a/b", b"1", Some(("solo", "wrong")));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).starts_with("Basic "));
    let r = push_blob(&s.base, "a/b", b"1", Some(("other", "s3cret")));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = push_blob(&s.base, "a/b", b"1", Some(("solo", "s3cret")));
    assert_eq!(r.status(), StatusCode::CREATED);
    // The static token works as a bearer token.
    let r = client()
        .get(format!("{}/v2/a/b/blobs/{}", s.base, sha(b"1")))
        .bearer_auth("static-token-1234")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().unwrap(), "1");
    // Secrets stay out of the log.
    let log = s.log();
    assert!(
        !log.contains("s3cret") && !log.contains("static-token-1234"),
        "{log}"
    );
}

#[test]
fn multi_user_refusals_and_token_endpoint() {
    let s = multi(300);
    let r = push_blob(&s.base, "team/app", b"x", None);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&r),
        format!(
            "Bearer realm=\"{}/v2/_ocireg/token\",service=\"ocireg\",scope=\"repository:team/app:pull,push\"",
            s.base
        )
    );
    assert_eq!(error_code(r), "UNAUTHORIZED");
    let r = push_blob(&s.base, "team/app", b"x", Some(("alice", "nope")));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).starts_with("Bearer realm="));
    // alice may not write prod/**: 403 DENIED; bob may.
    let r = push_blob(&s.base, "prod/app", b"x", Some(("alice", "alicepw")));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(r), "DENIED");
    let r = push_blob(&s.base, "prod/app", b"x", Some(("bob", "bobpw")));
    assert_eq!(r.status(), StatusCode::CREATED);
    // A token for alice asking for push on prod/app is narrowed to pull.
    let r = client()
        .get(format!("{}/v2/_ocireg/token", s.base))
        .query(&[
            ("service", "ocireg"),
            ("scope", "repository:prod/app:pull,push"),
        ])
        .basic_auth("alice", Some("alicepw"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/v2/prod/app/blobs/uploads/?digest={}", s.base, sha(b"w"));
    let r = client()
        .post(&url)
        .bearer_auth(&token)
        .body("w")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client()
        .get(format!("{}/v2/prod/app/blobs/{}", s.base, sha(b"x")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Catalog as alice lists what she can read (everything here); deleting needs an admin.
    let del = format!("{}/v2/prod/app/blobs/{}", s.base, sha(b"x"));
    let r = client()
        .delete(&del)
        .basic_auth("bob", Some("bobpw"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client()
        .delete(&del)
        .basic_auth("admin", Some("adminpw"))
        .send()
        .unwrap();
    assert_ne!(r.status(), StatusCode::FORBIDDEN);
    assert_ne!(r.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn expired_tokens_are_refused() {
    let s = multi(1);
    let r = client()
        .get(format!("{}/v2/_ocireg/token", s.base))
        .query(&[("service", "ocireg"), ("scope", "repository:team/app:pull")])
        .basic_auth("alice", Some("alicepw"))
        .send()
        .unwrap();
    let token = r.json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client()
        .get(format!("{}/v2/", s.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(2100));
    let r = client()
        .get(format!("{}/v2/", s.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("error=\"invalid_token\""));
}

/// A one-layer OCI image layout at `dir`, tagged `v1`.
fn oci_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        fs::write(blobs.join(d.strip_prefix("sha256:").unwrap()), data).unwrap();
        (d, data.len())
    };
    let (ld, ll) = put(b"layer bytes for the security test");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (cd, cl) = put(config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ll}]
    })
    .to_string();
    let (md, ml) = put(manifest.as_bytes());
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ml,
                       "annotations": {"org.opencontainers.image.ref.name": "v1"}}]
    });
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
    layout
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed by scripts/install-test-deps.sh")
}

#[test]
fn skopeo_pushes_through_the_token_flow() {
    let s = multi(300);
    let layout = oci_layout(s.dir.path());
    let src = format!("oci:{}:v1", layout.display());
    let dest = format!("docker://{}/team/app:v1", s.addr);
    // Wrong password: refused.
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wrong",
        &src,
        &dest,
    ]);
    assert!(!out.status.success());
    // alice pushes team/app through the token flow.
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alicepw",
        &src,
        &dest,
    ]);
    assert!(
        out.status.success(),
        "skopeo copy failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    // ... but not prod/app.
    let prod = format!("docker://{}/prod/app:v1", s.addr);
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alicepw",
        &src,
        &prod,
    ]);
    assert!(!out.status.success());
    // Anonymous inspect is refused; alice reads it back.
    let out = skopeo(&["inspect", "--tls-verify=false", "--no-creds", &dest]);
    assert!(!out.status.success());
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:alicepw",
        "--raw",
        &dest,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // (skopeo may recompress the layer; the config blob is copied as is.)
    assert_eq!(raw["layers"].as_array().unwrap().len(), 1);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    assert_eq!(raw["config"]["digest"], sha(config));
    // skopeo went through the token endpoint (logged at debug level), and no secret leaked.
    let log = s.log();
    assert!(log.contains("token issued"), "{log}");
    assert!(!log.contains("alicepw") && !log.contains("eyJ"), "{log}");
    let r = client()
        .get(format!("{}/v2/team/app/tags/list", s.base))
        .basic_auth("alice", Some("alicepw"))
        .send()
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["tags"],
        serde_json::json!(["v1"])
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA, a server certificate for 127.0.0.1 named `cn`, and a client certificate.
fn pki(dir: &Path, cn: &str) {
    if !dir.join("ca.pem").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ocireg test CA",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
                "-subj",
                "/CN=client",
            ],
        );
        fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "client.pem",
                "-days",
                "2",
                "-extfile",
                "client.ext",
            ],
        );
    }
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key.new",
            "-out",
            "server.csr",
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem.new",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    fs::rename(dir.join("server.key.new"), dir.join("server.key")).unwrap();
    fs::rename(dir.join("server.pem.new"), dir.join("server.pem")).unwrap();
}

fn served_cn(addr: &str, pki: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} -cert {p}/client.pem -key {p}/client.key </dev/null 2>/dev/null | openssl x509 -noout -subject",
            p = pki.display()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn tls_with_client_certificates_and_reload() {
    let pki_dir = tempfile::tempdir().unwrap();
    let p = pki_dir.path();
    pki(p, "first");
    let s = Serve::start(
        &format!(
            r#"
registry:
  deployment: local
  type: zot
  endpoint: localhost
  tls_enabled: true
  tls_cert_path: {p}/server.pem
  tls_key_path: {p}/server.key
  ca_cert_path: {p}/ca.pem
  namespaces: {{}}
  local: {{data_dir: DIR, config_path: DIR/c.yml}}
"#,
            p = p.display()
        ),
        &[],
    );
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let ca = reqwest::Certificate::from_pem(&fs::read(p.join("ca.pem")).unwrap()).unwrap();
    let mut ident = fs::read(p.join("client.pem")).unwrap();
    ident.extend(fs::read(p.join("client.key")).unwrap());
    let with_cert = Client::builder()
        .add_root_certificate(ca.clone())
        .identity(reqwest::Identity::from_pem(&ident).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = with_cert.get(format!("{}/v2/", s.base)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // No client certificate: the handshake (or first request) fails.
    let without = Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(without.get(format!("{}/v2/", s.base)).send().is_err());
    // Plain HTTP to the TLS port: a clean 400, and the server keeps serving.
    let r = client()
        .get(format!("http://{}/v2/", s.addr))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().unwrap().contains("HTTPS"));
    let r = with_cert.get(format!("{}/v2/", s.base)).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Certificate reload without restart.
    assert!(
        served_cn(&s.addr, p).contains("first"),
        "{}",
        served_cn(&s.addr, p)
    );
    std::thread::sleep(Duration::from_millis(1100));
    pki(p, "second");
    let mut cn = String::new();
    for _ in 0..20 {
        cn = served_cn(&s.addr, p);
        if cn.contains("second") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        cn.contains("second"),
        "served certificate after reload: {cn}\n{}",
        s.log()
    );
}

#[test]
fn slow_loris_is_cut_off_while_others_are_served() {
    use std::io::{Read, Write};
    let s = Serve::start(
        r#"
registry:
  deployment: local
  type: zot
  endpoint: localhost
  namespaces: {}
  local:
    data_dir: DIR
    config_path: DIR/c.yml
    http_config: {read_timeout: 2, write_timeout: 5, idle_timeout: 5}
"#,
        &[],
    );
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
