//! Several `ocireg serve` replicas on one S3 bucket (moto) behind HAProxy, beyond what the spec
//! suite run with `OCIREG_TEST_TARGET=replicas` covers: a replica killed with SIGKILL while 50
//! pushes are in flight through the balancer loses no acknowledged push, and the upload
//! sessions it was serving finish on the others; and GC running on one replica never breaks
//! what the others push and delete meanwhile.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use ocireg_test_support::replicas::Replicas;
use ocireg_test_support::sha256_str as sha256;
use reqwest::blocking::Client;
use serde_json::{json, Value};

use crate::gc_race::{
    assert_tagged_pull_back, client, random_bytes, spawn_deleter, spawn_pushers, Shared,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Concurrent pushes through the balancer.
const PUSHES: usize = 50;
/// Each push's layer, sent in [`CHUNK`]-byte PATCHes.
const LAYER: usize = 2 << 20;
const CHUNK: usize = 512 << 10;

/// What a client does when a request fails in flight: ask again, a little later (the balancer
/// takes a dead replica out after its health checks).
fn retry<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let started = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                return Err(format!("{what}: {e}"))
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Resolves a `Location` against the balancer.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Where the session stands, as any replica reports it: the next byte to send.
fn session_offset(c: &Client, loc: &str) -> Result<usize, String> {
    let r = c.get(loc).send().map_err(|e| e.to_string())?;
    if r.status().as_u16() != 204 {
        return Err(format!("status {}", r.status()));
    }
    let range = r
        .headers()
        .get("Range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0-0")
        .to_string();
    let end: usize = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| format!("Range {range}"))?;
    // `0-0` is either nothing or one byte; this client sends whole chunks, so nothing.
    Ok(if end == 0 { 0 } else { end + 1 })
}

/// A chunked push of `layer` and a small config, then the manifest under `tag`; every request
/// through the balancer, each failed one resumed from the offset the registry reports (a
/// client that resumes as the spec lets it). Returns the manifest's digest once acknowledged.
fn push(base: &str, repo: &str, tag: &str, layer: &[u8]) -> Result<String, String> {
    let c = client();
    let digest = sha256(layer);
    let loc = retry("POST", || {
        let r = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .map_err(|e| e.to_string())?;
        match r.status().as_u16() {
            202 => Ok(absolute(base, r.headers()["Location"].to_str().unwrap())),
            s => Err(format!("POST {s}")),
        }
    })?;
    let mut sent = 0;
    while sent < layer.len() {
        let end = (sent + CHUNK).min(layer.len());
        let r = c
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{sent}-{}", end - 1))
            .body(layer[sent..end].to_vec())
            .send();
        match r {
            Ok(r) if r.status().as_u16() == 202 => sent = end,
            // Lost in flight, or refused: the registry says where to go on.
            _ => sent = retry("status", || session_offset(&c, &loc))?,
        }
    }
    retry("PUT", || {
        let r = c
            .put(format!("{loc}?digest={digest}"))
            .send()
            .map_err(|e| e.to_string())?;
        match r.status().as_u16() {
            201 => Ok(()),
            s => Err(format!("PUT {s}")),
        }
    })?;
    let config = format!("{{\"tag\":\"{tag}\"}}").into_bytes();
    let config_digest = sha256(&config);
    retry("config", || {
        let r = c
            .post(format!(
                "{base}/v2/{repo}/blobs/uploads/?digest={config_digest}"
            ))
            .body(config.clone())
            .send()
            .map_err(|e| e.to_string())?;
        match r.status().as_u16() {
            201 => Ok(()),
            s => Err(format!("monolithic POST {s}")),
        }
    })?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest, "size": layer.len()}],
    }))
    .unwrap();
    retry("manifest", || {
        let r = c
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .map_err(|e| e.to_string())?;
        match r.status().as_u16() {
            201 => Ok(()),
            s => Err(format!("manifest PUT {s}")),
        }
    })?;
    Ok(sha256(&manifest))
}

