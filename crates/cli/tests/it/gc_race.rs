//! Online garbage collection against the real binary.
//!
//! - The race: `ocireg serve` with `gc_interval = 1` and a 2 s grace period; for
//!   `OCIREG_GC_RACE_SECS` (default 60) three threads push artifacts (raw HTTP: a unique config,
//!   one of 24 shared layers, re-pushed or checked with `HEAD` and skipped, a unique layer) and
//!   another deletes them (by tag or
//!   by digest, `gc_delete_untagged = true`). Every push must succeed; afterwards every
//!   still-tagged artifact pulls back byte-exact, and once the grace period and a GC cycle
//!   passed, the storage holds exactly the blobs the tagged artifacts use.
//! - `ocireg gc`: through the running server (dry run, then real), and in-process when no
//!   server runs.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ocireg_test_support::{free_port, sha256_str as sha256, Serve};
use rand::{Rng, RngCore};
use reqwest::blocking::Client;
use serde_json::json;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const GRACE_SECS: u64 = 2;

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

pub(crate) fn client() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A config for a local built-in registry on `port` with storage at `root`.
fn write_config(work: &Path, root: &Path, port: u16, gc_interval: u64) -> PathBuf {
    write_config_as(work, "ocireg.yaml", root, port, gc_interval, "")
}

/// [`write_config`] under another file name, with extra `registry` lines (indented two spaces).
fn write_config_as(
    work: &Path,
    name: &str,
    root: &Path,
    port: u16,
    gc_interval: u64,
    extra: &str,
) -> PathBuf {
    let cfg = work.join(name);
    fs::write(
        &cfg,
        format!(
            "registry:\n{extra}  deployment: local\n  type: distribution\n  endpoint: 127.0.0.1\n  port: {port}\n  namespaces: {{}}\n  local:\n    data_dir: {data}\n    config_path: {native}\n    http_config: {{listen_address: 127.0.0.1, listen_port: {port}}}\n    storage_config: {{rootdirectory: {root}, gc_enabled: true, gc_interval: {gc_interval}, dedupe_enabled: true}}\n    ops_config: {{gc_grace_period: {GRACE_SECS}, gc_delete_untagged: true}}\n",
            data = work.join("data").display(),
            native = work.join("native.yml").display(),
            root = root.display(),
        ),
    )
    .unwrap();
    cfg
}

/// `ocireg --config CFG serve` with its home and log in `work`.
fn serve(cfg: &Path, work: &Path) -> Serve {
    let s = Serve::builder()
        .config(cfg)
        .home(work.join("home"))
        .log(work.join("server.log"))
        .env("OCIREG_LOG", "info")
        .start();
    assert!(s.base.starts_with("http://127.0.0.1:"), "{}", s.base);
    s
}

/// `base` (`http://HOST:PORT`) joined with `path`.
pub(crate) fn url(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

pub(crate) fn push_blob(base: &str, c: &Client, repo: &str, data: &[u8]) -> Result<String, String> {
    let digest = sha256(data);
    let r = c
        .post(url(base, &format!("/v2/{repo}/blobs/uploads/")))
        .header("Content-Length", "0")
        .send()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 202 {
        return Err(format!("POST upload: {}", r.status()));
    }
    let loc = r.headers()["Location"].to_str().unwrap().to_owned();
    let mut url = reqwest::Url::parse(base).unwrap().join(&loc).unwrap();
    url.query_pairs_mut().append_pair("digest", &digest);
    let r = c
        .put(url)
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 201 {
        return Err(format!("PUT blob {digest}: {}", r.status()));
    }
    Ok(digest)
}

/// One pushed artifact.
#[derive(Clone, Debug)]
pub(crate) struct Artifact {
    pub(crate) repo: String,
    tag: String,
    manifest: Vec<u8>,
    digest: String,
    pub(crate) blobs: Vec<Vec<u8>>,
}

pub(crate) fn push_artifact(
    base: &str,
    c: &Client,
    i: usize,
    shared: &[Vec<u8>],
) -> Result<Artifact, String> {
    let repo = format!("race/r{}", i % 3);
    let config = format!(
        r#"{{"artifact":{i},"nonce":"{}"}}"#,
        hex::encode(random_bytes(8))
    )
    .into_bytes();
    // The pausing pusher (i % 3 == 0) cycles three shared layers: each comes back about every
    // 2.5 s, when its link is often older than the grace period and referenced by nothing.
    let pauses = i % 3 == 0;
    let shared_layer = if pauses {
        shared[(i / 3) % 3].clone()
    } else {
        shared[3 + i % (shared.len() - 3)].clone()
    };
    let unique = random_bytes(rand::thread_rng().gen_range(1_000..40_000));
    // Like real clients, every other push checks the shared layer first and skips it if the
    // repository has it; the others upload it again.
    let have = i % 2 == 0
        && c.head(url(
            base,
            &format!("/v2/{repo}/blobs/{}", sha256(&shared_layer)),
        ))
        .send()
        .map_err(|e| e.to_string())?
        .status()
        .as_u16()
            == 200;
    push_blob(base, c, &repo, &config)?;
    if !have {
        push_blob(base, c, &repo, &shared_layer)?;
    }
    push_blob(base, c, &repo, &unique)?;
    // A client pushing large layers finishes the first ones well before the manifest: GC runs
    // in between, and must keep what was just pushed or checked (the pause < grace period).
    if pauses {
        std::thread::sleep(Duration::from_millis(
            rand::thread_rng().gen_range(200..1500),
        ));
    }
    let desc = |mt: &str, d: &[u8]| json!({"mediaType": mt, "digest": sha256(d), "size": d.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [
            desc("application/vnd.oci.image.layer.v1.tar", &shared_layer),
            desc("application/vnd.oci.image.layer.v1.tar", &unique),
        ],
    }))
    .unwrap();
    let tag = format!("t{i}");
    let r = c
        .put(url(base, &format!("/v2/{repo}/manifests/{tag}")))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 201 {
        let status = r.status();
        return Err(format!(
            "PUT manifest {repo}:{tag}: {status} {}",
            r.text().unwrap_or_default()
        ));
    }
    Ok(Artifact {
        repo,
        tag,
        digest: sha256(&manifest),
        manifest,
        blobs: vec![config, shared_layer, unique],
    })
}

