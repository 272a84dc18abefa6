//! Manifests: PUT/GET/HEAD/DELETE by tag and by digest, stored and returned byte-for-byte.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use ocireg_oci::{ErrorCode, Reference, RepoName};

use crate::blobs::{empty, set_digest, set_location};
use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

pub(crate) async fn get(
    st: &AppState,
    repo: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<Response> {
    let m = st.store.manifest_get(repo, reference).await?;
    let len = m.body.len() as u64;
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(m.body))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&m.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    set_digest(h, &m.digest);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", m.digest)) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

pub(crate) async fn put(
    st: &AppState,
    repo: &RepoName,
    reference: &Reference,
    req: Req,
) -> Result<Response> {
    let limit = st.opts.limits.max_manifest_bytes;
    if let Some(len) = req
        .header("content-length")
        .and_then(|l| l.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large(limit));
        }
    }
    let content_type = req.header("content-type").map(str::to_owned);
    let body =
        axum::body::to_bytes(req.body, limit).await.map_err(
            |e| match std::error::Error::source(&e) {
                Some(inner) if inner.is::<http_body_util::LengthLimitError>() => too_large(limit),
                _ => Failure::code(
                    ErrorCode::ManifestInvalid,
                    format!("reading manifest body: {e}"),
                ),
            },
        )?;
    let event = crate::events::push_details(st, &body, content_type.as_deref());
    let put = st
        .store
        .manifest_put(repo, reference, content_type.as_deref(), body)
        .await?;
    let pushed = crate::events::Pushed {
        repo,
        reference,
        digest: &put.digest,
        caller: req.caller.as_ref(),
    };
    crate::events::pushed(st, event, pushed).await;
    let mut resp = empty(StatusCode::CREATED);
    let h = resp.headers_mut();
    set_location(
        h,
        &ocireg_api::manifest_path(repo, &Reference::Digest(put.digest.clone())),
    )?;
    set_digest(h, &put.digest);
    if let Some(subject) = &put.subject {
        if let Ok(v) = HeaderValue::from_str(&subject.to_string()) {
            h.insert("OCI-Subject", v);
        }
    }
    Ok(resp)
}

fn too_large(limit: usize) -> Failure {
    Failure::code(
        ErrorCode::SizeInvalid,
        format!("manifest larger than {limit} bytes"),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

pub(crate) async fn delete(
    st: &AppState,
    repo: &RepoName,
    reference: &Reference,
    caller: Option<&ocireg_auth::Caller>,
) -> Result<Response> {
    let event = crate::events::before_delete(st, repo, reference).await;
    st.store.manifest_delete(repo, reference).await?;
    crate::events::deleted(st, repo, reference, event, caller).await;
    Ok(empty(StatusCode::ACCEPTED))
}
