//! `GET /v2/_ocireg/usage`: storage usage (`ocireg_store::Usage`), the configured quota limits
//! (`null` without a quota) and the storage's free space and reserve (`storage`; `null` where
//! the driver cannot tell) as JSON. With auth on, any authenticated user may call it.

use axum::body::Body;
use axum::http::Method;
use axum::response::Response;
use ocireg_auth::Refusal;
use serde_json::json;

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

/// Handles the `usage` extension path.
pub(crate) async fn get(st: &AppState, req: Req) -> Result<Response> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(Failure::unsupported_method());
    }
    if let (Some(auth), Some(caller)) = (&st.opts.auth, &req.caller) {
        if caller.user().is_none() {
            return Err(crate::auth::refusal(
                st,
                auth,
                &req.headers,
                &[],
                Refusal::Unauthenticated("storage usage needs credentials".into()),
            ));
        }
    }
    let space = st.store.space().await?.map(|s| {
        json!({ "available_bytes": s.available, "capacity_bytes": s.total, "reserve_bytes": s.reserve })
    });
    let usage = st.store.usage();
    let body = json!({
        "total_bytes": usage.total_bytes,
        "artifacts": usage.artifacts,
        "namespaces": usage.namespaces,
        "limits": st.store.quota(),
        "storage": space,
    });
    Ok(crate::routes::json_response(
        if req.method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(body.to_string())
        },
    ))
}
