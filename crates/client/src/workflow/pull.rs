//! Pulling an artifact: resolve the reference through the pull policy and the local cache,
//! fetch what is missing into the cache (verified while streaming), and unpack the layer
//! safely into the destination.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocireg_oci::{media_types, Descriptor, Digest, ParsedManifest, Reference, RepoName};
use tokio::io::AsyncWriteExt;

use super::display_reference;
use super::progress::{finish, CountingWriter, Meter, Progress};
use crate::artifact::{
    annotations, decide, pipe, unpack, unpack_staged, ArtifactKind, BlobWriter, Cache, CacheStats,
    PullDecision, PullPolicy, PullPolicyExt, RefLookup, StagedUnpack, TeeReader, UnpackReport,
};
use crate::error::{BoxError, ClientError};
use crate::registry::Registry;

/// Blocks of [`crate::artifact::PIPE_BLOCK`] bytes that may wait between the download and the
/// unpacker.
const PIPE_DEPTH: usize = 8;

/// Provides the registry client when a pull first needs one (`never` must not connect).
pub type Connect<'a> = dyn FnMut() -> Result<Registry, BoxError> + Send + 'a;

/// What to pull, from where, into where, under which policy.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// `host[:port]` of the registry: the cache key, and how it is named in messages.
    pub registry: String,
    /// The repository.
    pub repo: RepoName,
    /// The manifest to pull.
    pub reference: Reference,
    /// `pull_policy.policy`.
    pub policy: PullPolicy,
    /// The directory to unpack into (absent or empty).
    pub dest: PathBuf,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest came from the cache.
    pub manifest_cached: bool,
    /// The layer came from the cache.
    pub layer_cached: bool,
    /// What was unpacked.
    pub unpacked: UnpackReport,
    /// The manifest's `artifactType`.
    pub artifact_type: Option<String>,
    /// The artifact kind, when the type names one.
    pub kind: Option<ArtifactKind>,
    /// The cache's counters after the pull.
    pub cache: CacheStats,
}

/// Fails early when `dest` exists and is not an empty directory; creates its parent.
pub fn prepare_dest(dest: &Path) -> Result<(), ClientError> {
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ClientError::DestinationNotEmpty(dest.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| {
                    ClientError::local_io(format!("creating {}", parent.display()), e)
                })?;
            }
        }
        Err(_) if dest.exists() => {
            return Err(ClientError::DestinationNotEmpty(dest.to_path_buf()))
        }
        Err(e) => {
            return Err(ClientError::local_io(
                format!("reading {}", dest.display()),
                e,
            ))
        }
    }
    Ok(())
}

/// An existing destination moved out of the way for `pull --force`: renamed to a hidden
/// sibling, deleted by [`SetAside::commit`] once the pull succeeded, and renamed back when the
/// guard is dropped without it (a failed or interrupted pull), so a failed forced pull loses
/// nothing.
#[derive(Debug)]
pub struct SetAside {
    dest: PathBuf,
    aside: Option<PathBuf>,
}

