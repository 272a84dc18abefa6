//! Test harness: registries to talk to (the real `ocireg serve` binary, Debian's CNCF
//! Distribution 2.8.2 with htpasswd, TLS or token auth), certificates made with the `openssl`
//! CLI, blob files, and (submodules) a fault-injecting proxy, a CONNECT proxy and a token server.
//! Every server listens on 127.0.0.1 and is killed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fault;
pub mod roundtrip;
pub mod token;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ocireg_client::{ClientOptions, Credentials, Registry};
use ocireg_oci::{Algorithm, Digest, DigestHasher, RepoName};

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Options for tests: short timeouts and fast retries.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(20),
        retries: 3,
        retry_delay: Duration::from_millis(50),
        retry_backoff: 2.0,
        ..ClientOptions::default()
    }
}

/// A repository name.
pub fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill_pseudo_random(&mut out, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    out
}

fn fill_pseudo_random(buf: &mut [u8], mut state: u64) -> u64 {
    for chunk in buf.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    state
}

/// Writes `size` pseudo-random bytes to `dir/name` in 1 MiB pieces; returns path and digest.
pub fn write_blob_file(dir: &Path, name: &str, size: u64, seed: u64) -> (PathBuf, Digest) {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        state = fill_pseudo_random(&mut buf[..n], state);
        hasher.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    (path, hasher.finish())
}

/// SHA-256 digest of bytes.
pub fn sha256(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha256, data)
}

/// A process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A registry under test.
pub struct TestRegistry {
    /// Base URL, `http(s)://127.0.0.1:PORT`.
    pub url: String,
    /// The address.
    pub addr: SocketAddr,
    /// Working directory (config, storage, log); removed on drop.
    pub work: tempfile::TempDir,
    proc: Proc,
}

impl TestRegistry {
    /// A client for this registry.
    pub fn client(&self, creds: Credentials, opts: ClientOptions) -> Registry {
        Registry::new(&self.url, creds, opts).unwrap()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        for f in ["server.log", "server.err"] {
            s.push_str(&fs::read_to_string(self.work.path().join(f)).unwrap_or_default());
        }
        s
    }
}

/// The `ocireg` binary: `$OCIREG_BIN`, else `<workspace>/target/debug/ocireg`.
pub fn ocireg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OCIREG_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target")
                .to_path_buf()
        });
    let bin = target.join("debug/ocireg");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p ocireg`",
        bin.display()
    );
    bin
}

/// Starts `ocireg serve --listen 127.0.0.1:0 --root <tmp>` and waits for its listening line.
pub fn start_ocireg() -> TestRegistry {
    let work = tempfile::Builder::new()
        .prefix("client-ocireg-")
        .tempdir()
        .unwrap();
    let home = work.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(ocireg_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(work.path().join("root"))
        .env("HOME", &home)
        .env_remove("OCIREG_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(work.path().join("server.err")).unwrap())
        .spawn()
        .expect("spawn ocireg serve");
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(u) = line.trim().strip_prefix("listening on ") {
                    break u.trim().to_owned();
                }
            }
            Err(_) => panic!(
                "ocireg serve printed no listening line: {}",
                fs::read_to_string(work.path().join("server.err")).unwrap_or_default()
            ),
        }
    };
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    TestRegistry {
        url,
        addr,
        work,
        proc,
    }
}

/// TLS files for a server.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server key (PEM).
    pub key: PathBuf,
    /// The CA that signed it (PEM), or the certificate itself when self-signed.
    pub ca: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1/localhost signed by it.
pub fn make_ca_signed(dir: &Path) -> TlsFiles {
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
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
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ocireg test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        dir,
    );
    TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        ca: dir.join("ca.crt"),
    }
}

/// A self-signed server certificate for 127.0.0.1.
pub fn make_self_signed(dir: &Path) -> TlsFiles {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "self.key",
            "-out",
            "self.crt",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        dir,
    );
    TlsFiles {
        cert: dir.join("self.crt"),
        key: dir.join("self.key"),
        ca: dir.join("self.crt"),
    }
}

/// Token authentication settings for Distribution.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    /// Token endpoint.
    pub realm: String,
    /// `service` (the token's audience).
    pub service: String,
    /// `iss` of the tokens.
    pub issuer: String,
    /// PEM certificate whose key signs the tokens.
    pub root_cert: PathBuf,
}

/// How to configure Distribution.
#[derive(Clone, Debug, Default)]
pub struct DistOptions {
    /// htpasswd users (bcrypt, made with `htpasswd -Bbn`).
    pub htpasswd: Vec<(String, String)>,
    /// Serve TLS.
    pub tls: Option<TlsFiles>,
    /// Token auth.
    pub token: Option<TokenAuth>,
}

fn dist_config(root: &Path, port: u16, o: &DistOptions, work: &Path) -> String {
    let mut cfg = format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
        root.display()
    );
    if let Some(t) = &o.tls {
        cfg.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            t.cert.display(),
            t.key.display()
        ));
    }
    if !o.htpasswd.is_empty() {
        let mut file = String::new();
        for (u, p) in &o.htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success());
            file.push_str(String::from_utf8_lossy(&out.stdout).trim());
            file.push('\n');
        }
        let path = work.join("htpasswd");
        fs::write(&path, file).unwrap();
        cfg.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
            path.display()
        ));
    } else if let Some(t) = &o.token {
        cfg.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            t.realm,
            t.service,
            t.issuer,
            t.root_cert.display()
        ));
    }
    cfg
}

/// Starts Debian's CNCF Distribution 2.8.2 with a fresh filesystem root.
pub fn start_distribution(o: &DistOptions) -> TestRegistry {
    for _attempt in 0..5 {
        let work = tempfile::Builder::new()
            .prefix("client-distribution-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let cfg = work.path().join("config.yml");
        fs::write(
            &cfg,
            dist_config(&work.path().join("root"), port, o, work.path()),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(fs::File::create(work.path().join("server.log")).unwrap())
            .stderr(fs::File::create(work.path().join("server.err")).unwrap())
            .spawn()
            .expect("spawn /usr/bin/docker-registry");
        let mut proc = Proc(child);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let scheme = if o.tls.is_some() { "https" } else { "http" };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if proc.0.try_wait().unwrap().is_some() {
                break; // lost the port race: try another port
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return TestRegistry {
                    url: format!("{scheme}://{addr}"),
                    addr,
                    work,
                    proc,
                };
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("docker-registry failed to start 5 times");
}

/// An OCI image manifest over the given config and layer blobs.
pub fn image_manifest(config: (&Digest, u64), layers: &[(&Digest, u64)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": ocireg_oci::media_types::OCI_MANIFEST,
        "config": {"mediaType": ocireg_oci::media_types::OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": ocireg_oci::media_types::OCI_LAYER_TAR_GZIP, "digest": d, "size": s
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}
