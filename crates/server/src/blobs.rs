//! Blob GET/HEAD (with `Range` → 206) and DELETE.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use ocireg_oci::{Digest, ErrorCode, RepoName};

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::zero_copy::ZeroCopy;
use crate::AppState;

pub(crate) async fn get(
    st: &AppState,
    repo: &RepoName,
    digest: &Digest,
    req: Req,
    head: bool,
) -> Result<Response> {
    let size = st.store.blob_stat(repo, digest).await?;
    let range = match req.header("range") {
        Some(h) => ocireg_api::parse_range(h, size).map_err(|e| {
            Failure::from(e)
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header("Content-Range", format!("bytes */{size}"))
        })?,
        None => None,
    };
    let (status, length) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, end - start + 1),
        None => (StatusCode::OK, size),
    };
    let body = if head {
        Body::empty()
    } else {
        let start = range.map_or(0, |(start, _)| start);
        match zero_copy_body(st, repo, digest, req.zero_copy.as_ref(), start, length).await? {
            Some(body) => body,
            None => {
                let read = st.store.blob_read(repo, digest, range).await?;
                Body::from_stream(read.body)
            }
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set_digest(h, digest);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    if let Some((start, end)) = range {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// The body sent from the blob's file by the kernel, when the connection can do that, the
/// store keeps the blob in a file and the range is large and cached (see `zero_copy`).
async fn zero_copy_body(
    st: &AppState,
    repo: &RepoName,
    digest: &Digest,
    zero_copy: Option<&ZeroCopy>,
    start: u64,
    length: u64,
) -> Result<Option<Body>> {
    let Some(zero_copy) = zero_copy else {
        return Ok(None);
    };
    if length < crate::zero_copy::MIN_BYTES {
        return Ok(None);
    }
    let Some(file) = st.store.blob_file(repo, digest).await? else {
        return Ok(None);
    };
    Ok(crate::zero_copy::body(zero_copy, file, start, length))
}

pub(crate) async fn delete(st: &AppState, repo: &RepoName, digest: &Digest) -> Result<Response> {
    st.store.blob_delete(repo, digest).await?;
    Ok(empty(StatusCode::ACCEPTED))
}

/// An empty response with `Content-Length: 0`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    resp
}

/// Sets `Docker-Content-Digest`.
pub(crate) fn set_digest(h: &mut axum::http::HeaderMap, digest: &Digest) {
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("Docker-Content-Digest", v);
    }
}

/// Sets `Location` to a path.
pub(crate) fn set_location(h: &mut axum::http::HeaderMap, path: &str) -> Result<()> {
    let v = HeaderValue::from_str(path)
        .map_err(|_| Failure::code(ErrorCode::NameInvalid, "name not representable in a URL"))?;
    h.insert(header::LOCATION, v);
    Ok(())
}
