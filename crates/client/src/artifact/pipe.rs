//! A bounded in-memory byte pipe between a blocking thread and async code, in both directions:
//! the writer is both [`Write`] (blocking) and [`AsyncWrite`], the reader both [`Read`]
//! (blocking) and [`AsyncRead`]. Bytes travel in blocks of up to [`PIPE_BLOCK`] bytes and at
//! most `capacity` blocks wait in the pipe, so memory stays bounded.
//!
//! The stream is complete only when the writer calls `finish`: a writer dropped without it
//! (its producer failed) makes the reader fail instead of seeing a clean end of stream, so a
//! consumer can never mistake a truncated stream for a whole one. The blocking methods must
//! run outside the async runtime (e.g. in `spawn_blocking`).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Size of the blocks a writer sends (1 MiB).
pub const PIPE_BLOCK: usize = 1 << 20;

enum Msg {
    Data(Bytes),
    End,
}

/// A pipe holding at most `capacity` blocks (plus one being filled on each side).
pub fn pipe(capacity: usize) -> (PipeWriter, PipeReader) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        PipeWriter {
            tx: PollSender::new(tx),
            buf: BytesMut::new(),
        },
        PipeReader {
            rx,
            cur: Bytes::new(),
            done: false,
        },
    )
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the reading end of the pipe is gone",
    )
}

/// The writing end. Call [`PipeWriter::finish`] (blocking) or [`PipeWriter::finish_async`]
/// to end the stream; dropping it without makes the reader fail.
pub struct PipeWriter {
    tx: PollSender<Msg>,
    buf: BytesMut,
}

impl std::fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWriter")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl PipeWriter {
    fn take_block(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    fn blocking_send(&mut self, msg: Msg) -> io::Result<()> {
        let tx = self.tx.get_ref().ok_or_else(closed)?;
        tx.blocking_send(msg).map_err(|_| closed())
    }

    fn room(&mut self, len: usize) -> usize {
        if self.buf.capacity() == 0 {
            self.buf.reserve(PIPE_BLOCK);
        }
        len.min(PIPE_BLOCK - self.buf.len())
    }

    /// Ends the stream (blocking): sends what is buffered and the end marker.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.blocking_send(Msg::End)
    }

    /// Ends the stream: sends what is buffered and the end marker.
    pub async fn finish_async(mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        AsyncWriteExt::flush(&mut self).await?;
        let tx = self.tx.get_ref().ok_or_else(closed)?;
        tx.send(Msg::End).await.map_err(|_| closed())
    }

    fn poll_send_block(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.tx.poll_reserve(cx)).map_err(|_| closed())?;
        let block = self.take_block();
        self.tx.send_item(Msg::Data(block)).map_err(|_| closed())?;
        Poll::Ready(Ok(()))
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= PIPE_BLOCK {
            let block = self.take_block();
            self.blocking_send(Msg::Data(block))?;
        }
        let n = self.room(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let block = self.take_block();
            self.blocking_send(Msg::Data(block))?;
        }
        Ok(())
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= PIPE_BLOCK {
            ready!(this.poll_send_block(cx))?;
        }
        let n = this.room(data.len());
        this.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buf.is_empty() {
            ready!(this.poll_send_block(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// The reading end: yields the bytes written, then end of stream once the writer finished; an
/// error if the writer was dropped without finishing.
pub struct PipeReader {
    rx: mpsc::Receiver<Msg>,
    cur: Bytes,
    done: bool,
}

impl std::fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeReader")
            .field("buffered", &self.cur.len())
            .field("done", &self.done)
            .finish()
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the producer stopped before the end of the stream",
    )
}

impl PipeReader {
    fn accept(&mut self, msg: Option<Msg>) -> io::Result<()> {
        match msg {
            Some(Msg::Data(b)) => self.cur = b,
            Some(Msg::End) => self.done = true,
            None => return Err(aborted()),
        }
        Ok(())
    }

    fn take(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        n
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() && !self.done && !out.is_empty() {
            let msg = self.rx.blocking_recv();
            self.accept(msg)?;
        }
        Ok(self.take(out))
    }
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.cur.is_empty() && !this.done && out.remaining() > 0 {
            let msg = ready!(this.rx.poll_recv(cx));
            this.accept(msg)?;
        }
        let n = this.take(out.initialize_unfilled());
        out.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// A reader that copies every byte it yields into a writer (e.g. a download feeding both an
/// unpacker and a cache file).
#[derive(Debug)]
pub struct TeeReader<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    /// Reads from `inner`, copying into `copy`.
    pub fn new(inner: R, copy: W) -> Self {
        TeeReader { inner, copy }
    }

    /// Reads (and copies) whatever is left in `inner` up to its end; returns the byte count.
    pub fn drain(&mut self) -> io::Result<u64> {
        let mut buf = vec![0u8; PIPE_BLOCK];
        let mut total = 0u64;
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The reader and the writer.
    pub fn into_parts(self) -> (R, W) {
        (self.inner, self.copy)
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.copy.write_all(&out[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn write_blocking(w: &mut PipeWriter, data: &[u8]) {
        Write::write_all(w, data).unwrap();
    }

    fn read_blocking(r: &mut PipeReader) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        Read::read_to_end(r, &mut got).map(|_| got)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_writer_to_async_reader() {
        let (mut w, mut r) = pipe(2);
        let data: Vec<u8> = (0..3 * PIPE_BLOCK + 17).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let job = tokio::task::spawn_blocking(move || {
            for piece in sent.chunks(10_000) {
                write_blocking(&mut w, piece);
            }
            w.finish().unwrap();
        });
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut r, &mut got).await.unwrap();
        job.await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_writer_to_blocking_reader_and_abort() {
        let (mut w, mut r) = pipe(2);
        let job = tokio::task::spawn_blocking(move || read_blocking(&mut r));
        AsyncWriteExt::write_all(&mut w, &[7u8; 2 * PIPE_BLOCK + 5])
            .await
            .unwrap();
        w.finish_async().await.unwrap();
        assert_eq!(job.await.unwrap().unwrap(), vec![7u8; 2 * PIPE_BLOCK + 5]);

        let (mut w, mut r) = pipe(2);
        let job = tokio::task::spawn_blocking(move || read_blocking(&mut r));
        AsyncWriteExt::write_all(&mut w, b"partial").await.unwrap();
        AsyncWriteExt::flush(&mut w).await.unwrap();
        drop(w);
        let err = job.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