#[test]
fn a_replica_killed_during_fifty_pushes_loses_no_acknowledged_push() {
    let mut set = Replicas::start(3);
    let base = set.base();
    let start = Arc::new(Barrier::new(PUSHES + 1));
    let finished = Arc::new(AtomicUsize::new(0));
    let pushes: Vec<_> = (0..PUSHES)
        .map(|i| {
            let (base, start, finished) = (base.clone(), Arc::clone(&start), Arc::clone(&finished));
            thread::spawn(move || {
                let layer = random_bytes(LAYER);
                start.wait();
                let tag = format!("t{i}");
                let pushed = push(&base, "crash/many", &tag, &layer);
                finished.fetch_add(1, Ordering::SeqCst);
                (tag, layer, pushed)
            })
        })
        .collect();
    start.wait();
    // Once the first chunks are in flight on every replica.
    thread::sleep(Duration::from_millis(700));
    set.kill(1);
    let finished_before_kill = finished.load(Ordering::SeqCst);
    let results: Vec<_> = pushes.into_iter().map(|t| t.join().unwrap()).collect();

    let c = client();
    let mut acknowledged = 0;
    for (tag, layer, pushed) in &results {
        let Ok(manifest_digest) = pushed else {
            continue;
        };
        acknowledged += 1;
        let r = c
            .get(format!("{base}/v2/crash/many/manifests/{tag}"))
            .header("Accept", OCI_MANIFEST)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{tag}: {}", set.logs());
        assert_eq!(&sha256(&r.bytes().unwrap()), manifest_digest, "{tag}");
        let r = c
            .get(format!("{base}/v2/crash/many/blobs/{}", sha256(layer)))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{tag} layer");
        assert!(r.bytes().unwrap() == layer.as_slice(), "{tag}: layer bytes");
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(tag, _, p)| p.as_ref().err().map(|e| format!("{tag}: {e}")))
        .collect();
    // A client that resumes as the spec lets it finishes every push, including the sessions
    // the killed replica was serving.
    assert!(failed.is_empty(), "pushes that never finished: {failed:?}");
    assert_eq!(acknowledged, PUSHES);
    assert!(
        finished_before_kill < PUSHES / 2,
        "{finished_before_kill} of {PUSHES} pushes had finished before the kill"
    );
}

/// GC of the race below: marked digests wait this long (`ops_config.gc_tombstone_wait`),
/// longer than any request of the race takes on moto.
const TOMBSTONE_WAIT_SECS: u64 = 4;

/// Runs GC on `base` until `stop`, a second apart; returns every run's report.
fn gc_every_second(base: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Value>> {
    thread::spawn(move || {
        let c = client();
        let mut reports = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let r = c
                .post(format!("{base}/v2/_ocireg/gc"))
                .send()
                .expect("GC request");
            assert_eq!(r.status().as_u16(), 200, "POST /v2/_ocireg/gc");
            let report: Value = r.json().expect("GC report");
            assert!(
                report["errors"].as_array().is_some_and(|e| e.is_empty()),
                "{report}"
            );
            reports.push(report);
            thread::sleep(Duration::from_secs(1));
        }
        reports
    })
}

/// The race of `gc_race.rs` across replicas: GC runs on replica 0 a second after the previous
/// run ended, for `OCIREG_GC_RACE_SECS` (default 60), while three threads push artifacts that
/// reuse shared layers (`HEAD` and skip, or upload again) and a fourth deletes them, all
/// through replicas 1 and 2. Every push must succeed, every artifact still tagged pulls back
/// byte-exact through the balancer, and GC did remove what the deletes left unreferenced.
#[test]
fn gc_on_one_replica_never_breaks_pushes_and_deletes_through_the_others() {
    let secs: u64 = std::env::var("OCIREG_GC_RACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let set = Replicas::start_with(
        3,
        &format!(
            "    ops_config: {{gc_grace_period: 2, gc_delete_untagged: true, \
             gc_tombstone_wait: {TOMBSTONE_WAIT_SECS}}}\n"
        ),
    );
    let bases = [set.replica_base(1), set.replica_base(2)];
    let (tagged, removed): (Shared, Shared) = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + Duration::from_secs(secs);
    let gc = gc_every_second(set.replica_base(0), Arc::clone(&stop));
    let pushers = spawn_pushers(&bases, &tagged, &stop, until);
    let deletes = spawn_deleter(&bases, &tagged, &removed, until)
        .join()
        .unwrap();
    let pushes: usize = pushers.into_iter().map(|p| p.join().unwrap()).sum();
    // Once the race is over: a run that finds the deleted artifacts' blobs old enough.
    thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let reports = gc.join().unwrap();
    let tagged = tagged.lock().unwrap().clone();
    let removed = removed.lock().unwrap().clone();
    assert!(
        pushes > 10 && deletes > 2,
        "too little traffic: {pushes} pushes, {deletes} deletes"
    );
    assert_tagged_pull_back(&set.base(), &tagged);
    let sum = |key: &str| -> u64 { reports.iter().filter_map(|r| r[key].as_u64()).sum() };
    let blobs: usize = reports
        .iter()
        .filter_map(|r| r["blobs"].as_array().map(Vec::len))
        .sum();
    eprintln!(
        "{pushes} pushes, {deletes} deletes, {} GC runs: {} tombstoned, {} reused, {blobs} blobs removed",
        reports.len(),
        sum("tombstoned"),
        sum("reused")
    );
    // A run is the tombstone wait plus two listings of the bucket: about 5-7 s on moto.
    assert!(
        reports.len() as u64 >= secs / (TOMBSTONE_WAIT_SECS * 4),
        "only {} GC runs in {secs} s",
        reports.len()
    );
    assert!(blobs > 0, "GC removed nothing while artifacts were deleted");
    // Some deleted artifact's own layer is gone: GC did collect, not only survive.
    let c = client();
    let gone = removed.iter().any(|a| {
        let unique = sha256(&a.blobs[2]);
        c.head(format!("{}/v2/{}/blobs/{unique}", set.base(), a.repo))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 404)
    });
    assert!(gone, "no deleted artifact's layer was collected");
}
