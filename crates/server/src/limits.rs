//! Request and session limits (`registry.local.limits_config`), enforced by one middleware in
//! front of dispatch: repository-name length (400 `NAME_INVALID`), a per-client request rate
//! (429 `TOOMANYREQUESTS` + `Retry-After`) and open upload sessions per client (429). The
//! request-head size is enforced by hyper itself (431, see `conn.rs`); the manifest size by the
//! manifest handler. The limits themselves are the config crate's
//! [`LimitsView`](ocireg_config::LimitsView).

mod rate;
mod sessions;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ocireg_api::Endpoint;
use ocireg_oci::{ErrorCode, OciError};

pub(crate) use rate::RateLimiter;
pub(crate) use sessions::UploadSessions;

use crate::error::Failure;
use crate::routes::Parsed;
use crate::AppState;

/// Smallest request-head limit hyper accepts.
pub(crate) const MIN_HEADER_BYTES: usize = 8192;

/// hyper's connection read buffer cap (its own default is ~408 KiB): request bodies are read
/// through it, so it bounds the size of each body frame. Heads larger than this are refused by
/// hyper itself (431, even when incomplete).
pub(crate) const READ_BUFFER_BYTES: usize = 1 << 20;

/// The wire size of a parsed request head (request line and header lines with their CRLFs).
fn head_bytes(req: &axum::extract::Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    line + headers + 2
}

/// The middleware: refuses over-limit requests; a session start holds a reserved slot of its
/// client's session count until it is answered (see `limits/sessions.rs`).
pub(crate) async fn enforce(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let st = st.current();
    let limits = &st.opts.limits;
    let reload = &st.opts.reload;
    let ip = req.extensions().get::<SocketAddr>().map(SocketAddr::ip);
    if let Some(ip) = ip {
        let burst = limits.rate_limit_burst;
        if let Err(wait) = reload
            .rate()
            .check(ip, limits.rate_limit_rps, burst, Instant::now())
        {
            tracing::debug!(%ip, "rate limit");
            return too_many("request rate limit exceeded; slow down", wait);
        }
    }
    let head = head_bytes(&req);
    let max_head = limits.max_header_bytes.max(MIN_HEADER_BYTES);
    if head > max_head {
        let mut resp = answer(
            Failure::code(
                ErrorCode::Unsupported,
                format!("request head is {head} bytes; at most {max_head} allowed"),
            )
            .with_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        );
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
        return resp;
    }
    if let Some(refusal) = ambiguous_headers(req.headers()) {
        return answer(refusal);
    }
    let endpoint = req
        .extensions()
        .get::<Parsed>()
        .and_then(|p| p.0.as_ref().ok());
    if let Some(repo) = endpoint.and_then(Endpoint::repo) {
        let len = repo.as_str().len();
        if len > limits.max_name_length {
            let error = OciError::new(
                ErrorCode::NameInvalid,
                format!(
                    "repository name is {len} characters; at most {} allowed",
                    limits.max_name_length
                ),
            )
            .with_detail(
                serde_json::json!({ "reason": "too long", "max": limits.max_name_length }),
            );
            return answer(Failure::from(error).with_status(StatusCode::BAD_REQUEST));
        }
    }
    let cap = limits.max_upload_sessions_per_client;
    let starts_session = matches!(endpoint, Some(Endpoint::UploadStart { .. }))
        && req.method() == Method::POST
        && !is_single_post(&req);
    let _slot = match ip {
        Some(ip) if cap > 0 && starts_session => {
            let ttl = limits.upload_session_ttl;
            let sessions = reload.sessions();
            match sessions.try_reserve(&session_owner(ip), cap, ttl, Instant::now()) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%ip, cap, "upload session limit");
                    return too_many(
                        &format!(
                            "at most {cap} open upload sessions per client; finish or cancel one"
                        ),
                        Duration::from_secs(10),
                    );
                }
            }
        }
        _ => None,
    };
    next.run(req).await
}

/// How a client is named to the store when it starts an upload session (the session cap
/// counts per name).
pub(crate) fn session_owner(ip: IpAddr) -> String {
    ip.to_string()
}

/// Headers that must appear at most once (RFC 9110/9112: a request with several `Host` headers
/// is a 400; the others are not lists, so duplicates are ambiguous).
const SINGLETONS: [&str; 5] = [
    "host",
    "content-type",
    "content-range",
    "range",
    "authorization",
];

/// A 400 for requests whose meaning is ambiguous: a singleton header repeated. (Framing is
/// hyper's: conflicting `Content-Length` values are a 400; `Content-Length` with chunked
/// `Transfer-Encoding` is read as chunked and the connection closed after the answer, RFC 9112
/// section 6.3.)
fn ambiguous_headers(h: &axum::http::HeaderMap) -> Option<Failure> {
    let bad = |message: String| {
        Some(Failure::code(ErrorCode::Unsupported, message).with_status(StatusCode::BAD_REQUEST))
    };
    for name in SINGLETONS {
        if h.get_all(name).iter().nth(1).is_some() {
            return bad(format!("more than one {name} header"));
        }
    }
    None
}

/// A monolithic `POST ...?digest=` does not open a session.
fn is_single_post(req: &Request) -> bool {
    ocireg_api::query_param(req.uri().query(), "digest").is_some()
}

/// 429 `TOOMANYREQUESTS` with `Retry-After` (whole seconds, at least 1).
fn too_many(message: &str, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    answer(
        Failure::code(ErrorCode::TooManyRequests, message)
            .with_status(StatusCode::TOO_MANY_REQUESTS)
            .with_header("Retry-After", secs.max(1).to_string()),
    )
}

fn answer(failure: Failure) -> Response {
    let mut resp = failure.into_response();
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}
