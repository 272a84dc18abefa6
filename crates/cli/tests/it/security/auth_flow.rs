//! Authentication: solo mode (Basic + static token), token expiry, and real clients (skopeo,
//! oras) through the Docker token flow.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::*;

#[test]
fn solo_mode_basic_auth() {
    let config = LocalConfig {
        registry:
            "auth_required: true\nusername: solo\npassword_path: DIR/pw\nauth_token_path: DIR/token",
        ..LocalConfig::default()
    };
    let s = Serve::start(
        &config.render(),
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
fn expired_tokens_are_refused() {
    let s = multi(1);
    let token = token(&s, "alice", "alicepw", "repository:team/app:pull");
    assert_eq!(v2_with_bearer(&s, &token).status(), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(2100));
    let r = v2_with_bearer(&s, &token);
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
    let copy = |creds: &str, dest: &str| {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &src,
            dest,
        ])
    };
    // Wrong password: refused.
    assert!(!copy("alice:wrong", &dest).status.success());
    // alice pushes team/app through the token flow.
    let out = copy("alice:alicepw", &dest);
    assert!(
        out.status.success(),
        "skopeo copy failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    // ... but not prod/app.
    let prod = format!("docker://{}/prod/app:v1", s.addr);
    assert!(!copy("alice:alicepw", &prod).status.success());
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

/// Runs tests/support/oras_auth.py (oras Python SDK) against `s` and returns its JSON report.
fn oras(s: &Serve, work: &str, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oras_auth.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(python)
        .arg(&script)
        .args(["--registry", &s.addr, "--workdir"])
        .arg(s.dir.path().join(work))
        .args(args)
        .env("HOME", s.dir.path())
        .output()
        .expect("python3 with the oras SDK is installed by scripts/install-test-deps.sh");
    assert!(
        out.status.success(),
        "oras script {args:?} failed:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("oras report {line:?}: {e}"))
}

#[test]
fn oras_logs_in_and_pushes_through_the_token_flow() {
    let s = multi(300);
    // alice logs in, pushes team/app:v1 and pulls it back byte for byte (checked by the script).
    let report = oras(
        &s,
        "alice",
        &[
            "--repo",
            "team/app",
            "--user",
            "alice",
            "--password",
            "alicepw",
        ],
    );
    assert_eq!(report["push"], "ok", "{report}");
    assert_eq!(report["pulled"], serde_json::json!(["artifact.bin"]));
    // The registry holds exactly that layer under the tag.
    let r = client()
        .get(format!("{}/v2/team/app/manifests/v1", s.base))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .basic_auth("alice", Some("alicepw"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let manifest: serde_json::Value = r.json().unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    assert_eq!(layer, report["digest"].as_str().unwrap());
    let r = client()
        .get(format!("{}/v2/team/app/blobs/{layer}", s.base))
        .basic_auth("alice", Some("alicepw"))
        .send()
        .unwrap();
    assert_eq!(sha(&r.bytes().unwrap()), layer);
    // The SDK went through the token endpoint; no secret reached the log.
    let log = s.log();
    assert!(log.contains("token issued"), "{log}");
    assert!(!log.contains("alicepw") && !log.contains("eyJ"), "{log}");
    // alice has no write on prod/**: refused, and nothing was tagged there.
    let report = oras(
        &s,
        "alice-prod",
        &[
            "--repo",
            "prod/app",
            "--user",
            "alice",
            "--password",
            "alicepw",
            "--expect-denied",
        ],
    );
    assert_eq!(report["push"], "denied", "{report}");
    let r = client()
        .get(format!("{}/v2/prod/app/manifests/v1", s.base))
        .basic_auth("admin", Some("adminpw"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // bob may write prod/**.
    let report = oras(
        &s,
        "bob-prod",
        &["--repo", "prod/app", "--user", "bob", "--password", "bobpw"],
    );
    assert_eq!(report["push"], "ok", "{report}");
}
