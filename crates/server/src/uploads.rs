//! Blob uploads: POST (session start, single-request `?digest=`, cross-repo mount), PATCH chunks
//! with `Content-Range`, PUT to complete, GET status, DELETE to cancel.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::TryStreamExt;
use ocireg_oci::{Digest, ErrorCode, RepoName};
use ocireg_store::{ByteStream, Chunk, StoreError};

use crate::blobs::{empty, set_digest, set_location};
use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

/// The request body as a stream for the store.
fn body_stream(body: axum::body::Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// The request's `Content-Length`, when it sent a valid one (the store reserves quota with it).
fn content_length(req: &Req) -> Option<u64> {
    req.header("content-length").and_then(|l| l.parse().ok())
}

fn digest_param(req: &Req) -> Result<Option<Digest>> {
    match req.query_param("digest") {
        None => Ok(None),
        Some(text) => text
            .parse::<Digest>()
            .map(Some)
            .map_err(|e| Failure::from(e).with_status(StatusCode::BAD_REQUEST)),
    }
}

/// `201 Created` for a blob now in `repo`.
fn created(repo: &RepoName, digest: &Digest) -> Result<Response> {
    let mut resp = empty(StatusCode::CREATED);
    set_location(resp.headers_mut(), &ocireg_api::blob_path(repo, digest))?;
    set_digest(resp.headers_mut(), digest);
    Ok(resp)
}

/// An answer naming the session and how much of it the registry holds.
fn session_response(
    status: StatusCode,
    repo: &RepoName,
    session: &str,
    offset: u64,
) -> Result<Response> {
    let mut resp = empty(status);
    let h = resp.headers_mut();
    set_location(h, &ocireg_api::upload_path(repo, session))?;
    if let Ok(v) = HeaderValue::from_str(&ocireg_api::format_upload_range(offset)) {
        h.insert("Range", v);
    }
    if let Ok(v) = HeaderValue::from_str(session) {
        h.insert("Docker-Upload-UUID", v);
    }
    Ok(resp)
}

pub(crate) async fn start(st: &AppState, repo: &RepoName, req: Req) -> Result<Response> {
    if let Some(mount) = req.query_param("mount") {
        let digest: Digest = mount
            .parse()
            .map_err(|e| Failure::from(e).with_status(StatusCode::BAD_REQUEST))?;
        let from = match req.query_param("from") {
            Some(f) => Some(f.parse::<RepoName>().map_err(Failure::from)?),
            None => None,
        };
        if st.store.blob_mount(repo, &digest, from.as_ref()).await? {
            return created(repo, &digest);
        }
        // Not mountable: fall back to a normal upload session (spec: 202).
    } else if let Some(digest) = digest_param(&req)? {
        let length = content_length(&req);
        st.store
            .blob_put(repo, &digest, body_stream(req.body), length)
            .await?;
        return created(repo, &digest);
    }
    let owner = req.peer.map(|p| crate::limits::session_owner(p.ip()));
    let session = st.store.upload_start(repo, owner.as_deref()).await?;
    session_response(StatusCode::ACCEPTED, repo, &session, 0)
}

pub(crate) async fn status(st: &AppState, repo: &RepoName, session: &str) -> Result<Response> {
    let offset = st.store.upload_offset(repo, session).await?;
    session_response(StatusCode::NO_CONTENT, repo, session, offset)
}

/// Where a chunk says it starts, checked against its `Content-Length`.
fn chunk_start(req: &Req) -> Result<Option<u64>> {
    let Some(range) = req.header("content-range") else {
        return Ok(None);
    };
    let (start, end) = ocireg_api::parse_content_range(range)
        .map_err(|e| Failure::from(e).with_status(StatusCode::RANGE_NOT_SATISFIABLE))?;
    if let Some(len) = req
        .header("content-length")
        .and_then(|l| l.parse::<u64>().ok())
    {
        if end.checked_sub(start).and_then(|d| d.checked_add(1)) != Some(len) {
            return Err(Failure::code(
                ErrorCode::SizeInvalid,
                format!("Content-Range {start}-{end} does not match Content-Length {len}"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE));
        }
    }
    Ok(Some(start))
}

pub(crate) async fn patch(
    st: &AppState,
    repo: &RepoName,
    session: &str,
    req: Req,
) -> Result<Response> {
    let chunk = Chunk {
        start: chunk_start(&req)?,
        len: content_length(&req),
        body: body_stream(req.body),
    };
    match st.store.upload_append(repo, session, chunk).await {
        Ok(offset) => session_response(StatusCode::ACCEPTED, repo, session, offset),
        Err(err @ StoreError::UploadRange { offset, .. }) => {
            // 416 tells the client where the session really is.
            Err(Failure::from(err)
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header("Location", ocireg_api::upload_path(repo, session))
                .with_header("Range", ocireg_api::format_upload_range(offset)))
        }
        Err(err) => Err(err.into()),
    }
}

pub(crate) async fn finish(
    st: &AppState,
    repo: &RepoName,
    session: &str,
    req: Req,
) -> Result<Response> {
    let digest = digest_param(&req)?.ok_or_else(|| {
        Failure::code(
            ErrorCode::DigestInvalid,
            "the digest query parameter is required",
        )
    })?;
    let start = chunk_start(&req)?;
    let has_body = req
        .header("content-length")
        .map(|l| l != "0")
        .unwrap_or_else(|| req.header("transfer-encoding").is_some());
    // Without a body, a `Content-Range` is still checked (an empty chunk at that start).
    let last = if has_body {
        Some(Chunk {
            start,
            len: content_length(&req),
            body: body_stream(req.body),
        })
    } else {
        start.map(|start| {
            Chunk::new(Box::pin(futures_util::stream::empty()))
                .at(start)
                .sized(0)
        })
    };
    match st.store.upload_complete(repo, session, &digest, last).await {
        Ok(_) => created(repo, &digest),
        Err(err @ StoreError::UploadRange { .. }) => {
            Err(Failure::from(err).with_status(StatusCode::RANGE_NOT_SATISFIABLE))
        }
        Err(err) => Err(err.into()),
    }
}

pub(crate) async fn cancel(st: &AppState, repo: &RepoName, session: &str) -> Result<Response> {
    st.store.upload_cancel(repo, session).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
