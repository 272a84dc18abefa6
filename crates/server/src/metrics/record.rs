//! The recording middleware: counts request body bytes as the handler reads them and response
//! body bytes as they are sent, and records the request (count, latency, bytes) once, when the
//! response body ends or is dropped (a client that hangs up mid-download still counts).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::labels::{EndpointLabel, MethodLabel};
use super::Metrics;
use crate::routes::Parsed;

/// One request, as recorded.
pub(super) struct Finished {
    pub(super) endpoint: EndpointLabel,
    pub(super) method: MethodLabel,
    pub(super) status: u16,
    pub(super) elapsed: Duration,
    pub(super) request_bytes: u64,
    pub(super) response_bytes: u64,
}

/// The middleware (state: the registry, `None` = metrics off, requests pass untouched). The
/// endpoint label comes from the endpoint the outermost layer parsed.
pub(crate) async fn record(
    State(metrics): State<Option<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(metrics) = metrics else {
        return next.run(req).await;
    };
    let started = Instant::now();
    let method = MethodLabel::of(req.method());
    let endpoint = match req.extensions().get::<Parsed>() {
        Some(Parsed(parsed)) => EndpointLabel::of(parsed),
        None => EndpointLabel::of(&ocireg_api::parse_path(req.uri().path())),
    };
    let read = Arc::new(AtomicU64::new(0));
    let req = req.map(|inner| {
        Body::new(Counted {
            inner,
            tally: Arc::clone(&read),
        })
    });
    let resp = next.run(req).await;
    let pending = Pending {
        metrics,
        endpoint,
        method,
        status: resp.status().as_u16(),
        started,
        read,
    };
    resp.map(|inner| {
        let expected = http_body::Body::size_hint(&inner).exact();
        Body::new(Counted {
            inner,
            tally: Sent {
                sent: 0,
                expected,
                pending: Some(pending),
            },
        })
    })
}

/// What is known before the response body has gone out.
struct Pending {
    metrics: Metrics,
    endpoint: EndpointLabel,
    method: MethodLabel,
    status: u16,
    started: Instant,
    read: Arc<AtomicU64>,
}

/// What a [`Counted`] body does with the data passing through it.
trait Tally: Send + Unpin + 'static {
    /// A frame went by carrying `len` data bytes; `at_end` when the inner body has no more.
    fn frame(&mut self, len: u64, at_end: bool);
    /// The inner body ended or failed.
    fn end(&mut self);
}

/// A body that passes the inner body through and tells its tally about every frame.
struct Counted<T> {
    inner: Body,
    tally: T,
}

impl<T: Tally> http_body::Body for Counted<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |data| data.len() as u64);
                this.tally.frame(len, this.inner.is_end_stream());
            }
            Poll::Ready(None | Some(Err(_))) => this.tally.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body's tally: the bytes the handler read.
impl Tally for Arc<AtomicU64> {
    fn frame(&mut self, len: u64, _at_end: bool) {
        self.fetch_add(len, Ordering::Relaxed);
    }

    fn end(&mut self) {}
}

/// The response body's tally: counts the bytes sent and records the request when it ends.
struct Sent {
    sent: u64,
    /// The body's exact length when known: reaching it ends the request (the client may have
    /// everything before the stream reports its end).
    expected: Option<u64>,
    pending: Option<Pending>,
}

impl Sent {
    fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            p.metrics.observe(&Finished {
                endpoint: p.endpoint,
                method: p.method,
                status: p.status,
                elapsed: p.started.elapsed(),
                request_bytes: p.read.load(Ordering::Relaxed),
                response_bytes: self.sent,
            });
        }
    }
}

impl Tally for Sent {
    fn frame(&mut self, len: u64, at_end: bool) {
        self.sent += len;
        if at_end || self.expected == Some(self.sent) {
            self.finish();
        }
    }

    fn end(&mut self) {
        self.finish();
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        self.finish();
    }
}
