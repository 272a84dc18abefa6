//! Certificates for loopback servers, made with the `openssl` CLI (P-256 keys, valid 2 days).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Runs `openssl ARGS` in `dir`; panics with its stderr on failure.
pub fn openssl(args: &[&str], dir: &Path) {
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

/// The arguments of `openssl req` for a fresh P-256 key written to `key`, a request (or with
/// `-x509`, a certificate) for `subject` written to `out`.
fn p256_request<'a>(key: &'a str, out: &'a str, subject: &'a str) -> Vec<&'a str> {
    vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
        "-subj",
        subject,
    ]
}

/// `openssl req -x509` for a P-256 key: a self-signed certificate `NAME.crt` / `NAME.key`.
fn self_signed_pair(dir: &Path, name: &str, subject: &str, exts: &[&str]) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let mut args = p256_request(&key, &crt, subject);
    args.extend(["-x509", "-days", "2"]);
    for e in exts {
        args.extend(["-addext", e]);
    }
    openssl(&args, dir);
}

/// A CA `ca.crt` and a certificate `NAME.crt` / `NAME.key` it signs for `subject` with the
/// given extension lines (`subjectAltName=...`, `extendedKeyUsage=...`).
pub fn ca_sign(dir: &Path, name: &str, subject: &str, ext: &str) -> (PathBuf, PathBuf) {
    let (key, csr, crt, extf) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    fs::write(dir.join(&extf), ext).unwrap();
    openssl(&p256_request(&key, &csr, subject), dir);
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extf,
        ],
        dir,
    );
    (dir.join(crt), dir.join(key))
}

/// A CA (`ca.crt`, `ca.key`) in `dir`.
pub fn make_ca(dir: &Path) -> PathBuf {
    self_signed_pair(
        dir,
        "ca",
        "/CN=ocireg test CA",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join("ca.crt")
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
pub fn make_ca_signed(dir: &Path) -> TlsFiles {
    let ca = make_ca(dir);
    let (cert, key) = ca_sign(
        dir,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    );
    TlsFiles { cert, key, ca }
}

/// A self-signed server certificate for 127.0.0.1.
pub fn make_self_signed(dir: &Path) -> TlsFiles {
    self_signed_pair(
        dir,
        "self",
        "/CN=127.0.0.1",
        &["subjectAltName=IP:127.0.0.1"],
    );
    TlsFiles {
        cert: dir.join("self.crt"),
        key: dir.join("self.key"),
        ca: dir.join("self.crt"),
    }
}
