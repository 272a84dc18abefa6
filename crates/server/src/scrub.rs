//! `POST /v2/_ocireg/scrub[?rate_mb=N]`: re-hashes every stored object now (at `N` MiB/s, 0 =
//! unbounded, default 64), quarantines corrupt ones and answers the report as JSON
//! (`ocireg_store::ScrubReport`). With auth on, only admins may call it.
//!
//! The run is spawned on its own task: a client that disconnects does not cancel it halfway.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use ocireg_oci::ErrorCode;
use ocireg_store::ScrubOptions;

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

fn options(req: &Req) -> Result<ScrubOptions> {
    let Some(text) = req.query_param("rate_mb") else {
        return Ok(ScrubOptions::default());
    };
    let mb: u64 = text.parse().map_err(|_| {
        Failure::code(
            ErrorCode::Unsupported,
            format!("rate_mb={text:?}: expected a whole number of MiB per second"),
        )
        .with_status(StatusCode::BAD_REQUEST)
    })?;
    Ok(ScrubOptions {
        rate_bytes_per_sec: mb.saturating_mul(1 << 20),
    })
}

/// Handles the `scrub` extension path.
pub(crate) async fn post(st: &AppState, req: Req) -> Result<Response> {
    if req.method != Method::POST {
        return Err(Failure::unsupported_method());
    }
    crate::ext::admin_only(st, &req, "scrub")?;
    let opts = options(&req)?;
    let store = st.store.clone();
    crate::gc::report_response("scrub", "scrub", async move { store.scrub(&opts).await }).await
}
