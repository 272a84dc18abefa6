//! Safe unpacking of a tar / tar+gzip layer into a directory.
//!
//! Everything is extracted into a fresh staging directory next to the destination (same parent,
//! so same filesystem) and renamed into place only once the whole archive was accepted; a refused
//! archive leaves the destination untouched. The rules are listed on [`unpack`].

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ocireg_oci::media_types;
use tar::{Archive, EntryType};

use super::paths::{confined_resolve, display, join, safe_relative};
use super::{ClientError, Result};

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created (explicit entries and implied parents).
    pub directories: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries skipped because they carry no file (PAX global headers).
    pub skipped: u64,
}

/// Largest write buffer for extracted file content.
const WRITE_BUF: usize = 1 << 20;

enum Compression {
    None,
    Gzip,
}

fn compression_for(media_type: &str) -> Result<Compression> {
    let e = media_types::essence(media_type);
    if e.eq_ignore_ascii_case(media_types::OCI_LAYER_TAR) {
        Ok(Compression::None)
    } else if e.eq_ignore_ascii_case(media_types::OCI_LAYER_TAR_GZIP)
        || e.eq_ignore_ascii_case(media_types::DOCKER_LAYER_GZIP)
    {
        Ok(Compression::Gzip)
    } else {
        Err(ClientError::UnsupportedMediaType(media_type.to_owned()))
    }
}

/// Unpacks the layer `layer` (gzip or plain tar according to `media_type`) into `dest`, which
/// must not exist or be an empty directory; its parent must exist.
///
/// Refused, failing the whole unpack with nothing left in `dest`: absolute paths; `..`
/// components; entries whose parent path passes through a symlink or a non-directory; an entry
/// whose path already exists (except a directory repeated); symlinks with an absolute target or
/// one that, resolved through the links of the final tree, leaves `dest`; hard links to anything
/// but an already-extracted regular file inside `dest`; character/block devices, FIFOs and other
/// entry types. Files get mode 0755 if any executable bit is set in the archive, else 0644;
/// directories 0755; owners and mtimes are not restored.
pub fn unpack(layer: impl Read, media_type: &str, dest: &Path) -> Result<UnpackReport> {
    unpack_staged(layer, media_type, dest)?.commit()
}

/// An archive extracted into a staging directory next to its destination, not yet moved
/// there: [`StagedUnpack::commit`] renames it into place; dropping it deletes the staging tree,
/// leaving the destination untouched. Lets a caller unpack while a download is still being
/// verified and publish the tree only once it is.
pub struct StagedUnpack {
    staging: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    report: UnpackReport,
}

impl std::fmt::Debug for StagedUnpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedUnpack")
            .field("staging", &self.root)
            .field("dest", &self.dest)
            .field("report", &self.report)
            .finish()
    }
}

impl StagedUnpack {
    /// What was extracted.
    pub fn report(&self) -> UnpackReport {
        self.report
    }

    /// Moves the extracted tree to the destination (which must still be absent or an empty
    /// directory).
    pub fn commit(self) -> Result<UnpackReport> {
        let StagedUnpack {
            staging,
            root,
            dest,
            report,
        } = self;
        fs::set_permissions(&root, Permissions::from_mode(0o755))
            .map_err(|e| ClientError::io_path("cannot set permissions on", &root, e))?;
        // Renaming over an empty directory replaces it (rename(2)); anything else fails here.
        fs::rename(&root, &dest).map_err(|e| match e.kind() {
            io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists => {
                ClientError::DestinationNotEmpty(dest.clone())
            }
            _ => ClientError::io_path("cannot move the unpacked tree to", &dest, e),
        })?;
        // The staging path is gone; make sure drop does not try to remove anything there.
        let _ = staging.keep();
        Ok(report)
    }
}