/// Digests of the files under `root/blobs`.
fn stored_digests(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = root.join("blobs/sha256");
    let Ok(fans) = fs::read_dir(&dir) else {
        return out;
    };
    for fan in fans.flatten() {
        for f in fs::read_dir(fan.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                out.insert(format!("sha256:{name}"));
            }
        }
    }
    out
}

/// Artifacts shared between the threads of the race.
pub(crate) type Shared = Arc<Mutex<Vec<Artifact>>>;

#[test]
fn gc_never_races_pushes_and_collects_everything_unreferenced() {
    let secs: u64 = std::env::var("OCIREG_GC_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("storage");
    let cfg = write_config(work.path(), &root, free_port(), 1);
    let srv = serve(&cfg, work.path());
    let tagged: Shared = Arc::default();
    let removed: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(secs);

    let bases = [srv.base.clone()];
    let pushers = spawn_pushers(&bases, &tagged, &stop, until);
    let deleter = spawn_deleter(&bases, &tagged, &removed, until);
    let deletes = deleter.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let pushes: usize = pushers.into_iter().map(|p| p.join().unwrap()).sum();
    let tagged = tagged.lock().unwrap().clone();
    let removed = removed.lock().unwrap().clone();
    assert!(
        pushes > 10 && deletes > 2,
        "too little traffic: {pushes} pushes, {deletes} deletes"
    );

    assert_tagged_pull_back(&srv.base, &tagged);
    let stored = wait_until_only_live_blobs_are_stored(&root, &tagged);
    // The removed artifacts' unique blobs answer 404.
    let c = client();
    for a in removed.iter().take(20) {
        let unique = sha256(&a.blobs[2]);
        let r = c
            .get(url(&srv.base, &format!("/v2/{}/blobs/{unique}", a.repo)))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{}:{} {unique}", a.repo, a.tag);
    }
    let runs = assert_gc_ran_and_removed_blobs(&srv, secs);
    eprintln!(
        "{pushes} pushes, {deletes} deletes, {runs} GC runs, {} tagged, {} blobs stored",
        tagged.len(),
        stored.len()
    );
}

/// Three threads push artifacts (over 24 shared layers) into `tagged` until `until` or `stop`;
/// each returns how many it pushed. Every push must succeed.
pub(crate) fn spawn_pushers(
    bases: &[String],
    tagged: &Shared,
    stop: &Arc<AtomicBool>,
    until: Instant,
) -> Vec<std::thread::JoinHandle<usize>> {
    let shared: Vec<Vec<u8>> = (0..24).map(|_| random_bytes(30_000)).collect();
    (0..3)
        .map(|p| {
            let base = bases[p % bases.len()].clone();
            let (tagged, stop) = (Arc::clone(tagged), Arc::clone(stop));
            let shared = shared.clone();
            std::thread::spawn(move || {
                let c = client();
                let mut n = 0;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    let i = p + 3 * n;
                    let a = push_artifact(&base, &c, i, &shared)
                        .unwrap_or_else(|e| panic!("push {i} failed during GC: {e}"));
                    tagged.lock().unwrap().push(a);
                    n += 1;
                }
                n
            })
        })
        .collect()
}

