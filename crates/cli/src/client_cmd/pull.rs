//! `ocireg pull REF [-o DIR]`: resolve the reference through the pull policy and the local
//! cache, fetch what is missing into the cache (verified while streaming), and unpack the
//! layer safely into DIR.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ocireg_client::artifact::{
    annotations, decide, pipe, unpack, unpack_staged, ArtifactError, ArtifactKind, BlobWriter,
    Cache, PullDecision, PullPolicy, RefLookup, StagedUnpack, TeeReader, UnpackReport,
};
use ocireg_client::{ClientError, Registry};
use ocireg_oci::{media_types, Descriptor, Digest, Reference, RepoName};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::refs::{display, parse_ref};
use super::settings::{Ctx, Endpoint};
use super::ui::{self, CountingWriter, Ui};
use super::PullArgs;

/// Blocks of [`ocireg_client::artifact::PIPE_BLOCK`] bytes that may wait between the download
/// and the unpacker.
const PIPE_DEPTH: usize = 8;

/// Fails early when `dest` exists and is not an empty directory; creates its parent.
fn prepare_dest(dest: &Path) -> anyhow::Result<()> {
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} exists and is not empty", dest.display());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
        }
        Err(_) if dest.exists() => bail!("{} exists and is not a directory", dest.display()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dest.display())),
    }
    Ok(())
}

/// One pull: the registry (connected lazily: `never` must not need it) and the cache.
struct Puller<'a> {
    ctx: &'a Ctx,
    ui: Ui,
    ep: Endpoint,
    repo: RepoName,
    policy: PullPolicy,
    cache: Cache,
    reg: Option<Registry>,
}