/// [`unpack`] up to, but not including, the final move into `dest`: checks the media type and
/// the destination, extracts everything into a staging directory beside `dest` under the same
/// rules, and returns it for [`StagedUnpack::commit`].
pub fn unpack_staged(layer: impl Read, media_type: &str, dest: &Path) -> Result<StagedUnpack> {
    let compression = compression_for(media_type)?;
    check_dest(dest)?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => {
            return Err(ClientError::InvalidOption(format!(
                "cannot unpack into {}: it has no parent directory",
                dest.display()
            )))
        }
    };
    let staging = tempfile::Builder::new()
        .prefix(".ocireg-unpack-")
        .tempdir_in(&parent)
        .map_err(|e| ClientError::io_path("cannot create a staging directory in", &parent, e))?;
    let root = fs::canonicalize(staging.path())
        .map_err(|e| ClientError::io_path("cannot resolve", staging.path(), e))?;

    let report = match compression {
        Compression::None => extract_all(layer, &root)?,
        Compression::Gzip => extract_all(MultiGzDecoder::new(layer), &root)?,
    };
    Ok(StagedUnpack {
        staging,
        root,
        dest: dest.to_path_buf(),
        report,
    })
}

fn check_dest(dest: &Path) -> Result<()> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClientError::io_path("cannot inspect", dest, e)),
        Ok(m) if m.is_dir() => {
            let mut entries =
                fs::read_dir(dest).map_err(|e| ClientError::io_path("cannot list", dest, e))?;
            if entries.next().is_some() {
                Err(ClientError::DestinationNotEmpty(dest.to_path_buf()))
            } else {
                Ok(())
            }
        }
        Ok(_) => Err(ClientError::DestinationNotEmpty(dest.to_path_buf())),
    }
}

/// Extracts every entry under `root`, then checks every symlink against the final tree.
fn extract_all<R: Read>(reader: R, root: &Path) -> Result<UnpackReport> {
    let mut archive = Archive::new(reader);
    let mut report = UnpackReport::default();
    let mut links: Vec<(Vec<OsString>, PathBuf)> = Vec::new();
    let read_err = |e| ClientError::Io {
        context: "cannot read the layer archive".to_owned(),
        source: e,
    };
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw_path = entry.path().map_err(read_err)?.into_owned();
        let shown = raw_path.to_string_lossy().into_owned();
        let refuse = |reason: &str| ClientError::UnsafeEntry {
            path: shown.clone(),
            reason: reason.to_owned(),
        };
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            report.skipped += 1;
            continue;
        }
        let comps = safe_relative(&raw_path).map_err(|r| refuse(&r))?;
        let Some((name, parents)) = comps.split_last() else {
            if kind == EntryType::Directory {
                continue; // "./": the root itself
            }
            return Err(refuse("empty path"));
        };
        let dir = ensure_parents(root, parents, &mut report).map_err(|r| refuse(&r))?;
        let target = dir.join(name);
        let existing = existing_entry(&target)?;
        let creates_file = matches!(
            kind,
            EntryType::Regular
                | EntryType::Continuous
                | EntryType::GNUSparse
                | EntryType::Symlink
                | EntryType::Link
        );
        if creates_file && existing.is_some() {
            return Err(refuse("duplicate entry: the path already exists"));
        }
        match kind {
            EntryType::Directory => match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => return Err(refuse("a directory entry would replace an existing entry")),
                None => {
                    make_dir(&target)?;
                    report.directories += 1;
                }
            },
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                confirm_inside(root, &dir).map_err(|r| refuse(&r))?;
                let exec = entry.header().mode().map_err(read_err)? & 0o111 != 0;
                let size = entry.size();
                report.bytes += write_file(&mut entry, &target, exec, size)?;
                report.files += 1;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(read_err)?
                    .ok_or_else(|| refuse("symlink without a target"))?
                    .into_owned();
                // Early, lexical check; the final check runs once the tree is complete.
                confined_resolve(root, parents, &link).map_err(|r| refuse(&r))?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| ClientError::io_path("cannot create symlink", &target, e))?;
                links.push((comps.clone(), link));
                report.symlinks += 1;
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(read_err)?
                    .ok_or_else(|| refuse("hard link without a target"))?
                    .into_owned();
                let source = hardlink_source(root, &link).map_err(|r| refuse(&r))?;
                fs::hard_link(&source, &target)
                    .map_err(|e| ClientError::io_path("cannot create hard link", &target, e))?;
                report.hardlinks += 1;
            }
            EntryType::Char | EntryType::Block => {
                return Err(refuse("device files are not allowed"))
            }
            EntryType::Fifo => return Err(refuse("FIFOs are not allowed")),
            other => return Err(refuse(&format!("unsupported entry type {other:?}"))),
        }
    }
    check_links(root, &links)?;
    Ok(report)
}

