//! How a workflow reports: status lines and byte meters, rendered by the caller (the cli draws
//! progress bars; other programs may log or ignore them).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Receives what a workflow is doing.
pub trait Progress: Send + Sync {
    /// One status line, e.g. `packing ./dir ...`.
    fn status(&self, message: &str);

    /// A meter for `total` bytes of `what` (`0` when the total is not known yet), or `None`
    /// when bytes are not shown. Without a meter a workflow may pick a cheaper path (a file
    /// upload straight from its path instead of through a counting reader).
    fn meter(&self, what: &str, total: u64) -> Option<Arc<dyn Meter>>;
}

/// Counts the bytes of one transfer.
pub trait Meter: Send + Sync {
    /// Sets (or corrects) the expected total.
    fn set_total(&self, total: u64);
    /// Counts `bytes` more.
    fn advance(&self, bytes: u64);
    /// The transfer is over (whether it succeeded or not).
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn status(&self, _message: &str) {}

    fn meter(&self, _what: &str, _total: u64) -> Option<Arc<dyn Meter>> {
        None
    }
}

/// Finishes a meter, if any.
pub(crate) fn finish(meter: Option<&Arc<dyn Meter>>) {
    if let Some(m) = meter {
        m.finish();
    }
}

/// Counts bytes read through it on a meter.
pub(crate) struct CountingReader<R> {
    inner: R,
    meter: Arc<dyn Meter>,
}

impl<R> CountingReader<R> {
    pub(crate) fn new(inner: R, meter: Arc<dyn Meter>) -> Self {
        CountingReader { inner, meter }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.meter.advance(n as u64);
        }
        r
    }
}

/// Counts bytes written through it on a meter (when there is one).
pub(crate) struct CountingWriter<W> {
    inner: W,
    meter: Option<Arc<dyn Meter>>,
}

impl<W> CountingWriter<W> {
    pub(crate) fn new(inner: W, meter: Option<Arc<dyn Meter>>) -> Self {
        CountingWriter { inner, meter }
    }

    /// The wrapped writer.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(m)) = (&r, &self.meter) {
            m.advance(*n as u64);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