impl Puller<'_> {
    fn registry(&mut self) -> anyhow::Result<&Registry> {
        if self.reg.is_none() {
            self.reg = Some(self.ctx.registry(&self.ep)?);
        }
        self.reg.as_ref().context("registry client")
    }

    /// Fetches the manifest from the registry and stores it (and the tag entry) in the cache.
    async fn fetch_manifest(&mut self, reference: &Reference) -> anyhow::Result<(Vec<u8>, Digest)> {
        let repo = self.repo.clone();
        let accept = [media_types::OCI_MANIFEST, media_types::DOCKER_MANIFEST];
        let m = self
            .registry()?
            .get_manifest(&repo, reference, &accept)
            .await
            .with_context(|| {
                format!(
                    "fetching the manifest of {}/{repo}:{reference}",
                    self.ep.host
                )
            })?;
        let bytes = m.bytes.to_vec();
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            self.cache.put_blob(&bytes, &m.digest)?;
            if let Reference::Tag(t) = reference {
                self.cache
                    .put_ref(&self.ep.host, repo.as_str(), t.as_str(), &m.digest)?;
            }
            Ok(())
        })?;
        Ok((bytes, m.digest))
    }

    /// The blob's path in the cache, fetching it when the policy asks for it or it is missing
    /// (or corrupt). Returns whether it came from the cache.
    async fn blob(&mut self, d: &Descriptor, what: &str) -> anyhow::Result<(PathBuf, bool)> {
        if let Some(path) = self.cached(d)? {
            return Ok((path, true));
        }
        let bar = self.ui.bar(d.size, what);
        let res = self.download(d, bar.clone()).await;
        ui::finish(bar.as_ref());
        Ok((res?, false))
    }

    /// The blob's path in the cache when the policy lets the cache answer and it holds the blob
    /// (verified per `verify_cached`); `None` when it must be downloaded (an error with `never`).
    fn cached(&mut self, d: &Descriptor) -> anyhow::Result<Option<PathBuf>> {
        if self.policy.uses_cache() {
            if let Some(b) = tokio::task::block_in_place(|| self.cache.get_blob(&d.digest))? {
                return Ok(Some(b.path));
            }
            self.policy.on_blob_miss(&d.digest)?;
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
    ) -> anyhow::Result<UnpackReport> {
        // The download below verifies the digest of exactly these bytes: no second hash.
        let writer = tokio::task::block_in_place(|| self.cache.blob_writer(&d.digest, false))?;
        let (pipe_w, pipe_r) = pipe(PIPE_DEPTH);
        let (media_type, out) = (d.media_type.clone(), dest.to_path_buf());
        let job = tokio::task::spawn_blocking(
            move || -> Result<(StagedUnpack, BlobWriter), ArtifactError> {
                let mut tee = TeeReader::new(pipe_r, writer);
                let staged = unpack_staged(&mut tee, &media_type, &out)?;
                // Whatever follows the archive's end marker still belongs to the blob.
                tee.drain().map_err(|e| ArtifactError::Io {
                    context: "cannot read the layer".to_owned(),
                    source: e,
                })?;
                Ok((staged, tee.into_parts().1))
            },
        );
        let bar = self.ui.bar(d.size, "layer");
        let mut w = CountingWriter::new(pipe_w, bar.clone());
        let repo = self.repo.clone();
        let pulled = self.registry()?.pull_blob(&repo, &d.digest, &mut w).await;
        ui::finish(bar.as_ref());
        let pipe_w = w.into_inner();
        // End the stream cleanly only after a verified download; otherwise the unpacker fails.
        let ended = match &pulled {
            Ok(_) => pipe_w.finish_async().await,
            Err(_) => {
                drop(pipe_w);
                Ok(())
            }
        };
        let unpacked = job.await.context("the unpacking task failed")?;
        match (pulled, unpacked) {
            // The unpacker stopped reading (unsafe entry, ...): its error is the cause.
            (Err(ClientError::Io { .. }), Err(ue)) | (Ok(_), Err(ue)) => {
                Err(ue).with_context(|| format!("unpacking into {}", dest.display()))
            }
            (Err(e), _) => Err(e).with_context(|| format!("downloading blob {}", d.digest)),
            (Ok(n), Ok((staged, writer))) => {
                ended.context("ending the layer stream")?;
                if n != d.size {
                    bail!(
                        "blob {}: the manifest says {} bytes, got {n}",
                        d.digest,
                        d.size
                    );
                }
                tokio::task::block_in_place(|| writer.commit(n))?;
                Ok(tokio::task::block_in_place(|| staged.commit())?)
            }
        }
    }

    /// Streams a blob into the cache: a temporary file in `tmp/`, digest and size checked while
    /// streaming, fsync, then renamed into `blobs/`.
    async fn download(
        &mut self,
        d: &Descriptor,
        bar: Option<indicatif::ProgressBar>,
    ) -> anyhow::Result<PathBuf> {
        let tmp_dir = self.cache.root().join("tmp");
        let tmp = tempfile::Builder::new()
            .prefix("pull-")
            .tempfile_in(&tmp_dir)
            .with_context(|| format!("creating a temporary file in {}", tmp_dir.display()))?;
        let file = tokio::fs::File::from_std(tmp.as_file().try_clone()?);
        let mut w = tokio::io::BufWriter::with_capacity(1 << 20, CountingWriter::new(file, bar));
        let repo = self.repo.clone();
        let n = self
            .registry()?
            .pull_blob(&repo, &d.digest, &mut w)
            .await
            .with_context(|| format!("downloading blob {}", d.digest))?;
        w.flush().await?;
        if n != d.size {
            bail!(
                "blob {}: the manifest says {} bytes, got {n}",
                d.digest,
                d.size
            );
        }
        let file = w.into_inner().into_inner();
        file.sync_all()
            .await
            .context("syncing the downloaded blob")?;
        drop(file);
        let dest = self.cache.blob_path(&d.digest);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        tmp.persist(&dest)
            .map_err(|e| e.error)
            .with_context(|| format!("storing {}", dest.display()))?;
        if let Some(dir) = dest.parent().and_then(|p| fs::File::open(p).ok()) {
            let _ = dir.sync_all();
        }
        Ok(dest)
    }
}

