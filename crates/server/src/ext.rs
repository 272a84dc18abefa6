//! ocireg's own endpoints under `/v2/_ocireg/` (besides the token endpoint, which the auth gate
//! answers): one arm per extension; each handler checks the caller's rights itself.

use axum::http::StatusCode;
use axum::response::Response;
use ocireg_oci::ErrorCode;

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

/// Dispatches `/v2/_ocireg/<path>`.
#[allow(clippy::match_single_binding)] // arms are added per extension
pub(crate) async fn route(st: &AppState, path: &str, req: Req) -> Result<Response> {
    let _ = (st, &req);
    match path {
        "search" => crate::search::get(st, req).await,
        "gc" => crate::gc::post(st, req).await,
        "usage" => crate::usage::get(st, req).await,
        "scrub" => crate::scrub::post(st, req).await,
        // Each extension adds one arm here, e.g. `"search" => crate::search::get(st, req).await,`
        _ => Err(
            Failure::code(ErrorCode::Unsupported, "no such extension endpoint")
                .with_status(StatusCode::NOT_FOUND),
        ),
    }
}
