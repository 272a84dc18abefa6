//! One tracing span per request, carrying a request id; one access-log line when the response
//! is ready (at `info`; `warn` for server errors): status, bytes, duration, client, user.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Who a request was answered for, put in the response's extensions by the dispatcher once
/// authentication has run (absent: authentication is off or refused the request).
#[derive(Debug, Clone)]
pub(crate) struct AnsweredUser(pub(crate) String);

pub(crate) async fn request_span(req: Request, next: Next) -> Response {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "request",
        id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();
    let peer = req.extensions().get::<SocketAddr>().copied();
    async move {
        let mut resp = next.run(req).await;
        let status = resp.status().as_u16();
        // The line's fields are only built when it is written (benchmarks and busy servers
        // often run at `warn`).
        if status >= 500 || tracing::enabled!(tracing::Level::INFO) {
            access_line(&resp, status, started, peer);
        }
        if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
            resp.headers_mut().insert("X-Request-Id", v);
        }
        resp
    }
    .instrument(span)
    .await
}

/// The access-log line of a response: `info`, `warn` for server errors.
fn access_line(resp: &Response, status: u16, started: Instant, peer: Option<SocketAddr>) {
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let user = resp
        .extensions()
        .get::<AnsweredUser>()
        .map_or("-", |u| u.0.as_str());
    let peer = peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
    if status >= 500 {
        tracing::warn!(status, bytes = %bytes, micros, peer = %peer, user = %user, "response");
    } else {
        tracing::info!(status, bytes = %bytes, micros, peer = %peer, user = %user, "response");
    }
}
