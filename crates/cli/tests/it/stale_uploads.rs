//! Upload sessions a client left open (an interrupted push): `ocireg gc` reports the sessions
//! it finds and their bytes, removes those idle longer than the upload expiry
//! (`--uploads-older-than`, else `limits_config.upload_session_ttl`) and leaves fresh ones;
//! `ocireg status` counts them in the storage artifacts do not account for. A session is aged
//! by setting its file's modification time, not by waiting.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ocireg_test_support::Serve;
use reqwest::blocking::Client;

use crate::local_env::{show, text, LocalEnv};

fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

/// Opens an upload session of `team/app` holding `len` bytes; returns its URL and its file.
fn open_session(env: &LocalEnv, len: usize) -> (String, PathBuf) {
    let dir = env.root().join("repositories/team/app/_uploads");
    let before: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let c = client();
    let r = c
        .post(format!("{}/v2/team/app/blobs/uploads/", env.base()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let url = if location.starts_with('/') {
        format!("{}{location}", env.base())
    } else {
        location
    };
    let r = c
        .patch(&url)
        .header("Content-Type", "application/octet-stream")
        .body(vec![7u8; len])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !before.contains(p))
        .expect("the session's file");
    (url, file)
}

fn session_status(url: &str) -> u16 {
    client().get(url).send().unwrap().status().as_u16()
}

#[test]
fn gc_reaps_idle_upload_sessions_and_leaves_fresh_ones() {
    let env = LocalEnv::new(None);
    let srv = Serve::builder()
        .config(env.config())
        .home(env.dir.path())
        .start();
    let (aged_url, aged_file) = open_session(&env, 1000);
    let (fresh_url, _) = open_session(&env, 2000);
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&aged_file)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();

    // status: the sessions are storage no artifact accounts for; one is past the 24 h expiry.
    let st = env.run_code(&["status"], 0);
    assert!(
        text(&st.stdout).contains("gap:       2.9 KiB in 2 open upload sessions (1 idle longer than 1d: 1000 B reclaimable by gc); 0 B unreferenced, reclaimable by gc\n"),
        "{}",
        show(&st)
    );

    // A 0 s threshold in a dry run: both would go, nothing does.
    let dry = env.json(&["gc", "--dry-run", "--uploads-older-than", "0s"], 0);
    assert_eq!(dry["upload_sessions"], 2);
    assert_eq!(dry["upload_session_bytes"], 3000);
    assert_eq!(dry["uploads"].as_array().unwrap().len(), 2);
    assert_eq!(session_status(&aged_url), 204);

    // Through the server: only the session idle longer than an hour goes.
    let report = env.json(&["gc", "--uploads-older-than", "1h"], 0);
    assert_eq!(report["upload_sessions"], 2);
    assert_eq!(report["upload_ttl_secs"], 3600);
    let removed = report["uploads"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{report}");
    assert_eq!(removed[0]["bytes"], 1000);
    assert_eq!(session_status(&aged_url), 404);
    assert_eq!(session_status(&fresh_url), 204);

    // In-process (nothing listens): a 0 s threshold takes the fresh one too.
    drop(srv);
    let gc = env.run_code(&["gc", "--uploads-older-than", "0s"], 0);
    let out = text(&gc.stdout);
    assert!(out.contains("(in-process)"), "{out}");
    assert!(
        out.contains("  upload sessions: 1 found (2.0 KiB); removed 1 idle longer than 0s (2.0 KiB), 0 left open\n"),
        "{out}"
    );
    let bad = env.run_code(&["gc", "--uploads-older-than", "soon"], 2);
    assert!(
        text(&bad.stderr).contains("--uploads-older-than"),
        "{}",
        show(&bad)
    );
}