impl SetAside {
    /// Moves `dest` aside when it exists and is not an empty directory; else does nothing.
    pub fn new(dest: &Path) -> Result<SetAside, ClientError> {
        let empty_dir = fs::read_dir(dest).is_ok_and(|mut e| e.next().is_none());
        if empty_dir || fs::symlink_metadata(dest).is_err() {
            return Ok(SetAside {
                dest: dest.to_path_buf(),
                aside: None,
            });
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dest".to_owned());
        let parent = dest.parent().filter(|p| !p.as_os_str().is_empty());
        let aside = parent
            .unwrap_or(Path::new("."))
            .join(format!(".{name}.ocireg-replaced-{}", std::process::id()));
        fs::rename(dest, &aside)
            .map_err(|e| ClientError::local_io(format!("moving {} aside", dest.display()), e))?;
        Ok(SetAside {
            dest: dest.to_path_buf(),
            aside: Some(aside),
        })
    }

    /// The pull succeeded: deletes what was moved aside.
    pub fn commit(mut self) -> Result<(), ClientError> {
        let Some(aside) = self.aside.take() else {
            return Ok(());
        };
        let removed = if aside.is_dir() {
            fs::remove_dir_all(&aside)
        } else {
            fs::remove_file(&aside)
        };
        removed.map_err(|e| ClientError::local_io(format!("removing {}", aside.display()), e))
    }
}

impl Drop for SetAside {
    fn drop(&mut self) {
        if let Some(aside) = self.aside.take() {
            // A failed pull leaves nothing at `dest` but, at most, an empty directory.
            let _ = fs::remove_dir(&self.dest);
            if let Err(e) = fs::rename(&aside, &self.dest) {
                tracing::warn!(error = %e, "could not restore {} from {}", self.dest.display(), aside.display());
            }
        }
    }
}

/// One pull: the registry (connected lazily) and the cache.
struct Puller<'a, 'c> {
    req: &'a PullRequest,
    cache: &'a Cache,
    connect: &'a mut Connect<'c>,
    reg: Option<Registry>,
    progress: &'a dyn Progress,
}

impl Puller<'_, '_> {
    fn registry(&mut self) -> Result<Registry, ClientError> {
        if let Some(r) = &self.reg {
            return Ok(r.clone());
        }
        let r = (self.connect)().map_err(ClientError::Connect)?;
        self.reg = Some(r.clone());
        Ok(r)
    }

    fn shown(&self) -> String {
        display_reference(&self.req.registry, &self.req.repo, &self.req.reference)
    }

    /// Fetches the manifest from the registry and stores it (and the tag entry) in the cache.
    async fn fetch_manifest(&mut self) -> Result<(Vec<u8>, Digest), ClientError> {
        let (repo, reference) = (&self.req.repo, &self.req.reference);
        let accept = [media_types::OCI_MANIFEST, media_types::DOCKER_MANIFEST];
        let m = self
            .registry()?
            .get_manifest(repo, reference, &accept)
            .await
            .map_err(|e| {
                let what = super::display_reference(&self.req.registry, repo, reference);
                ClientError::context(format!("fetching the manifest of {what}"), e)
            })?;
        let bytes = m.bytes.to_vec();
        tokio::task::block_in_place(|| -> Result<(), ClientError> {
            self.cache.put_blob(&bytes, &m.digest)?;
            if let Reference::Tag(t) = reference {
                self.cache
                    .put_ref(&self.req.registry, repo.as_str(), t.as_str(), &m.digest)?;
            }
            Ok(())
        })?;
        Ok((bytes, m.digest))
    }

    /// The manifest per the policy and the cache; returns it, its digest and whether it came
    /// from the cache.
    async fn manifest(&mut self) -> Result<(Vec<u8>, Digest, bool), ClientError> {
        let (req, shown) = (self.req, self.shown());
        let lookup = match req.policy {
            PullPolicy::Always => RefLookup::Absent,
            _ => tokio::task::block_in_place(|| {
                self.cache
                    .lookup(&req.registry, req.repo.as_str(), &req.reference)
            })?,
        };
        if let PullDecision::UseCache(d) = decide(req.policy, &lookup, &shown)? {
            if let Some(b) = tokio::task::block_in_place(|| self.cache.read_blob(&d))? {
                return Ok((b, d, true));
            }
            req.policy.on_blob_miss(&d)?;
        }
        let (b, d) = self.fetch_manifest().await?;
        Ok((b, d, false))
    }

    /// The blob's path in the cache, fetching it when the policy asks for it or it is missing
    /// (or corrupt).
    async fn blob(&mut self, d: &Descriptor, what: &str) -> Result<PathBuf, ClientError> {
        if let Some(path) = self.cached(d)? {
            return Ok(path);
        }
        let meter = self.progress.meter(what, d.size);
        let res = self.download(d, meter.clone()).await;
        finish(meter.as_ref());
        res
    }

    /// The blob's path in the cache when the policy lets the cache answer and it holds the blob
    /// (verified per `verify_cached`); `None` when it must be downloaded (an error with `never`).
    fn cached(&self, d: &Descriptor) -> Result<Option<PathBuf>, ClientError> {
        if self.req.policy.uses_cache() {
            if let Some(b) = tokio::task::block_in_place(|| self.cache.get_blob(&d.digest))? {
                return Ok(Some(b.path));
            }
            self.req.policy.on_blob_miss(&d.digest)?;
        }
        Ok(None)
    }

