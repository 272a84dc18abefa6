//! Streaming writes into the pull cache: [`BlobWriter`].

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use ocireg_oci::{Digest, DigestHasher};
use tempfile::NamedTempFile;

use super::cache::persist_file;
use super::{ClientError, Result};

/// Write buffer of a [`BlobWriter`].
const WRITE_BUF: usize = 1 << 20;

/// A blob being streamed into the cache (from [`super::Cache::blob_writer`]): the bytes go to a
/// temporary file in the cache's `tmp/`; [`BlobWriter::commit`] checks them and only then
/// fsyncs once and renames the file into `blobs/`. Dropping the writer (or a failed commit)
/// deletes the temporary file, so the cache never holds a partial or unverified blob.
///
/// With `rehash`, the writer hashes what it is given and `commit` compares it with the
/// expected digest. Without, `commit` trusts the caller: use it only for bytes that the caller
/// has itself verified against the same digest (e.g. a download hashed while streaming); the
/// size is checked either way.
pub struct BlobWriter {
    file: BufWriter<File>,
    tmp: NamedTempFile,
    dest: PathBuf,
    expected: Digest,
    hasher: Option<DigestHasher>,
    written: u64,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tmp", &self.tmp.path())
            .field("dest", &self.dest)
            .field("written", &self.written)
            .finish()
    }
}

impl BlobWriter {
    pub(super) fn new(
        tmp: NamedTempFile,
        dest: PathBuf,
        expected: Digest,
        rehash: bool,
    ) -> Result<BlobWriter> {
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| ClientError::io_path("cannot open", tmp.path(), e))?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(WRITE_BUF, file),
            hasher: rehash.then(|| DigestHasher::new(expected.algorithm())),
            tmp,
            dest,
            expected,
            written: 0,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Stores the blob: checks its size (`expected_size`) and, with `rehash`, its digest; then
    /// one fsync, the rename into place and an fsync of the directory. Returns where it is.
    pub fn commit(mut self, expected_size: u64) -> Result<super::CachedBlob> {
        self.file
            .flush()
            .map_err(|e| ClientError::io_path("cannot write", self.tmp.path(), e))?;
        if self.written != expected_size {
            return Err(ClientError::Io {
                context: format!("cannot store blob {}", self.expected),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("expected {expected_size} bytes, got {}", self.written),
                ),
            });
        }
        if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if actual != self.expected {
                return Err(ClientError::DigestMismatch {
                    expected: self.expected,
                    actual,
                });
            }
        }
        let root = self
            .tmp
            .path()
            .parent()
            .and_then(|p| p.parent())
            .map(PathBuf::from)
            .unwrap_or_default();
        let BlobWriter {
            file, tmp, dest, ..
        } = self;
        drop(file);
        persist_file(tmp, &dest, &root)?;
        Ok(super::CachedBlob {
            path: dest,
            digest: self.expected,
            size: self.written,
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