/// A thread that moves artifacts from `tagged` to `removed` until `until`, deleting each by tag
/// or by digest; returns how many it deleted.
pub(crate) fn spawn_deleter(
    bases: &[String],
    tagged: &Shared,
    removed: &Shared,
    until: Instant,
) -> std::thread::JoinHandle<usize> {
    let bases = bases.to_vec();
    let (tagged, removed) = (Arc::clone(tagged), Arc::clone(removed));
    std::thread::spawn(move || {
        let c = client();
        let mut n = 0;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
            let victim = {
                // Keep few artifacts tagged, so shared layers often lose every reference
                // in a repository and are then pushed (or checked) again.
                // The pausing pusher's artifacts go at once (most of the time).
                let mut t = tagged.lock().unwrap();
                let paused = t.iter().position(|a| a.repo == "race/r0");
                let at = match paused {
                    Some(at) if rand::thread_rng().gen_bool(0.8) => at,
                    _ if t.len() < 6 => continue,
                    _ => rand::thread_rng().gen_range(0..t.len()),
                };
                t.swap_remove(at)
            };
            // Untag (the manifest becomes untagged garbage, young ones still count) or
            // delete by digest; the pausing pusher's artifacts always by digest, so their
            // shared layers lose every reference between pushes.
            let by_tag = n % 2 == 0 && victim.repo != "race/r0";
            let reference = if by_tag { &victim.tag } else { &victim.digest };
            let r = c
                .delete(url(
                    &bases[n % bases.len()],
                    &format!("/v2/{}/manifests/{reference}", victim.repo),
                ))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 202, "DELETE {reference}");
            removed.lock().unwrap().push(victim);
            n += 1;
        }
        n
    })
}

/// Every still-tagged artifact pulls back byte-exact.
pub(crate) fn assert_tagged_pull_back(base: &str, tagged: &[Artifact]) {
    let c = client();
    for a in tagged {
        let r = c
            .get(url(base, &format!("/v2/{}/manifests/{}", a.repo, a.tag)))
            .header("Accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}:{}", a.repo, a.tag);
        assert_eq!(r.bytes().unwrap().as_ref(), a.manifest.as_slice());
        for b in &a.blobs {
            let d = sha256(b);
            let r = c
                .get(url(base, &format!("/v2/{}/blobs/{d}", a.repo)))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{}:{} blob {d}", a.repo, a.tag);
            let got = r.bytes().unwrap();
            assert_eq!(sha256(&got), d);
            assert_eq!(got.as_ref(), b.as_slice());
        }
    }
}

/// After the grace period and a GC cycle, storage holds exactly what tagged artifacts use;
/// returns the stored digests.
fn wait_until_only_live_blobs_are_stored(root: &Path, tagged: &[Artifact]) -> BTreeSet<String> {
    let mut live: BTreeSet<String> = BTreeSet::new();
    for a in tagged {
        live.insert(a.digest.clone());
        live.extend(a.blobs.iter().map(|b| sha256(b)));
    }
    let deadline = Instant::now() + Duration::from_secs(GRACE_SECS + 15);
    let mut stored = stored_digests(root);
    while stored != live && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        stored = stored_digests(root);
    }
    let missing: Vec<_> = live.difference(&stored).collect();
    let extra: Vec<_> = stored.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "live blobs missing from storage: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "unreferenced blobs still stored: {} e.g. {:?}",
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
    stored
}

/// The log shows a GC run about every other second of the `secs` race, and that GC removed
/// blobs; returns the number of runs.
fn assert_gc_ran_and_removed_blobs(srv: &Serve, secs: u64) -> usize {
    let log = srv.log_text();
    let runs = log.matches("garbage collection finished").count();
    let total = |key: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("garbage collection finished"))
            .filter_map(|l| l.split(key).nth(1)?.split(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    eprintln!(
        "GC removed {} links and {} blobs in total, kept {} young",
        total(" links="),
        total(" blobs="),
        total(" kept_young=")
    );
    assert!(runs as u64 >= secs / 2, "only {runs} GC runs in {secs} s");
    assert!(
        total(" blobs=") > 0,
        "GC removed nothing while artifacts were deleted"
    );
    runs
}

/// A temp work directory with `home/` made, and where the storage root goes (`storage/`).
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let root = work.path().join("storage");
    (work, home, root)
}

