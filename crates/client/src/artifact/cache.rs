//! Content-addressed pull cache.
//!
//! Layout under the directory the caller gives (e.g. `<local.data_dir>/cache`):
//!
//! ```text
//! blobs/<alg>/<hex>                          blob bytes (manifests, configs, layers)
//! refs/<registry>/<repo>/_tags/<tag>.json    {"registry","repository","tag","digest","fetchedAt"}
//! tmp/                                       temporary files, renamed into place when complete
//! ```
//!
//! Every file is written to `tmp/`, fsynced, renamed into place and its directory fsynced, so a
//! reader sees either nothing or a complete file. Blobs never expire (they are content
//! addressed); tag entries expire `ttl` after they were fetched.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ocireg_oci::{Digest, DigestHasher, Reference, RepoName, Tag};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cache_writer::BlobWriter;
use super::hashio::copy_hashing;
use super::policy::RefLookup;
use super::{age_between, ClientError, Result};

/// Temporary files older than this are removed when the cache is opened (left by crashes).
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

/// How the cache behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// How long a tag → digest entry stays fresh (`pull_policy.cache_ttl`).
    pub ttl: Duration,
    /// Re-hash blobs before handing them out (`pull_policy.verify_cached`).
    pub verify: bool,
}

impl Default for CacheOptions {
    /// The seed's defaults: one hour, verify on.
    fn default() -> Self {
        CacheOptions {
            ttl: Duration::from_secs(3600),
            verify: true,
        }
    }
}

/// A blob present in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBlob {
    /// Its file.
    pub path: PathBuf,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Result of checking a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStatus {
    /// Present (and, with `verify`, re-hashed to its digest).
    Hit(CachedBlob),
    /// Not in the cache.
    Missing,
    /// Present but hashed to `actual`: the file was deleted.
    Corrupt {
        /// The digest it is stored under.
        expected: Digest,
        /// What its content hashed to.
        actual: Digest,
    },
}

/// A tag entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    /// The manifest digest the tag pointed to.
    pub digest: Digest,
    /// When it was fetched from the registry.
    pub fetched_at: SystemTime,
}

/// Counters since the cache was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups not answered (absent, expired or corrupt).
    pub misses: u64,
    /// Tag entries found older than the TTL.
    pub expired: u64,
    /// Blobs (or entry files) found corrupt and deleted.
    pub corrupt: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    expired: AtomicU64,
    corrupt: AtomicU64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefFile {
    registry: String,
    repository: String,
    tag: String,
    digest: Digest,
    fetched_at: String,
}

