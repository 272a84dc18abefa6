//! Prometheus metrics of the built-in server: per-request counters and a latency histogram
//! recorded by a middleware, gauges and store counters computed at scrape time, and a small
//! plain-HTTP listener answering `GET /metrics` in the text exposition format 0.0.4.
//!
//! The exposition format is written by hand rather than with a metrics library: every
//! per-request label set is fixed and small (endpoint × method × status), so the series live in
//! dense arrays of atomics indexed by enum; recording a request is a handful of relaxed atomic
//! adds with no lock, no map lookup and no label-string allocation. The few dynamic labels
//! (namespace names) are escaped by [`render`].
//!
//! - [`labels`]: the fixed label sets (endpoint from `ocireg_api::Endpoint`, method, status).
//! - [`record`](mod@record): the middleware and the body wrappers that count bytes.
//! - [`render`]: the text format (and the scrape-time gauges from the store).

mod labels;
mod record;
mod render;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use ocireg_store::{SpaceReport, Store};
use tokio::net::TcpListener;

use labels::{ENDPOINTS, METHODS, STATUS_SLOTS};
pub(crate) use record::record;

/// Upper bounds (seconds) of the request duration histogram's buckets (`+Inf` is implied).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One latency histogram: non-cumulative bucket counts (the last one is `+Inf`) and the sum.
#[derive(Debug)]
struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = DURATION_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Registry {
    /// `[endpoint][method][status slot]` request counts.
    requests: Box<[AtomicU64]>,
    /// `[endpoint][method]` latency histograms.
    durations: Box<[Histogram]>,
    /// Request body bytes read, by endpoint.
    request_bytes: [AtomicU64; ENDPOINTS],
    /// Response body bytes sent, by endpoint.
    response_bytes: [AtomicU64; ENDPOINTS],
}

/// The metrics registry of one server. Cheap to clone; clones share the counters. Put it in
/// [`crate::ServerOptions::metrics`] to record every request, and serve it with
/// [`serve_metrics`].
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        let requests = (0..ENDPOINTS * METHODS * STATUS_SLOTS)
            .map(|_| AtomicU64::new(0))
            .collect();
        let durations = (0..ENDPOINTS * METHODS).map(|_| Histogram::new()).collect();
        Metrics {
            inner: Arc::new(Registry {
                requests,
                durations,
                request_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
                response_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        }
    }

    /// Records one finished request.
    fn observe(&self, r: &record::Finished) {
        let em = labels::pair_index(r.endpoint, r.method);
        let slot = em * STATUS_SLOTS + labels::status_slot(r.status);
        let reg = &self.inner;
        reg.requests[slot].fetch_add(1, Ordering::Relaxed);
        reg.durations[em].observe(r.elapsed);
        let ep = r.endpoint as usize;
        if r.request_bytes > 0 {
            reg.request_bytes[ep].fetch_add(r.request_bytes, Ordering::Relaxed);
        }
        if r.response_bytes > 0 {
            reg.response_bytes[ep].fetch_add(r.response_bytes, Ordering::Relaxed);
        }
    }

    /// The text exposition of every metric; the gauges and store counters are read from `store`
    /// now (omitted without a store), the free-space gauges from `space` (omitted without one).
    pub fn render(&self, store: Option<&Store>, space: Option<&SpaceReport>) -> String {
        render::render(self, store, space)
    }
}

#[derive(Clone)]
struct Scrape {
    metrics: Metrics,
    store: Store,
}

async fn scrape(State(s): State<Scrape>, req: Request) -> Response {
    let head = req.method() == Method::HEAD;
    let mut resp = if req.uri().path() != "/metrics" {
        let mut r = Response::new(Body::from("not found; metrics are at /metrics\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    } else if req.method() != Method::GET && !head {
        let mut r = Response::new(Body::from("method not allowed\n"));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else {
        // A fresh free-space measurement for the gauges (a failed one leaves them out).
        let space = s.store.space().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "measuring free space failed");
            None
        });
        // Usage sums the index under its lock: keep it off the async workers.
        let (metrics, store) = (s.metrics.clone(), s.store.clone());
        let render = move || metrics.render(Some(&store), space.as_ref());
        let text = match tokio::task::spawn_blocking(render).await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "rendering metrics failed");
                let mut r = Response::new(Body::from("rendering metrics failed\n"));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return r;
            }
        };
        let mut r = if head {
            let mut r = Response::new(Body::empty());
            if let Ok(v) = HeaderValue::from_str(&text.len().to_string()) {
                r.headers_mut().insert(header::CONTENT_LENGTH, v);
            }
            r
        } else {
            Response::new(Body::from(text))
        };
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        return r;
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Serves `GET /metrics` (plain HTTP) on `listener` until `shutdown` resolves. Requests to the
/// metrics listener are not themselves counted.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Metrics,
    store: Store,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), crate::ServerError> {
    let app = axum::Router::new()
        .fallback(scrape)
        .with_state(Scrape { metrics, store });
    let opts = crate::ServerOptions {
        read_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(120),
        shutdown_grace: Duration::from_secs(2),
        auth: None,
        tls: None,
        metrics: None,
        ..crate::ServerOptions::default()
    };
    crate::conn::serve(listener, app, &opts, shutdown).await
}
