//! Deterministic packing of a file or directory into one tar layer, streamed to a file in the
//! output directory while both the tar stream and the (optionally gzip-compressed) layer are
//! hashed; plus the config blob and manifest that describe it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use ocireg_oci::{media_types, Algorithm, Descriptor, Digest, DigestHasher};
use tar::{EntryType, Header};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::hashio::{HashingWriter, BUF_SIZE};
use super::kinds::{annotations, ArtifactKind};
use super::manifest::{build_manifest, manifest_annotations, ArtifactConfig, LayerInfo};
use super::paths::confined_resolve;
use super::{ClientError, Result, CONFIG_SCHEMA_VERSION};

/// The modification time written in every tar header (the Unix epoch), so that packing does not
/// depend on when the files were touched.
pub const TAR_MTIME: u64 = 0;

/// Read buffer for the content of packed files.
const FILE_READ_BUF: usize = 1 << 20;

/// What to pack and how.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The artifact kind (decides `artifactType` and config media type).
    pub kind: ArtifactKind,
    /// gzip level 0-9, or `None` for an uncompressed tar layer.
    pub compression: Option<u32>,
    /// Artifact name (`org.opencontainers.image.title`; the layer is titled `<name>.tar[.gz]`).
    pub name: String,
    /// Artifact version (`org.opencontainers.image.version`).
    pub version: Option<String>,
    /// Creation time (`org.opencontainers.image.created`). Makes the config and manifest
    /// digests time-dependent; the layer digest never depends on it.
    pub created: Option<OffsetDateTime>,
    /// Extra manifest annotations (may not use the `dev.provisioning.artifact.` prefix).
    pub annotations: BTreeMap<String, String>,
    /// Why the layer is stored uncompressed although compression was asked for (see
    /// [`super::compression_skip_reason`]); recorded in the config and on the layer.
    pub compression_skipped: Option<String>,
}

impl PackOptions {
    /// Options with no compression, version, creation time or extra annotations.
    pub fn new(kind: ArtifactKind, name: impl Into<String>) -> PackOptions {
        PackOptions {
            kind,
            compression: None,
            name: name.into(),
            version: None,
            created: None,
            annotations: BTreeMap::new(),
            compression_skipped: None,
        }
    }
}

/// A blob written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobFile {
    /// Where the blob is (`<out_dir>/layer-<hex>.tar[.gz]`).
    pub path: PathBuf,
    /// Its descriptor.
    pub descriptor: Descriptor,
}

/// A small blob held in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Their descriptor.
    pub descriptor: Descriptor,
}

/// What a pack produced: the layer file, the config and manifest blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedArtifact {
    /// The tar (or tar+gzip) layer on disk.
    pub layer: BlobFile,
    /// The config blob.
    pub config: Blob,
    /// The image manifest; its digest identifies the artifact.
    pub manifest: Blob,
    /// The parsed config (same content as `config.bytes`).
    pub metadata: ArtifactConfig,
}

/// Counts gathered while packing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub directories: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Sum of regular file sizes.
    pub total_size: u64,
}

/// Packs `path` (a file or a directory) into an artifact whose layer is written to `out_dir`.
///
/// The layer is streamed (bounded memory whatever the input size) and deterministic: entries in
/// byte order of their paths, mtime [`TAR_MTIME`], uid/gid 0, empty user/group names, modes
/// normalised to 0755 (directories, and files with any executable bit) or 0644, gzip without
/// name or timestamp and OS byte 255. Symlinks are kept when they resolve inside the packed
/// directory (refused otherwise); hard links are stored as regular files; other special files
/// and non-UTF-8 names are refused. A single file becomes a one-entry tar named by its file name.
pub fn pack(path: &Path, opts: &PackOptions, out_dir: &Path) -> Result<PackedArtifact> {
    validate(opts)?;
    let tmp = tempfile::Builder::new()
        .prefix(".ocireg-pack-")
        .tempfile_in(out_dir)
        .map_err(|e| ClientError::io_path("cannot create a temporary file in", out_dir, e))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| ClientError::io_path("cannot open", tmp.path(), e))?;
    let (packed, writer) = pack_core(
        path,
        opts,
        BufWriter::with_capacity(BUF_SIZE, file),
        Some(out_dir),
    )?;
    let tar_io = |e| ClientError::io_path("cannot write the layer to", tmp.path(), e);
    let file = writer.into_inner().map_err(|e| tar_io(e.into_error()))?;
    file.sync_all().map_err(tar_io)?;
    drop(file);

    let final_path = out_dir.join(format!(
        "layer-{}.{}",
        packed.layer.digest.hex(),
        layer_ext(opts)
    ));
    tmp.persist(&final_path)
        .map_err(|e| ClientError::io_path("cannot move the layer to", &final_path, e.error))?;
    Ok(PackedArtifact {
        layer: BlobFile {
            path: final_path,
            descriptor: packed.layer,
        },
        config: packed.config,
        manifest: packed.manifest,
        metadata: packed.metadata,
    })
}