/// Checks every extracted symlink against the complete tree: each must resolve inside `root`.
fn check_links(root: &Path, links: &[(Vec<OsString>, PathBuf)]) -> Result<()> {
    for (comps, link) in links {
        let parents = &comps[..comps.len() - 1];
        confined_resolve(root, parents, link).map_err(|reason| ClientError::UnsafeEntry {
            path: display(comps),
            reason,
        })?;
    }
    Ok(())
}

/// What is already at `target` (not following a symlink there), if anything.
fn existing_entry(target: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(target) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::io_path("cannot inspect", target, e)),
    }
}

/// Walks (creating where missing) the parent directories of an entry. Every existing component
/// must be a real directory, never a symlink, so no later write can go through a link.
fn ensure_parents(
    root: &Path,
    parents: &[OsString],
    report: &mut UnpackReport,
) -> Result<PathBuf, String> {
    let mut cur = root.to_path_buf();
    for (i, c) in parents.iter().enumerate() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "parent {} is a symlink; writing through links is not allowed",
                    display(&parents[..=i])
                ))
            }
            Ok(_) => {
                return Err(format!(
                    "parent {} is not a directory",
                    display(&parents[..=i])
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_dir(&cur).map_err(|e| e.to_string())?;
                report.directories += 1;
            }
            Err(e) => return Err(format!("cannot inspect {}: {e}", cur.display())),
        }
    }
    Ok(cur)
}

/// Defence in depth: the canonical form of `dir` must lie inside the canonical `root`.
fn confirm_inside(root: &Path, dir: &Path) -> Result<(), String> {
    let canon =
        fs::canonicalize(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    if canon.starts_with(root) {
        Ok(())
    } else {
        Err("entry would be written outside the destination".to_owned())
    }
}

fn make_dir(path: &Path) -> Result<()> {
    fs::create_dir(path).map_err(|e| ClientError::io_path("cannot create directory", path, e))?;
    fs::set_permissions(path, Permissions::from_mode(0o755))
        .map_err(|e| ClientError::io_path("cannot set permissions on", path, e))
}

/// Creates `target` (never following or replacing anything: `O_EXCL`) and streams the entry in.
/// Its content is copied through a buffer of up to [`WRITE_BUF`] bytes (sized to the entry), so
/// large files are written in few, large writes.
fn write_file<R: Read>(entry: &mut R, target: &Path, exec: bool, size: u64) -> Result<u64> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|e| ClientError::io_path("cannot create", target, e))?;
    let cap = usize::try_from(size)
        .unwrap_or(WRITE_BUF)
        .clamp(1, WRITE_BUF);
    let mut buf = vec![0u8; cap];
    let mut n: u64 = 0;
    loop {
        let got = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ClientError::io_path("cannot write", target, e)),
        };
        file.write_all(&buf[..got])
            .map_err(|e| ClientError::io_path("cannot write", target, e))?;
        n += got as u64;
    }
    let mode = if exec { 0o755 } else { 0o644 };
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| ClientError::io_path("cannot set permissions on", target, e))?;
    Ok(n)
}

/// The path of a hard link's source: relative, inside `root`, reached without symlinks, and an
/// already-extracted regular file.
fn hardlink_source(root: &Path, link: &Path) -> Result<PathBuf, String> {
    let comps = safe_relative(link).map_err(|r| format!("hard link target: {r}"))?;
    if comps.is_empty() {
        return Err("hard link target is empty".to_owned());
    }
    for i in 1..=comps.len() {
        let p = join(root, &comps[..i]);
        let m = fs::symlink_metadata(&p).map_err(|_| {
            format!(
                "hard link target {} does not exist in the archive (so far)",
                display(&comps)
            )
        })?;
        let last = i == comps.len();
        if m.file_type().is_symlink() {
            return Err("hard link target passes through a symlink".to_owned());
        }
        if last && !m.is_file() {
            return Err("hard link target is not a regular file".to_owned());
        }
        if !last && !m.is_dir() {
            return Err("hard link target's parent is not a directory".to_owned());
        }
    }
    Ok(join(root, &comps))
}
