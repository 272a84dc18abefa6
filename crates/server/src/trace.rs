//! One tracing span per request, carrying a request id; one log line when the response is ready.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) async fn request_span(req: Request, next: Next) -> Response {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "request",
        id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();
    async move {
        let mut resp = next.run(req).await;
        let status = resp.status().as_u16();
        let micros = started.elapsed().as_micros() as u64;
        if status >= 500 {
            tracing::warn!(status, micros, "response");
        } else {
            tracing::debug!(status, micros, "response");
        }
        if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
            resp.headers_mut().insert("X-Request-Id", v);
        }
        resp
    }
    .instrument(span)
    .await
}