/// Runs `ocireg pull`.
pub(crate) async fn run(ctx: &Ctx, a: PullArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference)?;
    let ep = ctx.endpoint(r.registry.as_deref(), r.scheme);
    let reference = r.reference()?;
    let policy: PullPolicy = ctx.doc.pull_policy.policy.as_str().parse()?;
    let shown = display(&ep.host, &r.repo, &reference);
    let dest = match a.output {
        Some(d) => d,
        None => PathBuf::from(r.repo.components().last().unwrap_or("artifact")),
    };
    prepare_dest(&dest)?;
    let cache = ctx.cache()?;
    let lookup = match policy {
        PullPolicy::Always => RefLookup::Absent,
        _ => tokio::task::block_in_place(|| cache.lookup(&ep.host, r.repo.as_str(), &reference))?,
    };
    let decision = decide(policy, &lookup, &shown)?;
    let mut p = Puller {
        ctx,
        ui,
        ep: ep.clone(),
        repo: r.repo.clone(),
        policy,
        cache,
        reg: None,
    };
    let (manifest, digest, manifest_cached) = match decision {
        PullDecision::UseCache(d) => match tokio::task::block_in_place(|| p.cache.read_blob(&d))? {
            Some(b) => (b, d, true),
            None => {
                policy.on_blob_miss(&d)?;
                let (b, d) = p.fetch_manifest(&reference).await?;
                (b, d, false)
            }
        },
        PullDecision::Fetch => {
            let (b, d) = p.fetch_manifest(&reference).await?;
            (b, d, false)
        }
    };
    let parsed = ocireg_oci::parse_manifest(&manifest, None)
        .map_err(|e| anyhow::anyhow!("manifest {digest} of {shown}: {e}"))?;
    if parsed.kind.is_index() {
        bail!(
            "{shown} is an index ({}); pull one of its manifests by digest",
            parsed.media_type
        );
    }
    let [layer] = parsed.layers.as_slice() else {
        bail!(
            "{shown} has {} layers; ocireg artifacts have exactly one",
            parsed.layers.len()
        );
    };
    if let Some(cfg) = &parsed.config {
        if cfg.digest.to_string() != media_types::OCI_EMPTY_JSON_DIGEST {
            p.blob(cfg, "config").await?;
        }
    }
    let layer_path = p.cached(layer)?;
    let layer_cached = layer_path.is_some();
    let report = match layer_path {
        Some(layer_path) => {
            ui.status(&format!("unpacking into {} ...", dest.display()));
            tokio::task::block_in_place(|| -> anyhow::Result<_> {
                let f = fs::File::open(&layer_path)
                    .with_context(|| format!("opening {}", layer_path.display()))?;
                Ok(unpack(
                    BufReader::with_capacity(1 << 20, f),
                    &layer.media_type,
                    &dest,
                )?)
            })?
        }
        None => {
            ui.status(&format!(
                "downloading and unpacking into {} ...",
                dest.display()
            ));
            p.download_and_unpack(layer, &dest).await?
        }
    };
    let kind = parsed.artifact_type.as_deref().and_then(|t| {
        ArtifactKind::from_artifact_type(
            t,
            parsed
                .annotations
                .get(annotations::CUSTOM_KEY)
                .map(String::as_str),
        )
    });
    let stats = p.cache.stats();
    let json = json!({
        "reference": format!("{}/{}@{digest}", ep.host, r.repo),
        "registry": ep.host,
        "repository": r.repo.as_str(),
        "tag": r.tag.as_ref().map(|t| t.as_str()),
        "digest": digest.to_string(),
        "artifactType": parsed.artifact_type,
        "kind": kind.map(|k| k.as_string()),
        "output": dest.display().to_string(),
        "files": report.files,
        "directories": report.directories,
        "symlinks": report.symlinks,
        "bytes": report.bytes,
        "policy": policy.as_str(),
        "cached": { "manifest": manifest_cached, "layer": layer_cached },
        "cache": {
            "dir": p.cache.root().display().to_string(),
            "hits": stats.hits, "misses": stats.misses,
            "expired": stats.expired, "corrupt": stats.corrupt,
        },
    });
    let from = match (manifest_cached, layer_cached) {
        (true, true) => " (from cache)",
        (false, true) => " (layer from cache)",
        _ => "",
    };
    let text = format!(
        "pulled {shown}{from}\ndigest: {digest}\nunpacked into {}: {} files, {} directories, {}",
        dest.display(),
        report.files,
        report.directories,
        ui::human(report.bytes)
    );
    ui.result(&json, &digest.to_string(), &text);
    Ok(0)
}