    /// Downloads the layer once and uses the stream twice, in a blocking thread: it is written
    /// into a cache temporary file and unpacked into a staging directory beside `dest`. Only
    /// when the download's size and digest check out is the cache file fsynced and renamed into
    /// place and the staging tree moved to `dest`; on any failure both are deleted.
    async fn download_and_unpack(
        &mut self,
        d: &Descriptor,
        dest: &Path,
    ) -> Result<UnpackReport, ClientError> {
        // The download below verifies the digest of exactly these bytes: no second hash.
        let writer = tokio::task::block_in_place(|| self.cache.blob_writer(&d.digest, false))?;
        let (pipe_w, pipe_r) = pipe(PIPE_DEPTH);
        let (media_type, out) = (d.media_type.clone(), dest.to_path_buf());
        let job = tokio::task::spawn_blocking(
            move || -> Result<(StagedUnpack, BlobWriter), ClientError> {
                let mut tee = TeeReader::new(pipe_r, writer);
                let staged = unpack_staged(&mut tee, &media_type, &out)?;
                // Whatever follows the archive's end marker still belongs to the blob.
                tee.drain().map_err(|e| ClientError::Io {
                    context: "cannot read the layer".to_owned(),
                    source: e,
                })?;
                Ok((staged, tee.into_parts().1))
            },
        );
        let meter = self.progress.meter("layer", d.size);
        let mut w = CountingWriter::new(pipe_w, meter.clone());
        let pulled = self
            .registry()?
            .pull_blob(&self.req.repo, &d.digest, &mut w)
            .await;
        finish(meter.as_ref());
        let pipe_w = w.into_inner();
        // End the stream cleanly only after a verified download; otherwise the unpacker fails.
        let ended = match &pulled {
            Ok(_) => pipe_w.finish_async().await,
            Err(_) => {
                drop(pipe_w);
                Ok(())
            }
        };
        let unpacked = job
            .await
            .map_err(|e| ClientError::task("the unpacking task failed", e))?;
        match (pulled, unpacked) {
            // The unpacker stopped reading (unsafe entry, ...): its error is the cause.
            (Err(ClientError::Io { .. }), Err(ue)) | (Ok(_), Err(ue)) => Err(ClientError::context(
                format!("unpacking into {}", dest.display()),
                ue,
            )),
            (Err(e), _) => Err(ClientError::context(
                format!("downloading blob {}", d.digest),
                e,
            )),
            (Ok(n), Ok((staged, writer))) => {
                ended.map_err(|e| ClientError::local_io("ending the layer stream", e))?;
                check_size(d, n)?;
                tokio::task::block_in_place(|| writer.commit(n))?;
                tokio::task::block_in_place(|| staged.commit())
            }
        }
    }

