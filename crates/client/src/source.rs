//! Blob sources for uploads, and cutting them into request bodies at any offset (for resume).

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::error::ClientError;
use crate::transport::Progress;

/// Read-buffer size of file bodies (also the size of in-memory body pieces).
const PIECE: usize = 256 * 1024;

/// Where the bytes of a blob to upload come from.
pub enum BlobSource {
    /// A file, read in place; a resumed upload re-reads it from the registry's offset.
    Path(PathBuf),
    /// Bytes in memory.
    Bytes(Bytes),
    /// Any reader. It cannot seek back, so the chunk being sent is kept in memory (one chunk,
    /// `chunk_size` bytes at most) to be re-sent after a dropped connection.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            BlobSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            BlobSource::Reader(_) => f.write_str("Reader(..)"),
        }
    }
}

impl From<PathBuf> for BlobSource {
    fn from(p: PathBuf) -> Self {
        BlobSource::Path(p)
    }
}

impl From<&std::path::Path> for BlobSource {
    fn from(p: &std::path::Path) -> Self {
        BlobSource::Path(p.to_path_buf())
    }
}

impl From<Bytes> for BlobSource {
    fn from(b: Bytes) -> Self {
        BlobSource::Bytes(b)
    }
}

impl From<Vec<u8>> for BlobSource {
    fn from(b: Vec<u8>) -> Self {
        BlobSource::Bytes(Bytes::from(b))
    }
}

/// An upload source that hands out bodies for `[offset, offset + len)`.
pub(crate) enum Cursor {
    File(PathBuf),
    Mem(Bytes),
    Reader {
        reader: Box<dyn AsyncRead + Send + Unpin>,
        buf: Bytes,
        buf_start: u64,
    },
}

fn size_mismatch(expected: u64, actual: u64) -> ClientError {
    ClientError::SizeMismatch {
        what: "blob source".into(),
        expected,
        actual,
    }
}

impl Cursor {
    /// Opens `source`, checking its length against `size` where it is known up front.
    pub(crate) async fn open(source: BlobSource, size: u64) -> Result<Cursor, ClientError> {
        match source {
            BlobSource::Path(p) => {
                let meta = tokio::fs::metadata(&p)
                    .await
                    .map_err(|e| ClientError::io(format!("reading {}", p.display()), e))?;
                if meta.len() != size {
                    return Err(size_mismatch(size, meta.len()));
                }
                Ok(Cursor::File(p))
            }
            BlobSource::Bytes(b) => {
                if b.len() as u64 != size {
                    return Err(size_mismatch(size, b.len() as u64));
                }
                Ok(Cursor::Mem(b))
            }
            BlobSource::Reader(reader) => Ok(Cursor::Reader {
                reader,
                buf: Bytes::new(),
                buf_start: 0,
            }),
        }
    }

    /// Reads the whole source into memory (small blobs only).
    pub(crate) async fn read_all(self, size: u64) -> Result<Bytes, ClientError> {
        match self {
            Cursor::Mem(b) => Ok(b),
            Cursor::File(p) => {
                let data = tokio::fs::read(&p)
                    .await
                    .map_err(|e| ClientError::io(format!("reading {}", p.display()), e))?;
                if data.len() as u64 != size {
                    return Err(size_mismatch(size, data.len() as u64));
                }
                Ok(Bytes::from(data))
            }
            Cursor::Reader { mut reader, .. } => {
                let cap = usize::try_from(size).unwrap_or(usize::MAX);
                let mut data = Vec::with_capacity(cap.min(64 * 1024 * 1024));
                (&mut reader)
                    .take(size.saturating_add(1))
                    .read_to_end(&mut data)
                    .await
                    .map_err(|e| ClientError::io("reading the blob source", e))?;
                if data.len() as u64 != size {
                    return Err(size_mismatch(size, data.len() as u64));
                }
                Ok(Bytes::from(data))
            }
        }
    }

    /// True when the source can restart from offset 0 (a new upload session).
    pub(crate) fn can_restart(&self) -> bool {
        match self {
            Cursor::Reader { buf_start, .. } => *buf_start == 0,
            _ => true,
        }
    }

    /// The body for the next request starting at `offset`: at most `chunk` bytes (a reader
    /// source resends the rest of its buffered chunk first). Returns the body and its length.
    pub(crate) async fn body(
        &mut self,
        offset: u64,
        chunk: u64,
        size: u64,
        progress: &Progress,
    ) -> Result<(reqwest::Body, u64), ClientError> {
        let remaining = size.saturating_sub(offset);
        match self {
            Cursor::File(p) => {
                let len = remaining.min(chunk);
                let mut f = tokio::fs::File::open(&*p)
                    .await
                    .map_err(|e| ClientError::io(format!("reading {}", p.display()), e))?;
                f.seek(std::io::SeekFrom::Start(offset))
                    .await
                    .map_err(|e| ClientError::io(format!("seeking {}", p.display()), e))?;
                let pr = progress.clone();
                let s = ReaderStream::with_capacity(f.take(len), PIECE).map(move |r| {
                    pr.touch();
                    r
                });
                Ok((reqwest::Body::wrap_stream(s), len))
            }
            Cursor::Mem(b) => {
                let len = remaining.min(chunk);
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(offset + len)
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                Ok((pieces(b.slice(start..end), progress), len))
            }
            Cursor::Reader {
                reader,
                buf,
                buf_start,
            } => {
                let buf_end = *buf_start + buf.len() as u64;
                if offset < *buf_start || offset > buf_end {
                    return Err(ClientError::Protocol(format!(
                        "the registry holds {offset} bytes, but a non-seekable source can only resume within {}..={}",
                        buf_start, buf_end
                    )));
                }
                if offset == buf_end {
                    let want = remaining.min(chunk);
                    *buf = Bytes::new(); // release the previous chunk first
                    let mut fresh = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
                    (&mut *reader)
                        .take(want)
                        .read_to_end(&mut fresh)
                        .await
                        .map_err(|e| ClientError::io("reading the blob source", e))?;
                    *buf_start = offset;
                    if (fresh.len() as u64) < want {
                        return Err(size_mismatch(size, offset + fresh.len() as u64));
                    }
                    *buf = Bytes::from(fresh);
                }
                let from = usize::try_from(offset - *buf_start).unwrap_or(usize::MAX);
                let slice = buf.slice(from.min(buf.len())..);
                let len = slice.len() as u64;
                Ok((pieces(slice, progress), len))
            }
        }
    }
}

/// An in-memory body sent in pieces, marking progress as each piece is taken.
pub(crate) fn pieces(data: Bytes, progress: &Progress) -> reqwest::Body {
    let pr = progress.clone();
    let n = data.len().div_ceil(PIECE);
    let s = stream::iter((0..n).map(move |i| {
        let end = ((i + 1) * PIECE).min(data.len());
        Ok::<Bytes, std::io::Error>(data.slice(i * PIECE..end))
    }))
    .map(move |r| {
        pr.touch();
        r
    });
    reqwest::Body::wrap_stream(s)
}
