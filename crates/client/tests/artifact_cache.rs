//! Pull cache: hits, misses, TTL, corruption, pull policies, and a cache-served pull.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifact_util;

use std::fs::{self, File};
use std::time::{Duration, SystemTime};

use artifact_util::{names, sample_tree, snapshot};
use ocireg_client::artifact::{
    decide, pack, unpack, ArtifactKind, BlobStatus, Cache, CacheOptions, PackOptions, PullDecision,
    PullPolicy, PullPolicyExt, RefLookup,
};
use ocireg_client::ClientError;
use ocireg_oci::{parse_manifest, Algorithm, Digest, Reference};

const REG: &str = "registry.local:5000";
const REPO: &str = "provisioning-extensions/aws";

/// A cache in a new temporary directory (kept alive by the returned guard).
fn fresh(ttl_secs: u64, verify: bool) -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path(), ttl_secs, verify);
    (dir, cache)
}

fn open(dir: &std::path::Path, ttl_secs: u64, verify: bool) -> Cache {
    Cache::open(
        dir,
        CacheOptions {
            ttl: Duration::from_secs(ttl_secs),
            verify,
        },
    )
    .unwrap()
}

/// Caches `data` under its digest, then flips the stored file's first byte.
fn put_corrupted(cache: &Cache, data: &[u8]) -> (Digest, std::path::PathBuf) {
    let d = Digest::compute(Algorithm::Sha256, data);
    let path = cache.put_blob(data, &d).unwrap().path;
    flip_first_byte(&path);
    (d, path)
}

fn flip_first_byte(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    bytes[0] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

#[test]
fn blob_hit_and_miss() {
    let (dir, cache) = fresh(3600, true);
    let data = b"hello blob".repeat(10_000);
    let d = Digest::compute(Algorithm::Sha256, &data);
    assert_eq!(cache.get_blob(&d).unwrap(), None);
    let stored = cache.put_blob_from(&data[..], &d).unwrap();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(stored.path, dir.path().join("blobs/sha256").join(d.hex()));
    let hit = cache.get_blob(&d).unwrap().unwrap();
    assert_eq!(fs::read(&hit.path).unwrap(), data);
    assert_eq!(cache.read_blob(&d).unwrap().unwrap(), data);
    let other = Digest::compute(Algorithm::Sha256, b"other");
    assert_eq!(cache.check_blob(&other).unwrap(), BlobStatus::Missing);
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.corrupt), (2, 2, 0));
    // Survives a re-open.
    let again = open(dir.path(), 3600, true);
    assert!(again.get_blob(&d).unwrap().is_some());
    // Nothing left in tmp/.
    assert!(names(&dir.path().join("tmp")).is_empty());
}

#[test]
fn put_with_the_wrong_digest_stores_nothing() {
    let (dir, cache) = fresh(3600, true);
    let claimed = Digest::compute(Algorithm::Sha256, b"what was announced");
    let e = cache.put_blob(b"what arrived", &claimed).unwrap_err();
    match e {
        ClientError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, Digest::compute(Algorithm::Sha256, b"what arrived"));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!cache.blob_path(&claimed).exists());
    assert!(names(&dir.path().join("tmp")).is_empty());
    // sha512 blobs work too.
    let d512 = Digest::compute(Algorithm::Sha512, b"x");
    cache.put_blob(b"x", &d512).unwrap();
    assert!(dir.path().join("blobs/sha512").join(d512.hex()).is_file());
}

#[test]
fn corrupt_blob_is_detected_dropped_and_missed() {
    let (_dir, cache) = fresh(3600, true);
    let data = vec![42u8; 300_000];
    let (d, path) = put_corrupted(&cache, &data);
    match cache.check_blob(&d).unwrap() {
        BlobStatus::Corrupt { expected, actual } => {
            assert_eq!(expected, d);
            assert_ne!(actual, d);
        }
        other => panic!("expected corrupt, got {other:?}"),
    }
    assert!(!path.exists(), "corrupt blob deleted");
    assert_eq!(cache.get_blob(&d).unwrap(), None);
    assert_eq!(cache.stats().corrupt, 1);

    // read_blob (manifests) verifies the same way.
    let m = br#"{"schemaVersion":2}"#;
    let (md, mp) = put_corrupted(&cache, m);
    assert_eq!(cache.read_blob(&md).unwrap(), None);
    assert!(!mp.exists());
    assert_eq!(cache.stats().corrupt, 2);
}

#[test]
fn without_verify_a_corrupt_blob_is_served() {
    let (_dir, cache) = fresh(3600, false);
    let (d, _) = put_corrupted(&cache, b"abc");
    assert!(
        cache.get_blob(&d).unwrap().is_some(),
        "verify_cached = false trusts the file"
    );
    assert_eq!(cache.stats().corrupt, 0);
}

