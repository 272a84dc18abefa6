//! The filesystem driver's reader: an object streamed in chunks, each read positionally on the
//! blocking pool (one chunk read ahead). A chunk that is in the page cache is copied from it; a
//! chunk that is not comes from the disk straight into the chunk's buffer (`O_DIRECT`), so a
//! blob read once (a pull right after its push, a replication, a scrub) neither fills the page
//! cache nor evicts what is hot there.
//!
//! Why not through the cache: the writer drops a pushed blob's pages behind it (see
//! `writer::DROP_WINDOW`), so the first pull of a new blob finds nothing cached. A buffered read
//! then allocates cache pages for every byte and copies them once more into the chunk; direct
//! reads skip both, which measured several times cheaper in CPU per GB (BENCHMARKS.md, the pull
//! rows). Bytes someone else brought into the cache are still served from it.
//!
//! A range that is all cached and goes to a plain-HTTP/1.x client does not come through here:
//! the server sends it from the file with `sendfile` ([`crate::driver::Driver::open_file`]).

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use ocireg_sys::DIRECT_ALIGN;

use super::bufpool;
use crate::ByteStream;

/// Bytes per chunk of the stream.
pub(super) const READ_CHUNK: u64 = 4 << 20;

/// Objects up to this size are read through the page cache without asking what it holds:
/// manifests, configs and small layers, for which the extra calls would cost more than the
/// copy they could save.
const DIRECT_MIN: u64 = 256 << 10;

/// An object open for reading.
struct Source {
    /// Through the page cache.
    file: File,
    /// The same file without page cache, for objects over [`DIRECT_MIN`] where available.
    direct: Option<File>,
    /// Set once a direct read was refused: the rest goes through the cache.
    direct_refused: AtomicBool,
}

impl Source {
    fn direct(&self) -> Option<&File> {
        self.direct
            .as_ref()
            .filter(|_| !self.direct_refused.load(Ordering::Relaxed))
    }
}

/// Streams `[offset, end)` of `file` (whose size is `size`) in [`READ_CHUNK`] pieces.
pub(super) fn stream(file: File, size: u64, offset: u64, end: u64) -> ByteStream {
    let direct = (size > DIRECT_MIN)
        .then(|| ocireg_sys::reopen_direct_read(&file))
        .flatten();
    let source = Arc::new(Source {
        file,
        direct,
        direct_refused: AtomicBool::new(false),
    });
    let starts: Vec<u64> = (offset..end).step_by(READ_CHUNK as usize).collect();
    // Each chunk is an independent positional read, so `buffered(2)` reads one ahead.
    let body = stream::iter(starts)
        .map(move |at| {
            let source = Arc::clone(&source);
            let want = (end - at).min(READ_CHUNK);
            async move {
                tokio::task::spawn_blocking(move || read_chunk(&source, at, want))
                    .await
                    .map_err(io::Error::other)?
            }
        })
        .buffered(2);
    Box::pin(body)
}

/// `want` bytes at `at`: direct when they are not all cached (and direct reads work here),
/// else through the cache.
fn read_chunk(source: &Source, at: u64, want: u64) -> io::Result<Bytes> {
    let want = usize::try_from(want).map_err(io::Error::other)?;
    if let Some(direct) = source.direct() {
        if ocireg_sys::fully_cached(&source.file, at, want as u64) == Some(false) {
            match read_direct(direct, at, want) {
                Ok(bytes) => return Ok(bytes),
                Err(e) if e.raw_os_error() == Some(EINVAL) => {
                    source.direct_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
    }
    read_buffered(&source.file, at, want)
}

/// `EINVAL`: the device wants a larger alignment than [`DIRECT_ALIGN`].
const EINVAL: i32 = 22;

fn read_buffered(file: &File, at: u64, want: usize) -> io::Result<Bytes> {
    let buf = ocireg_sys::read_at_most_into(file, at, want, bufpool::take(want))?;
    if buf.len() < want {
        return Err(shrank());
    }
    Ok(bufpool::bytes(buf, 0..want))
}

/// Reads the aligned blocks covering `[at, at + want)` and returns the requested bytes as a
/// slice of that buffer (no copy).
fn read_direct(direct: &File, at: u64, want: usize) -> io::Result<Bytes> {
    let align = DIRECT_ALIGN as u64;
    let start = at - at % align;
    let lead = usize::try_from(at - start).map_err(io::Error::other)?;
    let span = (lead + want).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
    // The object's last block is short: a direct read stops at the end of the file.
    let read = ocireg_sys::read_direct_into(direct, start, span, bufpool::take(span))?;
    if read.buf.len() - read.start < lead + want {
        return Err(shrank());
    }
    let from = read.start + lead;
    Ok(bufpool::bytes(read.buf, from..from + want))
}

fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "object shrank while being read",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 253) as u8).collect()
    }

    async fn collect(body: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    /// Every range of an uncached object reads back exactly, whichever way each chunk is read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uncached_ranges_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = pattern(3 * READ_CHUNK as usize + 12_345);
        std::fs::write(&path, &data).unwrap();
        let size = data.len() as u64;
        let ranges = [
            (0, size),
            (1, size),
            (4095, 4097 + READ_CHUNK),
            (READ_CHUNK - 1, size - 1),
            (size - 10, size),
        ];
        for (from, to) in ranges {
            let file = File::open(&path).unwrap();
            let _ = ocireg_sys::write_back_and_drop(&file, 0, size);
            let got = collect(stream(file, size, from, to)).await;
            assert!(got == data[from as usize..to as usize], "{from}..{to}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shorter_file_than_announced_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = pattern(2 * READ_CHUNK as usize);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let _ = ocireg_sys::write_back_and_drop(&file, 0, data.len() as u64);
        let mut body = stream(file, 3 * READ_CHUNK, 0, 3 * READ_CHUNK);
        let mut err = None;
        while let Some(chunk) = body.next().await {
            if let Err(e) = chunk {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the missing end is reported");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }
}
