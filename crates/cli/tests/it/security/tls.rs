//! TLS with client certificates, plain HTTP on the TLS port, certificate reload.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ocireg_test_support::tls::{ca_sign, make_ca};
use reqwest::blocking::Client;
use reqwest::StatusCode;

use crate::support::*;

/// A test CA and a client certificate it signs (made once per directory), and a fresh server
/// certificate for 127.0.0.1 named `cn`, moved into place by rename so that a reloading server
/// never reads a half-written file.
fn pki(dir: &Path, cn: &str) {
    if !dir.join("ca.crt").exists() {
        make_ca(dir);
        ca_sign(
            dir,
            "client",
            "/CN=client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
    }
    ca_sign(
        dir,
        "server.new",
        &format!("/CN={cn}"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    fs::rename(dir.join("server.new.key"), dir.join("server.key")).unwrap();
    fs::rename(dir.join("server.new.crt"), dir.join("server.pem")).unwrap();
}

fn served_cn(addr: &str, pki: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} -cert {p}/client.crt -key {p}/client.key </dev/null 2>/dev/null | openssl x509 -noout -subject",
            p = pki.display()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A fresh [`pki`] whose server certificate is named `first`, and a server serving TLS with it;
/// with `client_certs`, clients must present a certificate signed by its CA.
fn serve_tls(client_certs: bool) -> (tempfile::TempDir, Serve) {
    let pki_dir = tempfile::tempdir().unwrap();
    pki(pki_dir.path(), "first");
    let p = pki_dir.path().display();
    let mut registry =
        format!("tls_enabled: true\ntls_cert_path: {p}/server.pem\ntls_key_path: {p}/server.key");
    if client_certs {
        registry += &format!("\nca_cert_path: {p}/ca.crt");
    }
    let config = LocalConfig {
        registry: &registry,
        ..LocalConfig::default()
    };
    let s = Serve::start(&config.render(), &[]);
    (pki_dir, s)
}

#[test]
fn tls_with_client_certificates_and_reload() {
    let (pki_dir, s) = serve_tls(true);
    let p = pki_dir.path();
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let ca = reqwest::Certificate::from_pem(&fs::read(p.join("ca.crt")).unwrap()).unwrap();
    let mut ident = fs::read(p.join("client.crt")).unwrap();
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
fn sighup_forces_a_certificate_reload() {
    let (pki_dir, s) = serve_tls(false);
    let p = pki_dir.path();
    assert!(served_cn(&s.addr, p).contains("first"));
    // New files with the old modification times: the periodic check sees no change...
    let keep = |name: &str| {
        let st = Command::new("cp")
            .arg("-p")
            .arg(p.join(name))
            .arg(p.join(format!("{name}.stamp")))
            .status()
            .unwrap();
        assert!(st.success());
    };
    keep("server.pem");
    keep("server.key");
    pki(p, "second");
    for name in ["server.pem", "server.key"] {
        let st = Command::new("touch")
            .arg("-r")
            .arg(p.join(format!("{name}.stamp")))
            .arg(p.join(name))
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::thread::sleep(Duration::from_millis(1300));
    assert!(served_cn(&s.addr, p).contains("first"));
    // ... SIGHUP loads them anyway (the config itself is unchanged and valid).
    s.sighup_and_wait("config reloaded");
    let cn = served_cn(&s.addr, p);
    assert!(cn.contains("second"), "after SIGHUP: {cn}\n{}", s.log());
}
