//! Blob bodies sent from the file to the socket by the kernel (`sendfile`), for plain-HTTP
//! HTTP/1.x connections, when the requested bytes are all in the page cache.
//!
//! The body's frames are slices of a read-only mapping of the blob's file
//! ([`ocireg_sys::FileMap`]), registered with the connection ([`Regions`]). The connection's
//! stream ([`stream::SendfileStream`]) recognises a buffer lying inside a registered mapping and
//! sends the same bytes from the file with `sendfile` instead of copying the memory; hyper
//! queues body frames as buffers of their own (its vectored-write strategy, which `conn` sets),
//! so on that path the mapping is never read. Should anything copy a frame anyway (another
//! write strategy, an HTTP/2 or TLS connection), the copy reads the file's real bytes through
//! the mapping: what goes out is the blob either way, never a placeholder.
//!
//! A region is registered for exactly as long as its mapping exists (the mapping's owner
//! removes it before unmapping), so an address found in the registry is backed by that
//! mapping, and since live mappings never overlap the lookup is unambiguous. The open file
//! keeps a blob that is deleted and collected mid-send readable until the body is dropped.

pub(crate) mod stream;

use std::convert::Infallible;
use std::fs::File;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use ocireg_sys::FileMap;
use parking_lot::Mutex;

/// Ranges smaller than this are read and copied as before: for them a mapping and its
/// registration cost about what the copy saves.
pub(crate) const MIN_BYTES: u64 = 256 << 10;

/// Bytes per body frame: the response's byte count (metrics) advances frame by frame, as with
/// the store's reader.
const FRAME_BYTES: usize = 4 << 20;

/// A request extension: the connection can send file-backed frames with `sendfile`.
#[derive(Clone, Default)]
pub(crate) struct ZeroCopy(pub(crate) Regions);

/// The file mappings whose frames a connection may be asked to write.
#[derive(Clone, Default)]
pub(crate) struct Regions(Arc<Mutex<Vec<Region>>>);

/// One registered mapping: `len` bytes at address `start` are the bytes of `file` at `offset`.
struct Region {
    start: usize,
    len: usize,
    file: Arc<File>,
    offset: u64,
}

/// Where a buffer's bytes can be sent from: `len` bytes of `file` at `offset`.
pub(crate) struct FileSpan {
    pub(crate) file: Arc<File>,
    pub(crate) offset: u64,
    pub(crate) len: usize,
}

impl Regions {
    /// The file range a buffer stands for, if it lies wholly inside a registered mapping.
    fn lookup(regions: &[Region], buf: &[u8]) -> Option<FileSpan> {
        let at = buf.as_ptr() as usize;
        regions.iter().find_map(|r| {
            let inside = at >= r.start && at + buf.len() <= r.start + r.len;
            inside.then(|| FileSpan {
                file: Arc::clone(&r.file),
                offset: r.offset + (at - r.start) as u64,
                len: buf.len(),
            })
        })
    }

    /// How to write `bufs`: the file range of the first buffer when it is file-backed, else
    /// how many leading buffers are plain memory.
    pub(crate) fn plan(&self, bufs: &[std::io::IoSlice<'_>]) -> Plan {
        let regions = self.0.lock();
        if regions.is_empty() {
            return Plan::Memory(bufs.len());
        }
        let mut memory_bytes = 0;
        for (i, buf) in bufs.iter().enumerate() {
            if buf.is_empty() {
                continue;
            }
            if let Some(span) = Self::lookup(&regions, buf) {
                return if memory_bytes == 0 {
                    Plan::File(span)
                } else {
                    Plan::Memory(i)
                };
            }
            memory_bytes += buf.len();
        }
        Plan::Memory(bufs.len())
    }

    fn insert(&self, region: Region) {
        self.0.lock().push(region);
    }

    fn remove(&self, start: usize) {
        self.0.lock().retain(|r| r.start != start);
    }
}

/// See [`Regions::plan`].
pub(crate) enum Plan {
    /// Write the first `n` buffers from memory.
    Memory(usize),
    /// Send the first buffer's bytes from its file.
    File(FileSpan),
}

/// A mapping registered with a connection for its lifetime.
struct Mapped {
    map: FileMap,
    regions: Regions,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        self.map.as_ref()
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // Before the mapping goes (its field drops after this): no lookup can find an address
        // that is no longer backed by it.
        self.regions.remove(self.map.as_ref().as_ptr() as usize);
    }
}