#[test]
fn ref_entries_honour_the_ttl() {
    let (dir, cache) = fresh(60, true);
    let d = Digest::compute(Algorithm::Sha256, b"manifest");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(
        cache.lookup_ref_at(REG, REPO, "v1", t0).unwrap(),
        RefLookup::Absent
    );
    cache.put_ref_at(REG, REPO, "v1", &d, t0).unwrap();
    let at = |secs| t0 + Duration::from_secs(secs);
    assert_eq!(
        cache.lookup_ref_at(REG, REPO, "v1", at(0)).unwrap(),
        RefLookup::Fresh(d.clone())
    );
    assert_eq!(
        cache.lookup_ref_at(REG, REPO, "v1", at(59)).unwrap(),
        RefLookup::Fresh(d.clone())
    );
    match cache.lookup_ref_at(REG, REPO, "v1", at(60)).unwrap() {
        RefLookup::Expired {
            digest,
            age,
            ttl,
            fetched_at,
        } => {
            assert_eq!(digest, d);
            assert_eq!(age, Duration::from_secs(60));
            assert_eq!(ttl, Duration::from_secs(60));
            assert_eq!(fetched_at, t0);
        }
        other => panic!("expected expired, got {other:?}"),
    }
    // Real clock: an entry fetched 2 minutes ago is expired, one fetched now is fresh.
    cache
        .put_ref_at(
            REG,
            REPO,
            "old",
            &d,
            SystemTime::now() - Duration::from_secs(120),
        )
        .unwrap();
    assert_eq!(cache.lookup_ref(REG, REPO, "old").unwrap(), None);
    cache.put_ref(REG, REPO, "new", &d).unwrap();
    assert_eq!(cache.lookup_ref(REG, REPO, "new").unwrap(), Some(d.clone()));
    assert!(cache.stats().expired >= 2);
    // Tags are per registry and repository; the registry name is case-insensitive.
    assert_eq!(
        cache
            .lookup_ref(REG, "provisioning-extensions/gcp", "new")
            .unwrap(),
        None
    );
    assert_eq!(cache.lookup_ref("other:5000", REPO, "new").unwrap(), None);
    assert_eq!(
        cache
            .lookup_ref("REGISTRY.local:5000", REPO, "new")
            .unwrap(),
        Some(d.clone())
    );
    // A nested repository name cannot collide with a tag.
    cache.put_ref(REG, "a", "b", &d).unwrap();
    cache.put_ref(REG, "a/b", "c", &d).unwrap();
    assert_eq!(cache.lookup_ref(REG, "a", "b").unwrap(), Some(d.clone()));
    assert!(dir
        .path()
        .join("refs/registry.local:5000/provisioning-extensions/aws/_tags/new.json")
        .is_file());
    cache.remove_ref(REG, REPO, "new").unwrap();
    assert_eq!(cache.lookup_ref(REG, REPO, "new").unwrap(), None);
}

#[test]
fn short_real_ttl_expires() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(
        dir.path(),
        CacheOptions {
            ttl: Duration::from_millis(200),
            verify: true,
        },
    )
    .unwrap();
    let d = Digest::compute(Algorithm::Sha256, b"m");
    cache.put_ref(REG, REPO, "t", &d).unwrap();
    assert_eq!(cache.lookup_ref(REG, REPO, "t").unwrap(), Some(d));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cache.lookup_ref(REG, REPO, "t").unwrap(), None);
}

#[test]
fn malformed_ref_entry_is_a_dropped_miss() {
    let (dir, cache) = fresh(3600, true);
    let d = Digest::compute(Algorithm::Sha256, b"m");
    cache.put_ref(REG, REPO, "t", &d).unwrap();
    let path = dir
        .path()
        .join("refs/registry.local:5000/provisioning-extensions/aws/_tags/t.json");
    fs::write(&path, b"{not json").unwrap();
    assert_eq!(cache.lookup_ref(REG, REPO, "t").unwrap(), None);
    assert!(!path.exists());
    assert_eq!(cache.stats().corrupt, 1);
}

#[test]
fn cache_keys_cannot_escape() {
    let (dir, cache) = fresh(3600, true);
    let d = Digest::compute(Algorithm::Sha256, b"m");
    for (reg, repo, tag) in [
        ("..", REPO, "t"),
        ("a/b", REPO, "t"),
        ("", REPO, "t"),
        (REG, "../x", "t"),
        (REG, "Upper", "t"),
        (REG, "a//b", "t"),
        (REG, REPO, "../t"),
        (REG, REPO, ".hidden"),
        (REG, REPO, ""),
    ] {
        let e = cache.put_ref(reg, repo, tag, &d).unwrap_err();
        assert!(
            matches!(e, ClientError::InvalidCacheKey(_)),
            "{reg} {repo} {tag}: {e}"
        );
        assert!(cache.lookup_ref(reg, repo, tag).is_err());
    }
    assert!(names(&dir.path().join("refs")).is_empty());
}

