//! Small streaming helpers: a writer that hashes what passes through it, and a bounded-buffer
//! copy that hashes as it goes.

use std::io::{self, Read, Write};

use ocireg_oci::DigestHasher;

/// Size of the copy buffer: memory use of every streaming path is bounded by a few of these.
pub(crate) const BUF_SIZE: usize = 64 * 1024;

/// Passes writes to `inner` and feeds the same bytes to a [`DigestHasher`].
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: DigestHasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: W, hasher: DigestHasher) -> Self {
        HashingWriter { inner, hasher }
    }

    /// The inner writer and the hasher (with the byte count of everything written).
    pub(crate) fn into_parts(self) -> (W, DigestHasher) {
        (self.inner, self.hasher)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `reader` to `writer` through a fixed buffer, hashing every byte; returns the count.
pub(crate) fn copy_hashing<R: Read, W: Write>(
    reader: &mut R,
    writer: &mut W,
    hasher: &mut DigestHasher,
) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
        total = total.saturating_add(n as u64);
    }
}
