//! Object-store servers for the object-store driver's tests: moto (S3) and Azurite (Azure
//! Blob Storage), each on a free loopback port, in memory, killed and reaped on drop.
//!
//! `scripts/install-test-deps.sh` installs both under `~/.cache/ocireg-test` (or
//! `$OCIREG_TEST_TOOLS`); a missing tool fails the test with that instruction.
//! [`use_test_credentials`] puts the credentials both servers accept into the `AWS_*` /
//! `AZURE_STORAGE_*` environment variables the driver reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::net::{free_port, wait_port, Listening};

/// The access key id given to moto.
pub const AWS_ACCESS_KEY_ID: &str = "ocireg-test-key-id";
/// The secret access key given to moto (moto accepts any); tests check it never shows.
pub const AWS_SECRET_ACCESS_KEY: &str = "ocireg-test-secret-3f9c1d7e";
/// Azurite's account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Where the installed tools live.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("OCIREG_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/ocireg-test")
        }
    }
}

fn tool(relative: &str) -> PathBuf {
    let path = tools_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// Sets the credentials of both test servers in the environment (once per test binary, the
/// same values every time) and clears variables that would point the driver elsewhere.
pub fn use_test_credentials() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (key, _) in std::env::vars() {
            if key.starts_with("AWS_") || key.starts_with("AZURE_") {
                std::env::remove_var(key);
            }
        }
        std::env::set_var("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY);
        std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
        std::env::set_var("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY);
    });
}

/// Starts `command` on a free port (chosen by `args(port)`) and waits until it accepts
/// connections; retried on another port if it exits first.
fn start(
    name: &str,
    program: PathBuf,
    args: impl Fn(u16) -> Vec<String>,
) -> (Listening, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("ocireg-objstore-")
        .tempdir()
        .unwrap();
    let log = dir.path().join(format!("{name}.log"));
    for _ in 0..3 {
        let port = free_port();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(&program)
            .args(args(port))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut listening = Listening {
            base: format!("http://{addr}"),
            addr,
            child: Some(child),
        };
        if wait_port(addr, Duration::from_secs(60)) {
            return (listening, dir);
        }
        listening.kill();
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    panic!("{name} did not start:\n{text}");
}

/// One HTTP/1.1 request without a body; returns the status and the response text.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(String, String)]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// moto's S3 server (`moto_server`).
#[derive(Debug)]
pub struct Moto {
    listening: Listening,
    dir: tempfile::TempDir,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        let program = tool("moto/bin/moto_server");
        let (listening, dir) = start("moto", program, |port| {
            vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ]
        });
        let moto = Moto { listening, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(moto.listening.addr, "GET", "/", &[]).0 != 200 {
            assert!(
                Instant::now() < deadline,
                "moto does not answer: {}",
                moto.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.listening.base.clone()
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let (status, text) = http(self.listening.addr, "PUT", &format!("/{name}"), &[]);
        assert_eq!(status, 200, "create bucket {name}: {text}");
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.listening.kill();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.listening.kill();
    }
}

/// Azurite's Blob Storage emulator (`azurite-blob`), account [`AZURITE_ACCOUNT`].
#[derive(Debug)]
pub struct Azurite {
    listening: Listening,
    dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite (in memory) on a free loopback port and waits until it answers.
    pub fn start() -> Azurite {
        let program = tool("azurite/node_modules/.bin/azurite-blob");
        let (listening, dir) = start("azurite", program, |port| {
            [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
            ]
            .map(str::to_owned)
            .to_vec()
        });
        Azurite { listening, dir }
    }

    /// The account's endpoint URL (`http://127.0.0.1:PORT/devstoreaccount1`).
    pub fn endpoint(&self) -> String {
        format!("{}/{AZURITE_ACCOUNT}", self.listening.base)
    }

    /// Creates a container with a SharedKey-signed REST call.
    pub fn create_container(&self, name: &str) {
        let path = format!("/{AZURITE_ACCOUNT}/{name}?restype=container");
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let headers = [
            ("x-ms-date".to_owned(), date),
            ("x-ms-version".to_owned(), version.to_owned()),
            (
                "Authorization".to_owned(),
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            ),
        ];
        let (status, text) = http(self.listening.addr, "PUT", &path, &headers);
        assert_eq!(
            status,
            201,
            "create container {name}: {text}\n{}",
            self.log_text()
        );
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.listening.kill();
    }
}
