//! ocireg's own endpoints under `/v2/_ocireg/` (besides the token endpoint, which the auth gate
//! answers): one arm per extension; each handler checks the caller's rights itself.

use axum::http::StatusCode;
use axum::response::Response;
use ocireg_oci::ErrorCode;

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

/// Dispatches `/v2/_ocireg/<path>`.
pub(crate) async fn route(st: &AppState, path: &str, req: Req) -> Result<Response> {
    match path {
        "search" => crate::search::get(st, req).await,
        "gc" => crate::gc::post(st, req).await,
        "usage" => crate::usage::get(st, req).await,
        "scrub" => crate::scrub::post(st, req).await,
        _ => Err(
            Failure::code(ErrorCode::Unsupported, "no such extension endpoint")
                .with_status(StatusCode::NOT_FOUND),
        ),
    }
}

/// Admits the caller when auth is off or the caller is an admin; `what` names the operation in
/// the refusal ("garbage collection is for administrators").
pub(crate) fn admin_only(st: &AppState, req: &Req, what: &str) -> Result<()> {
    let (Some(auth), Some(caller)) = (&st.opts.auth, &req.caller) else {
        return Ok(());
    };
    match caller.user() {
        Some(user) if auth.acl().is_admin(user) => Ok(()),
        Some(_) => Err(Failure::code(
            ErrorCode::Denied,
            format!("{what} is for administrators"),
        )),
        None => Err(crate::auth::refusal(
            st,
            auth,
            &req.headers,
            &[],
            ocireg_auth::Refusal::Unauthenticated(format!(
                "{what} needs an administrator's credentials"
            )),
        )),
    }
}