/// The pull cache rooted at one directory.
pub struct Cache {
    root: PathBuf,
    opts: CacheOptions,
    counters: Counters,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("root", &self.root)
            .field("opts", &self.opts)
            .field("stats", &self.stats())
            .finish()
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Cache {
    /// Opens (creating if needed) the cache in `dir`.
    pub fn open(dir: &Path, opts: CacheOptions) -> Result<Cache> {
        for sub in ["blobs", "refs", "tmp"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| ClientError::io_path("cannot create", &p, e))?;
        }
        let cache = Cache {
            root: dir.to_path_buf(),
            opts,
            counters: Counters::default(),
        };
        cache.remove_stale_tmp();
        Ok(cache)
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options it was opened with.
    pub fn options(&self) -> CacheOptions {
        self.opts
    }

    /// Counters since open.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            expired: self.counters.expired.load(Ordering::Relaxed),
            corrupt: self.counters.corrupt.load(Ordering::Relaxed),
        }
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Looks a blob up; with `verify`, re-hashes it and deletes it on mismatch (reported as
    /// [`BlobStatus::Corrupt`], a `corrupt` count and a warning).
    pub fn check_blob(&self, digest: &Digest) -> Result<BlobStatus> {
        let path = self.blob_path(digest);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bump(&self.counters.misses);
                return Ok(BlobStatus::Missing);
            }
            Err(e) => return Err(ClientError::io_path("cannot open", &path, e)),
        };
        let size = if self.opts.verify {
            let mut hasher = DigestHasher::new(digest.algorithm());
            let n = copy_hashing(&mut file, &mut io::sink(), &mut hasher)
                .map_err(|e| ClientError::io_path("cannot read", &path, e))?;
            let actual = hasher.finish();
            if actual != *digest {
                self.drop_corrupt(&path, &format!("hashes to {actual}"));
                return Ok(BlobStatus::Corrupt {
                    expected: digest.clone(),
                    actual,
                });
            }
            n
        } else {
            file.metadata()
                .map_err(|e| ClientError::io_path("cannot read", &path, e))?
                .len()
        };
        bump(&self.counters.hits);
        Ok(BlobStatus::Hit(CachedBlob {
            path,
            digest: digest.clone(),
            size,
        }))
    }

    /// The blob if present and (with `verify`) intact; a corrupt blob is deleted and a miss.
    pub fn get_blob(&self, digest: &Digest) -> Result<Option<CachedBlob>> {
        match self.check_blob(digest)? {
            BlobStatus::Hit(b) => Ok(Some(b)),
            BlobStatus::Missing | BlobStatus::Corrupt { .. } => Ok(None),
        }
    }

    /// Reads a small blob (manifest, config) into memory, verified like [`Cache::get_blob`].
    pub fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bump(&self.counters.misses);
                return Ok(None);
            }
            Err(e) => return Err(ClientError::io_path("cannot read", &path, e)),
        };
        if self.opts.verify && !digest.verify(&bytes) {
            let actual = Digest::compute(digest.algorithm(), &bytes);
            self.drop_corrupt(&path, &format!("hashes to {actual}"));
            return Ok(None);
        }
        bump(&self.counters.hits);
        Ok(Some(bytes))
    }

    /// Stores a blob from `reader`, hashing while writing; on a digest mismatch nothing is stored
    /// and [`ClientError::DigestMismatch`] is returned.
    pub fn put_blob_from(&self, mut reader: impl Read, expected: &Digest) -> Result<CachedBlob> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| ClientError::io_path("cannot create a temporary file in", &tmp_dir, e))?;
        let mut hasher = DigestHasher::new(expected.algorithm());
        let tmp_path = tmp.path().to_path_buf();
        let size = {
            let mut w = io::BufWriter::new(tmp.as_file_mut());
            let n =
                copy_hashing(&mut reader, &mut w, &mut hasher).map_err(|e| ClientError::Io {
                    context: format!("cannot store blob {expected}"),
                    source: e,
                })?;
            w.flush()
                .map_err(|e| ClientError::io_path("cannot write", &tmp_path, e))?;
            n
        };
        let actual = hasher.finish();
        if actual != *expected {
            return Err(ClientError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let path = self.blob_path(expected);
        self.persist(tmp, &path)?;
        Ok(CachedBlob {
            path,
            digest: actual,
            size,
        })
    }

    /// Stores an in-memory blob, verifying it against `expected`.
    pub fn put_blob(&self, bytes: &[u8], expected: &Digest) -> Result<CachedBlob> {
        self.put_blob_from(bytes, expected)
    }

    /// Deletes a blob; absent is fine.
    pub fn remove_blob(&self, digest: &Digest) -> Result<()> {
        remove_if_present(&self.blob_path(digest))
    }

    /// Records that `registry/repo:tag` resolved to `digest` just now.
    pub fn put_ref(&self, registry: &str, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        self.put_ref_at(registry, repo, tag, digest, SystemTime::now())
    }

    /// Records that `registry/repo:tag` resolved to `digest` at `fetched_at`.
    pub fn put_ref_at(
        &self,
        registry: &str,
        repo: &str,
        tag: &str,
        digest: &Digest,
        fetched_at: SystemTime,
    ) -> Result<()> {
        let (path, registry) = self.ref_path(registry, repo, tag)?;
        let fetched_at = OffsetDateTime::from(fetched_at)
            .format(&Rfc3339)
            .map_err(|e| ClientError::InvalidOption(format!("fetch time: {e}")))?;
        let body = RefFile {
            registry,
            repository: repo.to_owned(),
            tag: tag.to_owned(),
            digest: digest.clone(),
            fetched_at,
        };
        let bytes = serde_json::to_vec(&body)?;
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::Builder::new()
            .prefix("ref-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| ClientError::io_path("cannot create a temporary file in", &tmp_dir, e))?;
        tmp.write_all(&bytes)
            .map_err(|e| ClientError::io_path("cannot write", tmp.path(), e))?;
        self.persist(tmp, &path)
    }

    /// The raw tag entry, whatever its age; a malformed entry file is deleted and absent.
    pub fn ref_entry(&self, registry: &str, repo: &str, tag: &str) -> Result<Option<RefEntry>> {
        let (path, registry) = self.ref_path(registry, repo, tag)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ClientError::io_path("cannot read", &path, e)),
        };
        let parsed = serde_json::from_slice::<RefFile>(&bytes)
            .ok()
            .and_then(|f| {
                let t = OffsetDateTime::parse(&f.fetched_at, &Rfc3339).ok()?;
                (f.registry == registry && f.repository == repo && f.tag == tag).then(|| RefEntry {
                    digest: f.digest,
                    fetched_at: SystemTime::from(t),
                })
            });
        if parsed.is_none() {
            self.drop_corrupt(&path, "is not a valid tag entry");
        }
        Ok(parsed)
    }

    /// The tag entry judged against the TTL at `now` (injectable clock for tests).
    pub fn lookup_ref_at(
        &self,
        registry: &str,
        repo: &str,
        tag: &str,
        now: SystemTime,
    ) -> Result<RefLookup> {
        let Some(entry) = self.ref_entry(registry, repo, tag)? else {
            bump(&self.counters.misses);
            return Ok(RefLookup::Absent);
        };
        let age = age_between(entry.fetched_at, now);
        if age >= self.opts.ttl {
            bump(&self.counters.expired);
            bump(&self.counters.misses);
            Ok(RefLookup::Expired {
                digest: entry.digest,
                age,
                ttl: self.opts.ttl,
                fetched_at: entry.fetched_at,
            })
        } else {
            bump(&self.counters.hits);
            Ok(RefLookup::Fresh(entry.digest))
        }
    }

    /// The manifest digest `registry/repo:tag` resolved to, if fetched less than `ttl` ago.
    pub fn lookup_ref(&self, registry: &str, repo: &str, tag: &str) -> Result<Option<Digest>> {
        match self.lookup_ref_at(registry, repo, tag, SystemTime::now())? {
            RefLookup::Fresh(d) => Ok(Some(d)),
            RefLookup::Expired { .. } | RefLookup::Absent => Ok(None),
        }
    }

    /// [`RefLookup`] for a tag or digest reference at `now`. A digest reference never expires:
    /// it is fresh when the manifest blob is cached (verified later, when it is read).
    pub fn lookup_at(
        &self,
        registry: &str,
        repo: &str,
        reference: &Reference,
        now: SystemTime,
    ) -> Result<RefLookup> {
        match reference {
            Reference::Tag(tag) => self.lookup_ref_at(registry, repo, tag.as_str(), now),
            Reference::Digest(d) => {
                if self.blob_path(d).is_file() {
                    bump(&self.counters.hits);
                    Ok(RefLookup::Fresh(d.clone()))
                } else {
                    bump(&self.counters.misses);
                    Ok(RefLookup::Absent)
                }
            }
        }
    }

    /// [`Cache::lookup_at`] now.
    pub fn lookup(&self, registry: &str, repo: &str, reference: &Reference) -> Result<RefLookup> {
        self.lookup_at(registry, repo, reference, SystemTime::now())
    }

    /// Deletes a tag entry; absent is fine.
    pub fn remove_ref(&self, registry: &str, repo: &str, tag: &str) -> Result<()> {
        let (path, _) = self.ref_path(registry, repo, tag)?;
        remove_if_present(&path)
    }

    /// The entry file of a tag and the normalised (lowercase) registry name. Validates all three
    /// parts so none can escape the `refs/` directory.
    fn ref_path(&self, registry: &str, repo: &str, tag: &str) -> Result<(PathBuf, String)> {
        let registry = registry.to_ascii_lowercase();
        let registry_ok = !registry.is_empty()
            && registry.len() <= 255
            && !registry.starts_with('.')
            && registry.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
            });
        if !registry_ok {
            return Err(ClientError::InvalidCacheKey(format!(
                "registry {registry:?}"
            )));
        }
        if !RepoName::is_valid(repo) {
            return Err(ClientError::InvalidCacheKey(format!("repository {repo:?}")));
        }
        if !Tag::is_valid(tag) {
            return Err(ClientError::InvalidCacheKey(format!("tag {tag:?}")));
        }
        // Repository components never start with '_', so `_tags` cannot clash with a nested
        // repository name.
        let mut path = self.root.join("refs").join(&registry);
        for c in repo.split('/') {
            path.push(c);
        }
        path.push("_tags");
        path.push(format!("{tag}.json"));
        Ok((path, registry))
    }

    /// fsync the temporary file, rename it to `dest` (creating parents), fsync the directory.
    fn persist(&self, tmp: tempfile::NamedTempFile, dest: &Path) -> Result<()> {
        persist_file(tmp, dest, &self.root)
    }

    /// Starts writing the blob `expected` into the cache in a streaming way (see
    /// [`BlobWriter`]).
    pub fn blob_writer(&self, expected: &Digest, rehash: bool) -> Result<BlobWriter> {
        let tmp_dir = self.root.join("tmp");
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| ClientError::io_path("cannot create a temporary file in", &tmp_dir, e))?;
        BlobWriter::new(tmp, self.blob_path(expected), expected.clone(), rehash)
    }

    fn drop_corrupt(&self, path: &Path, why: &str) {
        bump(&self.counters.corrupt);
        bump(&self.counters.misses);
        tracing::warn!(path = %path.display(), "cache entry {why}: corrupt, deleted");
        if let Err(e) = remove_if_present(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete corrupt cache entry");
        }
    }

    fn remove_stale_tmp(&self) {
        let dir = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| age_between(t, now) > STALE_TMP)
                .unwrap_or(false);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// fsync the temporary file, rename it to `dest` (creating parents under `root`), fsync the
/// directory.
pub(super) fn persist_file(tmp: tempfile::NamedTempFile, dest: &Path, root: &Path) -> Result<()> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| ClientError::io_path("cannot sync", tmp.path(), e))?;
    let parent = dest.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(|e| ClientError::io_path("cannot create", parent, e))?;
    tmp.persist(dest)
        .map_err(|e| ClientError::io_path("cannot rename into", dest, e.error))?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| ClientError::io_path("cannot sync directory", parent, e))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClientError::io_path("cannot delete", path, e)),
    }
}
