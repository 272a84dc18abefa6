//! The plain-TCP stream a connection is served over: writes buffers from memory, except file-
//! backed frames (see the parent module), whose bytes it sends from the file with `sendfile`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use super::{FileSpan, Plan, Regions};

pub(crate) struct SendfileStream {
    tcp: TcpStream,
    regions: Regions,
}

impl SendfileStream {
    pub(crate) fn new(tcp: TcpStream, regions: Regions) -> Self {
        Self { tcp, regions }
    }

    /// Sends (part of) `span` once the socket can take bytes. A file that ends before the span
    /// (it cannot shrink while mapped unless someone truncated it) is an error, never a short
    /// body padded with anything.
    fn poll_sendfile(&self, cx: &mut Context<'_>, span: &FileSpan) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                ocireg_sys::sendfile(&self.tcp, &span.file, span.offset, span.len)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file shorter than the response",
                    )))
                }
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.regions.plan(bufs) {
            Plan::File(span) => self.poll_sendfile(cx, &span),
            Plan::Memory(1) => Pin::new(&mut self.tcp).poll_write(cx, &bufs[0]),
            Plan::Memory(n) => Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..n]),
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::fs::File;

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::{body, ZeroCopy};
    use super::*;

    /// Head bytes from memory and a body from its file arrive in order and exact, through a
    /// socket small enough that `sendfile` meets a full buffer many times.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_and_file_bytes_go_out_in_order() {
        let data: Vec<u8> = (0..9_000_000u32).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, &data).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let zc = ZeroCopy::default();
        let mut out = SendfileStream::new(tcp, zc.0.clone());
        let mut body = body(&zc, File::open(&path).unwrap(), 3, 8_999_990).unwrap();
        out.write_all(b"head:").await.unwrap();
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap().into_data().unwrap();
            let mut rest: &[u8] = &frame;
            while !rest.is_empty() {
                let n = out
                    .write_vectored(&[IoSlice::new(rest), IoSlice::new(b"!")])
                    .await
                    .unwrap();
                // Only the file-backed buffer goes out in one call.
                assert!(n <= rest.len());
                rest = &rest[n..];
            }
        }
        out.write_all(b":tail").await.unwrap();
        out.shutdown().await.unwrap();
        drop(out);
        let got = reader.await.unwrap();
        let mut want = b"head:".to_vec();
        want.extend_from_slice(&data[3..8_999_993]);
        want.extend_from_slice(b":tail");
        assert!(got == want, "{} bytes, want {}", got.len(), want.len());
    }
}
