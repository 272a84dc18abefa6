//! Chunk buffers of the reader, kept for reuse: a pull streams 4 MiB chunks, and a buffer that
//! went back to the allocator after each one was either kept by it anyway (memory) or returned
//! to the kernel and faulted in again for the next chunk (CPU). A few are kept here instead, and
//! the allocator may return everything else at once.

use std::ops::Range;
use std::sync::Mutex;

use bytes::Bytes;

use super::reader::READ_CHUNK;

/// Buffers kept: two per stream being read ahead, for two concurrent pulls.
const KEEP: usize = 4;
/// Reads smaller than this allocate their own buffer (small objects, the last piece of one).
const MIN_POOLED: usize = (READ_CHUNK / 2) as usize;
/// A buffer that grew past this (an unusual read) is not kept.
const MAX_KEPT_CAPACITY: usize = 2 * READ_CHUNK as usize;

/// The reader's buffers.
static POOL: Pool = Pool::new();

/// A buffer for a read of `want` bytes: a kept one when there is one and the read is large.
pub(super) fn take(want: usize) -> Vec<u8> {
    POOL.take(want)
}

/// `buf[range]` as `Bytes` that give the buffer back to the pool when the last clone is dropped.
pub(super) fn bytes(buf: Vec<u8>, range: Range<usize>) -> Bytes {
    POOL.bytes(buf, range)
}

/// Kept buffers.
struct Pool(Mutex<Vec<Vec<u8>>>);

impl Pool {
    const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self, want: usize) -> Vec<u8> {
        if want < MIN_POOLED {
            return Vec::new();
        }
        self.kept().pop().unwrap_or_default()
    }

    fn bytes(&'static self, buf: Vec<u8>, range: Range<usize>) -> Bytes {
        if buf.capacity() < MIN_POOLED {
            return Bytes::from(buf).slice(range);
        }
        Bytes::from_owner(Kept { buf, pool: self }).slice(range)
    }
}

/// A pooled buffer lent to a `Bytes`.
struct Kept {
    buf: Vec<u8>,
    pool: &'static Pool,
}

impl AsRef<[u8]> for Kept {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        let mut kept = self.pool.kept();
        if kept.len() < KEEP {
            kept.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large buffer comes back when the last clone of its bytes is dropped and is handed out
    /// again; at most `KEEP` are kept; small reads and odd sizes are never pooled.
    #[test]
    fn buffers_return_and_are_reused() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new()));
        let big = || Vec::<u8>::with_capacity(READ_CHUNK as usize);
        assert_eq!(pool.take(READ_CHUNK as usize).capacity(), 0, "empty pool");
        let mut buf = big();
        buf.extend_from_slice(b"hello");
        let ptr = buf.as_ptr();
        let bytes = pool.bytes(buf, 1..4);
        let clone = bytes.clone();
        assert_eq!(&bytes[..], b"ell");
        drop(bytes);
        assert!(pool.kept().is_empty(), "a clone still holds it");
        drop(clone);
        assert_eq!(
            pool.take(16).capacity(),
            0,
            "small reads allocate their own"
        );
        let reused = pool.take(READ_CHUNK as usize);
        assert_eq!(reused.as_ptr(), ptr, "reused");

        let all: Vec<Bytes> = (0..KEEP + 2).map(|_| pool.bytes(big(), 0..0)).collect();
        drop(all);
        assert_eq!(pool.kept().len(), KEEP);
        drop(pool.bytes(Vec::with_capacity(MAX_KEPT_CAPACITY + 1), 0..0));
        drop(pool.bytes(vec![1, 2, 3], 0..3));
        assert_eq!(pool.kept().len(), KEEP);
    }
}