/// What [`pack_to_writer`] produced: the layer's descriptor (the layer bytes went to the
/// writer), the config and manifest blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedStream {
    /// The layer's descriptor (digest and size of exactly the bytes written).
    pub layer: Descriptor,
    /// The config blob.
    pub config: Blob,
    /// The image manifest.
    pub manifest: Blob,
    /// The parsed config (same content as `config.bytes`).
    pub metadata: ArtifactConfig,
}

/// Packs `path` like [`pack`], but streams the layer bytes into `writer` instead of a file (for
/// uploading while packing). Same bytes and digests as [`pack`] for the same input and options.
/// Returns the descriptors and the writer (flushed).
pub fn pack_to_writer<W: Write>(
    path: &Path,
    opts: &PackOptions,
    writer: W,
) -> Result<(PackedStream, W)> {
    validate(opts)?;
    let (packed, mut writer) = pack_core(path, opts, writer, None)?;
    writer.flush().map_err(|e| ClientError::Io {
        context: "cannot write the layer".to_owned(),
        source: e,
    })?;
    Ok((packed, writer))
}

fn validate(opts: &PackOptions) -> Result<()> {
    if let Some(level) = opts.compression {
        if level > 9 {
            return Err(ClientError::InvalidOption(format!(
                "compression level must be 0-9, got {level}"
            )));
        }
    }
    if opts.name.is_empty() {
        return Err(ClientError::InvalidOption(
            "artifact name must not be empty".to_owned(),
        ));
    }
    Ok(())
}

fn layer_ext(opts: &PackOptions) -> &'static str {
    if opts.compression.is_some() {
        "tar.gz"
    } else {
        "tar"
    }
}

/// Packs into `writer`; `exclude` is a directory that must not lie inside a packed directory
/// (where the layer file is being written).
fn pack_core<W: Write>(
    path: &Path,
    opts: &PackOptions,
    writer: W,
    exclude: Option<&Path>,
) -> Result<(PackedStream, W)> {
    let created = opts.created.map(format_created).transpose()?;
    // Validate annotations before doing any heavy work.
    let manifest_annots = manifest_annotations(
        &opts.kind,
        &opts.name,
        opts.version.as_deref(),
        created.as_deref(),
        &opts.annotations,
    )?;
    let meta = fs::metadata(path).map_err(|e| ClientError::io_path("cannot read", path, e))?;
    let mut builder = layer_builder(writer, opts.compression);
    let mut stats = PackStats::default();
    let source = append_source(&mut builder, path, &meta, exclude, &mut stats)?;
    let (writer, layer) = finish_layer(builder)?;

    let ext = layer_ext(opts);
    let mut layer_desc = Descriptor::new(layer.media_type, layer.digest, layer.size);
    let short_name = opts.name.rsplit('/').next().unwrap_or(&opts.name);
    let mut layer_annots =
        BTreeMap::from([(annotations::TITLE.to_owned(), format!("{short_name}.{ext}"))]);
    let skipped = opts
        .compression_skipped
        .clone()
        .filter(|_| opts.compression.is_none());
    if let Some(why) = &skipped {
        layer_annots.insert(annotations::COMPRESSION_SKIPPED.to_owned(), why.clone());
    }
    layer_desc.annotations = Some(layer_annots);
    let metadata = ArtifactConfig {
        schema_version: CONFIG_SCHEMA_VERSION,
        kind: opts.kind.as_string(),
        custom_key: opts.kind.custom_key().map(str::to_owned),
        name: opts.name.clone(),
        version: opts.version.clone(),
        created,
        source: source.to_owned(),
        files: stats.files,
        directories: stats.directories,
        symlinks: stats.symlinks,
        total_size: stats.total_size,
        layer: LayerInfo {
            media_type: layer.media_type.to_owned(),
            compression: if opts.compression.is_some() {
                "gzip"
            } else {
                "none"
            }
            .to_owned(),
            compression_level: opts.compression,
            compression_skipped: skipped,
            diff_id: layer.diff_id,
            tar_size: layer.tar_size,
        },
    };
    let packed = describe(opts, layer_desc, metadata, &manifest_annots)?;
    Ok((packed, writer))
}

