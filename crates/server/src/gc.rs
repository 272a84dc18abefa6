//! `POST /v2/_ocireg/gc[?dry_run=true|false][&delete_untagged=true|false][&uploads_older_than=SECS]`:
//! runs garbage collection now and answers its report as JSON (`ocireg_store::GcReport`). The
//! server's [`crate::ServerOptions::gc`] give the grace period, upload TTL and defaults; the
//! query may turn a dry run or untagged-manifest removal on or off and set the idle time after
//! which upload sessions are removed. With auth on, only admins may call it.
//!
//! The run is spawned on its own task: a client that disconnects does not cancel it halfway.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use ocireg_oci::ErrorCode;

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

fn flag(req: &Req, key: &str, default: bool) -> Result<bool> {
    match req.query_param(key).as_deref() {
        None => Ok(default),
        Some("" | "true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(Failure::code(
            ErrorCode::Unsupported,
            format!("{key}={other:?}: expected true or false"),
        )
        .with_status(StatusCode::BAD_REQUEST)),
    }
}

/// `uploads_older_than`: whole seconds (`0` removes every session not written to since the
/// run started).
fn seconds(req: &Req, key: &str) -> Result<Option<Duration>> {
    match req.query_param(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| {
                Failure::code(
                    ErrorCode::Unsupported,
                    format!("{key}={v:?}: expected whole seconds"),
                )
                .with_status(StatusCode::BAD_REQUEST)
            }),
    }
}

/// Handles the `gc` extension path.
pub(crate) async fn post(st: &AppState, req: Req) -> Result<Response> {
    if req.method != Method::POST {
        return Err(Failure::unsupported_method());
    }
    crate::ext::admin_only(st, &req, "garbage collection")?;
    let mut opts = st.opts.gc.clone();
    opts.dry_run = flag(&req, "dry_run", opts.dry_run)?;
    opts.delete_untagged = flag(&req, "delete_untagged", opts.delete_untagged)?;
    if let Some(ttl) = seconds(&req, "uploads_older_than")? {
        opts.upload_ttl = ttl;
    }
    let store = st.store.clone();
    report_response(
        "garbage collection",
        "GC",
        async move { store.gc(&opts).await },
    )
    .await
}

/// Runs a maintenance operation (`gc`, `scrub`) on its own task, so a client that disconnects
/// does not cancel it halfway, and answers its report as JSON. `task` and `report` name the
/// operation and its report in internal errors.
pub(crate) async fn report_response<T, E, F>(task: &str, report: &str, run: F) -> Result<Response>
where
    T: serde::Serialize + Send + 'static,
    Failure: From<E>,
    E: Send + 'static,
    F: std::future::Future<Output = std::result::Result<T, E>> + Send + 'static,
{
    let value = tokio::spawn(run)
        .await
        .map_err(|e| Failure::Internal(format!("{task} task failed: {e}")))??;
    let body = serde_json::to_vec(&value)
        .map_err(|e| Failure::Internal(format!("encoding the {report} report: {e}")))?;
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