/// The body of `len > 0` bytes of `file` at `offset`, sent by `sendfile` on `zc`'s
/// connection; `None` when they are not all in the page cache (the store's reader then reads
/// them from the disk without filling the cache, which costs less than `sendfile` filling it)
/// or the file cannot be mapped (then the caller streams it as usual).
pub(crate) fn body(zc: &ZeroCopy, file: File, offset: u64, len: u64) -> Option<Body> {
    if ocireg_sys::fully_cached(&file, offset, len) == Some(false) {
        return None;
    }
    let map = FileMap::new(&file, offset, usize::try_from(len).ok()?)
        .map_err(|err| tracing::debug!(%err, "blob not mappable; streaming it"))
        .ok()?;
    tracing::debug!(bytes = len, "blob body sent from its file");
    let regions = zc.0.clone();
    regions.insert(Region {
        start: map.as_ref().as_ptr() as usize,
        len: map.len(),
        file: Arc::new(file),
        offset,
    });
    let bytes = Bytes::from_owner(Mapped { map, regions });
    Some(Body::new(FileBody { rest: bytes }))
}

/// The mapped bytes, in frames of at most [`FRAME_BYTES`].
struct FileBody {
    rest: Bytes,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(FRAME_BYTES);
        Poll::Ready(Some(Ok(Frame::data(self.rest.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::IoSlice;

    use http_body_util::BodyExt;

    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 241) as u8).collect()
    }

    fn blob(data: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, data).unwrap();
        (dir, path)
    }

    /// Copied instead of sent from the file (what any other write path does with a frame),
    /// the body is the file's range.
    #[tokio::test]
    async fn a_copied_body_is_the_files_bytes() {
        let data = pattern(FRAME_BYTES + 70_000);
        let (_dir, path) = blob(&data);
        let zc = ZeroCopy::default();
        let (from, len) = (4095, FRAME_BYTES + 1000);
        let file = File::open(&path).unwrap();
        let body = body(&zc, file, from as u64, len as u64).unwrap();
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(len as u64));
        let got = body.collect().await.unwrap().to_bytes();
        assert!(got == data[from..from + len]);
        assert!(zc.0 .0.lock().is_empty(), "region dropped with the body");
    }

    /// Frames are recognised as file ranges, at any offset inside them, for exactly as long as
    /// the body (or a frame of it) is alive.
    #[tokio::test]
    async fn frames_map_to_their_file_range_while_alive() {
        let data = pattern(2 * FRAME_BYTES + 5);
        let (_dir, path) = blob(&data);
        let zc = ZeroCopy::default();
        let mut body = body(&zc, File::open(&path).unwrap(), 10, data.len() as u64 - 10).unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        drop(body);
        let head = IoSlice::new(b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(matches!(
            zc.0.plan(&[head, IoSlice::new(&second)]),
            Plan::Memory(1)
        ));
        let Plan::File(span) = zc.0.plan(&[IoSlice::new(&second[7..]), head]) else {
            panic!("a frame's tail is not recognised");
        };
        assert_eq!(span.offset, 10 + FRAME_BYTES as u64 + 7);
        assert_eq!(span.len, second.len() - 7);
        let copy = first.to_vec();
        assert!(matches!(zc.0.plan(&[IoSlice::new(&copy)]), Plan::Memory(1)));
        drop((first, second));
        assert!(zc.0 .0.lock().is_empty());
    }

    #[tokio::test]
    async fn uncached_or_unmappable_ranges_are_left_to_the_reader() {
        let data = pattern(1 << 20);
        let (_dir, path) = blob(&data);
        let zc = ZeroCopy::default();
        let past = body(&zc, File::open(&path).unwrap(), 1, data.len() as u64);
        assert!(past.is_none(), "a range past the end is not mapped");
        let file = File::open(&path).unwrap();
        ocireg_sys::write_back_and_drop(&file, 0, data.len() as u64).unwrap();
        if ocireg_sys::fully_cached(&file, 0, data.len() as u64) == Some(false) {
            assert!(body(&zc, file, 0, data.len() as u64).is_none());
        }
        assert!(zc.0 .0.lock().is_empty());
    }
}