/// The config blob and the manifest for a packed layer.
fn describe(
    opts: &PackOptions,
    layer: Descriptor,
    metadata: ArtifactConfig,
    manifest_annots: &BTreeMap<String, String>,
) -> Result<PackedStream> {
    let config_bytes = metadata.to_bytes()?;
    let config_desc = Descriptor::new(
        opts.kind.config_media_type(),
        Digest::compute(Algorithm::Sha256, &config_bytes),
        config_bytes.len() as u64,
    );
    let (manifest_bytes, manifest_desc) =
        build_manifest(&opts.kind, &config_desc, &layer, manifest_annots)?;
    Ok(PackedStream {
        layer,
        config: Blob {
            bytes: config_bytes,
            descriptor: config_desc,
        },
        manifest: Blob {
            bytes: manifest_bytes,
            descriptor: manifest_desc,
        },
        metadata,
    })
}

/// A tar builder over `writer`, hashing the tar stream and, with compression, the gzip stream.
fn layer_builder<W: Write>(writer: W, compression: Option<u32>) -> LayerBuilder<W> {
    let sink = match compression {
        None => Sink::Plain(writer),
        Some(level) => {
            let counted = HashingWriter::new(writer, DigestHasher::new(Algorithm::Sha256));
            let enc = GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(counted, Compression::new(level));
            Sink::Gzip(Box::new(enc))
        }
    };
    tar::Builder::new(HashingWriter::new(
        sink,
        DigestHasher::new(Algorithm::Sha256),
    ))
}

/// Appends `path` (a directory's tree, or one file under its own name); returns which it was.
fn append_source<W: Write>(
    builder: &mut LayerBuilder<W>,
    path: &Path,
    meta: &fs::Metadata,
    exclude: Option<&Path>,
    stats: &mut PackStats,
) -> Result<&'static str> {
    if meta.is_dir() {
        let root =
            fs::canonicalize(path).map_err(|e| ClientError::io_path("cannot resolve", path, e))?;
        if let Some(out_dir) = exclude {
            let out = fs::canonicalize(out_dir)
                .map_err(|e| ClientError::io_path("cannot resolve", out_dir, e))?;
            if out.starts_with(&root) {
                return Err(ClientError::InvalidOption(format!(
                    "the output directory {} lies inside the directory being packed",
                    out_dir.display()
                )));
            }
        }
        let mut rel = Vec::new();
        walk_dir(builder, &root, &mut rel, stats)?;
        Ok("directory")
    } else if meta.is_file() {
        let name = path
            .file_name()
            .ok_or_else(|| unsupported(path, "a file to pack needs a file name"))?;
        let name = name
            .to_str()
            .ok_or_else(|| unsupported(path, "file name is not valid UTF-8"))?;
        append_file(builder, path, name, stats)?;
        Ok("file")
    } else {
        Err(unsupported(path, "neither a regular file nor a directory"))
    }
}

/// The layer as written: digest, size and media type of the bytes the writer got, and the
/// uncompressed tar stream's digest (`diff_id`) and size.
struct LayerOutput {
    digest: Digest,
    size: u64,
    media_type: &'static str,
    diff_id: Digest,
    tar_size: u64,
}

/// Ends the tar stream (and gzip); returns the writer and what was written.
fn finish_layer<W: Write>(builder: LayerBuilder<W>) -> Result<(W, LayerOutput)> {
    let tar_io = |e| ClientError::Io {
        context: "cannot write the layer".to_owned(),
        source: e,
    };
    let (sink, tar_hasher) = builder.into_inner().map_err(tar_io)?.into_parts();
    let tar_size = tar_hasher.bytes_hashed();
    let diff_id = tar_hasher.finish();
    let (writer, digest, size, media_type) = match sink {
        Sink::Plain(w) => (w, diff_id.clone(), tar_size, media_types::OCI_LAYER_TAR),
        Sink::Gzip(enc) => {
            let (w, h) = enc.finish().map_err(tar_io)?.into_parts();
            let size = h.bytes_hashed();
            (w, h.finish(), size, media_types::OCI_LAYER_TAR_GZIP)
        }
    };
    Ok((
        writer,
        LayerOutput {
            digest,
            size,
            media_type,
            diff_id,
            tar_size,
        },
    ))
}

