//! Pinning the engine of a local registry (issue: artifacts that seemed to vanish when `up`
//! started Distribution over a root the built-in engine wrote): `up` refuses another engine
//! over a root, by its marker or its layout; `--engine builtin` and `binary_path: builtin`
//! serve it; `--force` takes it over; `status` names what really answers, also a registry
//! `up` did not start. Debian's `docker-registry` is on PATH throughout.

use ocireg_test_support::distribution::Distribution;
use ocireg_test_support::{sha256_str, Serve};
use reqwest::blocking::Client;

use crate::local_env::{marker_engine, show, text, LocalEnv};

const REFUSAL: &str = "was written by the built-in engine (marker .ocireg-engine); Distribution would not see its content, so nothing was started. Start the engine that wrote it with `ocireg up --engine builtin`, or take the root over anyway with `ocireg up --force`";

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

/// Pushes `bytes` as a blob of `team/app` (monolithic upload); returns its digest.
fn push_blob(base: &str, bytes: &[u8]) -> String {
    let digest = sha256_str(bytes);
    let r = client()
        .post(format!("{base}/v2/team/app/blobs/uploads/?digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    digest
}

fn blob_status(base: &str, digest: &str) -> u16 {
    client()
        .head(format!("{base}/v2/team/app/blobs/{digest}"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn up_refuses_another_engine_over_a_builtin_root_until_pinned_or_forced() {
    let env = LocalEnv::new(None);
    let up = env.run_code(&["up", "--engine", "builtin"], 0);
    assert!(
        text(&up.stdout).contains("(built-in engine)"),
        "{}",
        show(&up)
    );
    assert_eq!(marker_engine(&env.root()), "builtin");
    let digest = push_blob(&env.base(), b"kept by the built-in engine");
    let st = env.run_code(&["status"], 0);
    let want = format!(
        "answering: the built-in engine (ocireg {})",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text(&st.stdout).contains(&want), "{}", show(&st));
    let again = env.run_code(&["up", "--engine", "distribution"], 0);
    assert!(
        text(&again.stderr).contains("note: --engine distribution not applied: the built-in engine already runs (`ocireg down` first)"),
        "{}",
        show(&again)
    );
    env.run_code(&["down"], 0);

    // docker-registry is on PATH: a plain `up` would start Distribution over the root.
    let refused = env.run_code(&["up"], 9);
    let want = format!("error: storage root {} {REFUSAL}\n", env.root().display());
    assert_eq!(text(&refused.stderr), want);
    assert!(!env.data().join("registry-state.json").exists());
    let st = env.run_code(&["status"], 7);
    assert!(
        text(&st.stdout).contains("note:      `ocireg up` refuses to start Distribution over this storage; `ocireg up --engine builtin` serves it"),
        "{}",
        show(&st)
    );

    // Pinned in the config: the built-in engine serves the content again.
    env.write_config(Some("builtin"));
    env.run_code(&["up"], 0);
    assert_eq!(blob_status(&env.base(), &digest), 200);
    env.run_code(&["down"], 0);

    // Without its marker the root is still known by its layout.
    env.write_config(None);
    std::fs::remove_file(env.root().join(".ocireg-engine")).unwrap();
    let refused = env.run_code(&["up"], 9);
    assert!(
        text(&refused.stderr).contains("was written by the built-in engine (its storage layout)"),
        "{}",
        show(&refused)
    );

    // --force takes the root over: Distribution serves (and sees nothing of the content), the
    // marker names it, and now the built-in engine is the one refused.
    let forced = env.run_code(&["up", "--force"], 0);
    assert!(
        text(&forced.stderr).contains("warning: --force"),
        "{}",
        show(&forced)
    );
    assert_eq!(marker_engine(&env.root()), "distribution");
    assert_eq!(blob_status(&env.base(), &digest), 404);
    let st = env.run_code(&["status"], 0);
    assert!(
        text(&st.stdout).contains(
            "answering: Distribution (/usr/bin/docker-registry github.com/docker/distribution 2.8"
        ),
        "{}",
        show(&st)
    );
    env.run_code(&["down"], 0);
    let refused = env.run_code(&["up", "--engine", "builtin"], 9);
    assert!(
        text(&refused.stderr).contains("was written by Distribution (marker .ocireg-engine); the built-in engine would not see its content"),
        "{}",
        show(&refused)
    );
}

#[test]
fn serve_marks_its_root_and_status_reports_registries_up_did_not_start() {
    // A Distribution started by hand on the configured port.
    let dist = Distribution::start();
    let env = LocalEnv::on_port(dist.port(), None);
    let st = env.run_code(&["status"], 0);
    let out = text(&st.stdout);
    assert!(
        out.contains("state:     answering; not started by ocireg up\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "answering: Distribution (/usr/bin/docker-registry github.com/docker/distribution 2.8"
        ),
        "{out}"
    );
    let v = env.json(&["status"], 0);
    assert_eq!(v["status"]["state"], "answering-not-started-by-up");
    assert_eq!(v["status"]["answering"]["engine"], "distribution");
    drop(dist);

    // `ocireg serve` by hand: it records itself in the root; status names it, with its usage.
    let env = LocalEnv::new(None);
    let srv = Serve::builder()
        .config(env.config())
        .home(env.dir.path())
        .start();
    assert_eq!(marker_engine(&env.root()), "builtin");
    let st = env.run_code(&["status"], 0);
    let out = text(&st.stdout);
    let want = format!(
        "answering: the built-in engine (ocireg {})",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        out.contains("state:     answering; not started by ocireg up\n"),
        "{out}"
    );
    assert!(out.contains(&want), "{out}");
    assert!(out.contains("usage:     "), "{out}");
    // `down` leaves a registry it did not start alone.
    env.run_code(&["down"], 0);
    assert_eq!(blob_status(&srv.base, &sha256_str(b"none")), 404);
}