    /// Streams a blob into the cache: a temporary file in `tmp/`, digest and size checked while
    /// streaming, fsync, then renamed into `blobs/`.
    async fn download(
        &mut self,
        d: &Descriptor,
        meter: Option<Arc<dyn Meter>>,
    ) -> Result<PathBuf, ClientError> {
        let tmp_dir = self.cache.root().join("tmp");
        let tmp = tempfile::Builder::new()
            .prefix("pull-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| {
                let what = format!("creating a temporary file in {}", tmp_dir.display());
                ClientError::local_io(what, e)
            })?;
        let write_err = |e| ClientError::local_io("writing the downloaded blob", e);
        let file = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(write_err)?);
        let mut w = tokio::io::BufWriter::with_capacity(1 << 20, CountingWriter::new(file, meter));
        let n = self
            .registry()?
            .pull_blob(&self.req.repo, &d.digest, &mut w)
            .await
            .map_err(|e| ClientError::context(format!("downloading blob {}", d.digest), e))?;
        w.flush().await.map_err(write_err)?;
        check_size(d, n)?;
        let file = w.into_inner().into_inner();
        file.sync_all()
            .await
            .map_err(|e| ClientError::local_io("syncing the downloaded blob", e))?;
        drop(file);
        let dest = self.cache.blob_path(&d.digest);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| ClientError::local_io(format!("creating {}", parent.display()), e))?;
        }
        tmp.persist(&dest)
            .map_err(|e| ClientError::local_io(format!("storing {}", dest.display()), e.error))?;
        if let Some(dir) = dest.parent().and_then(|p| fs::File::open(p).ok()) {
            let _ = dir.sync_all();
        }
        Ok(dest)
    }

    /// Unpacks the layer into `dest`: from the cache when it may answer, else downloaded and
    /// unpacked in one pass. Returns what was unpacked and whether the layer was cached.
    async fn layer(
        &mut self,
        layer: &Descriptor,
        dest: &Path,
    ) -> Result<(UnpackReport, bool), ClientError> {
        let Some(layer_path) = self.cached(layer)? else {
            self.progress.status(&format!(
                "downloading and unpacking into {} ...",
                dest.display()
            ));
            return Ok((self.download_and_unpack(layer, dest).await?, false));
        };
        self.progress
            .status(&format!("unpacking into {} ...", dest.display()));
        let report = tokio::task::block_in_place(|| -> Result<_, ClientError> {
            let f = fs::File::open(&layer_path).map_err(|e| {
                ClientError::local_io(format!("opening {}", layer_path.display()), e)
            })?;
            unpack(
                BufReader::with_capacity(1 << 20, f),
                &layer.media_type,
                dest,
            )
        })?;
        Ok((report, true))
    }
}

fn check_size(d: &Descriptor, n: u64) -> Result<(), ClientError> {
    if n != d.size {
        return Err(ClientError::Invalid(format!(
            "blob {}: the manifest says {} bytes, got {n}",
            d.digest, d.size
        )));
    }
    Ok(())
}

/// The one layer of an artifact manifest (an index, or any other layer count, is refused).
fn single_layer<'m>(
    parsed: &'m ParsedManifest,
    shown: &str,
) -> Result<&'m Descriptor, ClientError> {
    if parsed.kind.is_index() {
        return Err(ClientError::Invalid(format!(
            "{shown} is an index ({}); pull one of its manifests by digest",
            parsed.media_type
        )));
    }
    match parsed.layers.as_slice() {
        [layer] => Ok(layer),
        layers => Err(ClientError::Invalid(format!(
            "{shown} has {} layers; ocireg artifacts have exactly one",
            layers.len()
        ))),
    }
}

/// Pulls `req.reference` into `req.dest` through `cache`, per `req.policy`.
///
/// | policy | fresh cache entry | expired | absent |
/// | --- | --- | --- | --- |
/// | `always` | fetch | fetch | fetch |
/// | `if-not-present` | use cache | fetch | fetch |
/// | `never` | use cache | error | error |
///
/// Whatever is fetched is stored in the cache. `connect` is called at most once, and only when
/// the registry is needed.
pub async fn pull_artifact(
    req: &PullRequest,
    cache: &Cache,
    connect: &mut Connect<'_>,
    progress: &dyn Progress,
) -> Result<PullReport, ClientError> {
    prepare_dest(&req.dest)?;
    let mut p = Puller {
        req,
        cache,
        connect,
        reg: None,
        progress,
    };
    let shown = p.shown();
    let (manifest, digest, manifest_cached) = p.manifest().await?;
    let parsed = ocireg_oci::parse_manifest(&manifest, None)
        .map_err(|e| ClientError::Invalid(format!("manifest {digest} of {shown}: {e}")))?;
    let layer = single_layer(&parsed, &shown)?;
    if let Some(cfg) = &parsed.config {
        if cfg.digest.to_string() != media_types::OCI_EMPTY_JSON_DIGEST {
            p.blob(cfg, "config").await?;
        }
    }
    let (unpacked, layer_cached) = p.layer(layer, &req.dest).await?;
    let kind = parsed.artifact_type.as_deref().and_then(|t| {
        ArtifactKind::from_artifact_type(
            t,
            parsed
                .annotations
                .get(annotations::CUSTOM_KEY)
                .map(String::as_str),
        )
    });
    Ok(PullReport {
        digest,
        manifest_cached,
        layer_cached,
        unpacked,
        artifact_type: parsed.artifact_type.clone(),
        kind,
        cache: cache.stats(),
    })
}