fn format_created(t: OffsetDateTime) -> Result<String> {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| ClientError::InvalidOption(format!("created time cannot be formatted: {e}")))
}

fn unsupported(path: &Path, reason: &str) -> ClientError {
    ClientError::UnsupportedSource {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    }
}

/// Where the tar stream goes: straight to the writer, or through gzip and a second hasher.
enum Sink<W: Write> {
    Plain(W),
    Gzip(Box<GzEncoder<HashingWriter<W>>>),
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}

type LayerBuilder<W> = tar::Builder<HashingWriter<Sink<W>>>;

/// A header with every field that could vary between machines or runs pinned.
fn header(kind: EntryType, mode: u32, size: u64) -> io::Result<Header> {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(TAR_MTIME);
    h.set_size(size);
    h.set_username("")?;
    h.set_groupname("")?;
    Ok(h)
}

fn tar_err(path: &Path) -> impl Fn(io::Error) -> ClientError + '_ {
    move |e| ClientError::io_path("cannot add to the layer:", path, e)
}

/// Appends the entries below `root/rel` in byte order of their names, depth first.
fn walk_dir<W: Write>(
    builder: &mut LayerBuilder<W>,
    root: &Path,
    rel: &mut Vec<String>,
    stats: &mut PackStats,
) -> Result<()> {
    let dir = rel.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    let reader = fs::read_dir(&dir).map_err(|e| ClientError::io_path("cannot list", &dir, e))?;
    let mut names = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|e| ClientError::io_path("cannot list", &dir, e))?;
        let name = entry.file_name();
        let name = name
            .into_string()
            .map_err(|_| unsupported(&entry.path(), "file name is not valid UTF-8"))?;
        names.push(name);
    }
    names.sort_unstable();
    for name in names {
        let abs = dir.join(&name);
        rel.push(name);
        let archive_path = rel.join("/");
        let meta =
            fs::symlink_metadata(&abs).map_err(|e| ClientError::io_path("cannot read", &abs, e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = header(EntryType::Directory, 0o755, 0).map_err(tar_err(&abs))?;
            builder
                .append_data(&mut h, format!("{archive_path}/"), io::empty())
                .map_err(tar_err(&abs))?;
            stats.directories += 1;
            walk_dir(builder, root, rel, stats)?;
        } else if ft.is_file() {
            append_file(builder, &abs, &archive_path, stats)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&abs)
                .map_err(|e| ClientError::io_path("cannot read link", &abs, e))?;
            let link_dir: Vec<OsString> = rel[..rel.len() - 1].iter().map(OsString::from).collect();
            confined_resolve(root, &link_dir, &target)
                .map_err(|reason| unsupported(&abs, &reason))?;
            if target.to_str().is_none() {
                return Err(unsupported(&abs, "symlink target is not valid UTF-8"));
            }
            let mut h = header(EntryType::Symlink, 0o777, 0).map_err(tar_err(&abs))?;
            builder
                .append_link(&mut h, &archive_path, &target)
                .map_err(tar_err(&abs))?;
            stats.symlinks += 1;
        } else {
            return Err(unsupported(
                &abs,
                "special files (devices, FIFOs, sockets) cannot be packed",
            ));
        }
        rel.pop();
    }
    Ok(())
}

/// Appends one regular file, streaming its content; fails if the file shrinks meanwhile.
fn append_file<W: Write>(
    builder: &mut LayerBuilder<W>,
    abs: &Path,
    archive_path: &str,
    stats: &mut PackStats,
) -> Result<()> {
    let file = File::open(abs).map_err(|e| ClientError::io_path("cannot open", abs, e))?;
    let meta = file
        .metadata()
        .map_err(|e| ClientError::io_path("cannot read", abs, e))?;
    if !meta.is_file() {
        return Err(unsupported(
            abs,
            "changed into a non-regular file while packing",
        ));
    }
    let size = meta.len();
    let mode = if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    let mut h = header(EntryType::Regular, mode, size).map_err(tar_err(abs))?;
    // A large read buffer: `io::copy` (inside tar) reads through it in big pieces.
    let mut reader = io::BufReader::with_capacity(
        FILE_READ_BUF,
        CountingReader {
            inner: file.take(size),
            count: 0,
        },
    );
    builder
        .append_data(&mut h, archive_path, &mut reader)
        .map_err(tar_err(abs))?;
    if reader.get_ref().count != size {
        return Err(unsupported(abs, "file shrank while it was being packed"));
    }
    stats.files += 1;
    stats.total_size = stats.total_size.saturating_add(size);
    Ok(())
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