fn ocireg_gc(cfg: &Path, home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ocireg"))
        .arg("--config")
        .arg(cfg)
        .arg("gc")
        .args(args)
        .env("HOME", home)
        .env_remove("OCIREG_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn gc_command_asks_the_running_server_else_runs_in_process() {
    let (work, home, root) = workspace();
    // A long interval: only the command collects.
    let cfg = write_config(work.path(), &root, free_port(), 86_400);
    let srv = serve(&cfg, work.path());
    let c = client();
    let orphan = random_bytes(5000);
    let d = push_blob(&srv.base, &c, "cmd/app", &orphan).unwrap();
    // Within the grace period: nothing to do.
    let (code, out, err) = ocireg_gc(&cfg, &home, &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["blobs"].as_array().unwrap().len(), 0, "{report}");
    std::thread::sleep(Duration::from_secs(GRACE_SECS + 1));
    let (code, out, err) = ocireg_gc(&cfg, &home, &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("dry run") && out.contains("running registry"),
        "{out}"
    );
    assert!(out.contains("would remove 1 blobs"), "{out}");
    assert_eq!(stored_digests(&root), [d.clone()].into_iter().collect());
    let (code, out, err) = ocireg_gc(&cfg, &home, &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["blobs"][0]["digest"], d.as_str(), "{report}");
    assert_eq!(report["bytes_freed"], 5000);
    assert!(stored_digests(&root).is_empty());
    let r = c
        .head(srv.url(&format!("/v2/cmd/app/blobs/{d}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // Push another orphan, stop the server, let it age, collect in-process.
    let d2 = push_blob(&srv.base, &c, "cmd/app", &random_bytes(700)).unwrap();
    drop(srv);
    std::thread::sleep(Duration::from_secs(GRACE_SECS + 1));
    let (code, out, err) = ocireg_gc(&cfg, &home, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("in-process") && out.contains("removed 1 blobs"),
        "{out}"
    );
    assert!(!stored_digests(&root).contains(&d2));
}

#[test]
fn gc_command_sends_the_configured_admin_credentials() {
    let (work, home, root) = workspace();
    let secret = work.path().join("password");
    fs::write(&secret, "s3cret-pw\n").unwrap();
    let port = free_port();
    let auth = format!(
        "  auth_required: true\n  username: admin\n  password_path: {}\n",
        secret.display()
    );
    let cfg = write_config_as(work.path(), "admin.yaml", &root, port, 86_400, &auth);
    let srv = serve(&cfg, work.path());
    // The endpoint itself refuses anonymous callers.
    let r = client().post(srv.url("/v2/_ocireg/gc")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // With the config's user and password file: the server runs it.
    let (code, out, err) = ocireg_gc(&cfg, &home, &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["dry_run"], true);
    // Without credentials the command reports the refusal instead of touching the storage.
    let anon = write_config_as(work.path(), "anon.yaml", &root, port, 86_400, "");
    let (code, out, err) = ocireg_gc(&anon, &home, &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("401") && err.contains("administrator"),
        "{err}"
    );
    drop(srv);
}

#[test]
fn a_second_process_on_a_served_root_is_refused() {
    let (work, home, root) = workspace();
    let cfg = write_config(work.path(), &root, free_port(), 86_400);
    let srv = serve(&cfg, work.path());
    let pid = srv.pid();
    // Another server on the same root (another port) is refused at start, naming the holder.
    let second = write_config_as(work.path(), "second.yaml", &root, free_port(), 86_400, "");
    let out = Command::new(env!("CARGO_BIN_EXE_ocireg"))
        .arg("--config")
        .arg(&second)
        .arg("serve")
        .env("HOME", &home)
        .env_remove("OCIREG_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second server started: {err}");
    assert!(err.contains(&format!("in use by process {pid}")), "{err}");
    // So is an in-process gc (nothing answers on the second config's address).
    let (code, out, err) = ocireg_gc(&second, &home, &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("in use by process"), "{err}");
    // The first server was not disturbed.
    let c = client();
    let d = push_blob(&srv.base, &c, "lock/app", &random_bytes(1000)).unwrap();
    let r = c
        .head(srv.url(&format!("/v2/lock/app/blobs/{d}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Once it stopped, the root opens.
    drop(srv);
    let (code, out, err) = ocireg_gc(&second, &home, &[]);
    assert_eq!(code, 0, "{out}{err}");
}