#[test]
fn never_with_an_empty_cache_is_a_clear_error() {
    let (_dir, cache) = fresh(3600, true);
    let tag: Reference = "v1".parse().unwrap();
    let lookup = cache.lookup(REG, REPO, &tag).unwrap();
    assert_eq!(lookup, RefLookup::Absent);
    let e = decide(
        PullPolicy::Never,
        &lookup,
        "registry.local:5000/provisioning-extensions/aws:v1",
    )
    .unwrap_err();
    assert!(matches!(e, ClientError::NotCached { .. }));
    let msg = e.to_string();
    assert!(msg.contains("aws:v1") && msg.contains("never"), "{msg}");
    // By digest too.
    let by_digest = Reference::Digest(Digest::compute(Algorithm::Sha256, b"m"));
    let lookup = cache.lookup(REG, REPO, &by_digest).unwrap();
    assert!(decide(PullPolicy::Never, &lookup, "x").is_err());
    assert_eq!(
        decide(PullPolicy::IfNotPresent, &lookup, "x").unwrap(),
        PullDecision::Fetch
    );
}

/// Plays the CLI's pull flow against a pretend registry (a packed artifact), twice: the first
/// pull fetches and fills the cache, the second is served from it, then `never` works offline,
/// and a corrupted layer is refetched under `if-not-present` but is an error under `never`.
#[test]
fn pull_flow_with_policies() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let work = tempfile::tempdir().unwrap();
    let mut o = PackOptions::new(ArtifactKind::Extension, "aws");
    o.compression = Some(6);
    let art = pack(src.path(), &o, work.path()).unwrap();
    let cache = open(&work.path().join("cache"), 3600, true);
    let tag: Reference = "v1".parse().unwrap();
    let fetches = std::cell::Cell::new(0);

    let pull = |policy: PullPolicy, dest: &str| -> Result<(), ClientError> {
        let lookup = if policy.uses_cache() {
            cache.lookup(REG, REPO, &tag)?
        } else {
            RefLookup::Absent
        };
        let manifest_digest = match decide(policy, &lookup, "aws:v1")? {
            PullDecision::UseCache(d) => d,
            PullDecision::Fetch => {
                fetches.set(fetches.get() + 1);
                let d = art.manifest.descriptor.digest.clone();
                cache.put_blob(&art.manifest.bytes, &d)?;
                cache.put_ref(REG, REPO, "v1", &d)?;
                d
            }
        };
        let manifest = cache.read_blob(&manifest_digest)?.unwrap();
        let parsed = parse_manifest(&manifest, None).unwrap();
        let layer = &parsed.layers[0];
        let blob = match cache.get_blob(&layer.digest)? {
            Some(b) if policy.uses_cache() => b,
            _ => {
                policy.on_blob_miss(&layer.digest)?;
                fetches.set(fetches.get() + 1);
                cache.put_blob_from(File::open(&art.layer.path).unwrap(), &layer.digest)?
            }
        };
        unpack(
            File::open(&blob.path).unwrap(),
            &layer.media_type,
            &work.path().join(dest),
        )?;
        Ok(())
    };

    pull(PullPolicy::IfNotPresent, "d1").unwrap();
    assert_eq!(fetches.get(), 2, "manifest + layer fetched");
    pull(PullPolicy::IfNotPresent, "d2").unwrap();
    assert_eq!(fetches.get(), 2, "served from the cache");
    pull(PullPolicy::Never, "d3").unwrap();
    assert_eq!(fetches.get(), 2);
    pull(PullPolicy::Always, "d4").unwrap();
    assert_eq!(fetches.get(), 4, "always refetches");
    for d in ["d1", "d2", "d3", "d4"] {
        assert_eq!(snapshot(&work.path().join(d)), snapshot(src.path()), "{d}");
    }
    // Corrupt the cached layer.
    let layer_path = cache.blob_path(&art.layer.descriptor.digest);
    flip_first_byte(&layer_path);
    let e = pull(PullPolicy::Never, "d5").unwrap_err();
    assert!(matches!(e, ClientError::NotCached { .. }), "{e}");
    assert!(!work.path().join("d5").exists());
    pull(PullPolicy::IfNotPresent, "d6").unwrap();
    assert_eq!(fetches.get(), 5, "only the corrupt layer refetched");
    assert_eq!(snapshot(&work.path().join("d6")), snapshot(src.path()));
    assert!(cache.stats().corrupt >= 1);
}
