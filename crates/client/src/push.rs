//! Blob uploads: monolithic `PUT` for small blobs, chunked `PATCH` uploads that resume from the
//! registry's offset after a failure, and cross-repository mounts.

use std::sync::Arc;

use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, Method, StatusCode};
use ocireg_oci::{Digest, RepoName};
use url::Url;

use crate::error::ClientError;
use crate::ratelimit::Op;
use crate::registry::{pull_scope, push_scope, Registry};
use crate::retry::{self, Attempts, Failure};
use crate::source::{BlobSource, Cursor};
use crate::transport::{Progress, Req, Transport};

const OCTET_STREAM: &str = "application/octet-stream";

/// What [`Registry::push_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had the blob; nothing was sent.
    Existed,
    /// The blob was uploaded.
    Uploaded,
}

/// An upload session: where to send the next request.
pub(crate) struct Session {
    /// The URL of the next request.
    pub(crate) location: Url,
    /// The registry's `OCI-Chunk-Min-Length`, if it sent one.
    pub(crate) min_chunk: Option<u64>,
    /// Until completed, a session dropped (the push failed or was cancelled) is remembered
    /// for [`Registry::cancel_abandoned_uploads`].
    open: Option<(RepoName, Arc<Transport>)>,
}

/// Abandoned sessions remembered at most (oldest forgotten first): a long-lived client that
/// never cancels them must not grow without bound.
const ABANDONED_MAX: usize = 64;

impl Drop for Session {
    fn drop(&mut self) {
        let Some((repo, t)) = self.open.take() else {
            return;
        };
        let Ok(mut list) = t.abandoned.lock() else {
            return;
        };
        if list.len() >= ABANDONED_MAX {
            list.remove(0);
        }
        list.push((repo, self.location.clone()));
    }
}

fn location(headers: &HeaderMap, answered: &Url) -> Result<Url, ClientError> {
    let loc = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ClientError::Protocol("upload response without Location".into()))?;
    answered
        .join(loc)
        .map_err(|e| ClientError::Protocol(format!("bad upload Location {loc:?}: {e}")))
}

fn with_digest(url: &Url, digest: &Digest) -> Url {
    let mut u = url.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}

impl Registry {
    /// Opens an upload session (`POST`).
    pub(crate) async fn start_upload(&self, repo: &RepoName) -> Result<Session, ClientError> {
        let url = self.url(&ocireg_api::upload_start_path(repo))?;
        let req = Req::new(Method::POST, url, vec![push_scope(repo)], Op::Push);
        let b = self.t.fetch_ok(&req, 64 * 1024, &[202]).await?;
        let min_chunk = b
            .headers
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(Session {
            location: location(&b.headers, &b.url)?,
            min_chunk,
            open: Some((repo.clone(), Arc::clone(&self.t))),
        })
    }

    /// Cancels (`DELETE`) the upload sessions this client gave up without completing them (a
    /// push that failed or whose future was dropped, e.g. on Ctrl-C), so the registry frees
    /// their bytes now instead of at its session timeout. Best effort: returns how many the
    /// registry confirmed (or no longer had).
    pub async fn cancel_abandoned_uploads(&self) -> usize {
        let sessions = match self.t.abandoned.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(_) => return 0,
        };
        let mut cancelled = 0;
        for (repo, url) in sessions {
            let req = Req::new(Method::DELETE, url, vec![push_scope(&repo)], Op::Push);
            if let Ok(b) = self.t.fetch(&req, 64 * 1024).await {
                if b.status.is_success() || b.status == StatusCode::NOT_FOUND {
                    cancelled += 1;
                }
            }
        }
        cancelled
    }

    /// Closes an upload with `PUT ?digest=` (no body). A 404 after the request was retried
    /// means an earlier attempt completed it: then the blob must exist.
    pub(crate) async fn finish_upload(
        &self,
        repo: &RepoName,
        digest: &Digest,
        session: &mut Session,
        body: Option<bytes::Bytes>,
    ) -> Result<(), ClientError> {
        let mut req = Req::new(
            Method::PUT,
            with_digest(&session.location, digest),
            vec![push_scope(repo)],
            Op::Push,
        );
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, OCTET_STREAM).body(b);
        }
        let b = self.t.fetch(&req, 64 * 1024).await?;
        let done = match b.status.as_u16() {
            200..=299 => true,
            404 => self.blob_exists(repo, digest).await?,
            _ => false,
        };
        if done {
            session.open = None;
            return Ok(());
        }
        Err(ClientError::from_response(
            "PUT",
            b.url.as_str(),
            b.status.as_u16(),
            &b.body,
        ))
    }

    /// Uploads a blob of `size` bytes with digest `digest` to `repo` (skipped when present).
    /// Blobs up to `monolithic_threshold` go in one `PUT`; larger ones in `PATCH` chunks of
    /// `chunk_size` (at least the registry's `OCI-Chunk-Min-Length`). After a dropped
    /// connection, timeout, 5xx or 429 the upload asks the registry for its offset and resumes
    /// there (at most `retries` failures in a row). Memory stays bounded by one chunk.
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        source: BlobSource,
    ) -> Result<PushOutcome, ClientError> {
        if self.blob_exists(repo, digest).await? {
            return Ok(PushOutcome::Existed);
        }
        let cursor = Cursor::open(source, size).await?;
        if size <= self.t.opts.monolithic_threshold {
            let data = cursor.read_all(size).await?;
            let actual = Digest::compute(digest.algorithm(), &data);
            if &actual != digest {
                return Err(ClientError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            let mut session = self.start_upload(repo).await?;
            self.finish_upload(repo, digest, &mut session, Some(data))
                .await?;
            return Ok(PushOutcome::Uploaded);
        }
        self.chunked_upload(repo, digest, size, cursor).await?;
        Ok(PushOutcome::Uploaded)
    }

    async fn chunked_upload(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        mut cursor: Cursor,
    ) -> Result<(), ClientError> {
        let opts = &self.t.opts;
        let mut session = self.start_upload(repo).await?;
        let mut offset: u64 = 0;
        let mut attempts = Attempts::new(opts);
        while offset < size {
            let chunk = opts.chunk_size.max(session.min_chunk.unwrap_or(0)).max(1);
            let sent = self
                .patch_once(repo, &mut session, &mut cursor, offset, chunk, size)
                .await;
            let Err(failure) = attempts
                .advanced(sent, offset, size)
                .map(|next| offset = next)
            else {
                continue;
            };
            let what = "upload chunk failed; resuming from the registry's offset";
            match self
                .resume(repo, &mut session, &mut attempts, failure, what)
                .await?
            {
                Some(off) if off > size => {
                    return Err(ClientError::Protocol(format!(
                        "registry reports {off} bytes uploaded of a {size}-byte blob"
                    )));
                }
                Some(off) => offset = off,
                None => {
                    if !cursor.can_restart() {
                        return Err(ClientError::Protocol(
                            "the upload session was lost and a non-seekable source cannot restart"
                                .into(),
                        ));
                    }
                    tracing::debug!("upload session lost; starting a new one");
                    session = self.start_upload(repo).await?;
                    offset = 0;
                }
            }
        }
        self.finish_upload(repo, digest, &mut session, None).await
    }

    /// After a failed `PATCH`: waits as `attempts` allows (or gives up with `failure`), then
    /// asks the registry how far `session` got and follows its new `Location`. `None` when the
    /// session is gone.
    pub(crate) async fn resume(
        &self,
        repo: &RepoName,
        session: &mut Session,
        attempts: &mut Attempts<'_>,
        failure: Failure,
        what: &str,
    ) -> Result<Option<u64>, ClientError> {
        attempts.after(failure, what).await?;
        let Some((off, loc)) = self.upload_offset(repo, &session.location).await? else {
            return Ok(None);
        };
        if let Some(loc) = loc {
            session.location = loc;
        }
        Ok(Some(off))
    }

    /// The registry's offset for an upload (`GET` on the session), and its new `Location`;
    /// `None` when the session is gone (404).
    async fn upload_offset(
        &self,
        repo: &RepoName,
        session: &Url,
    ) -> Result<Option<(u64, Option<Url>)>, ClientError> {
        let req = Req::new(
            Method::GET,
            session.clone(),
            vec![push_scope(repo)],
            Op::Push,
        );
        let b = self.t.fetch(&req, 64 * 1024).await?;
        match b.status.as_u16() {
            200..=299 => {
                let off = b
                    .headers
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| ocireg_api::parse_upload_range(v, true))
                    .unwrap_or(0);
                Ok(Some((off, location(&b.headers, &b.url).ok())))
            }
            404 => Ok(None),
            s => Err(ClientError::from_response(
                "GET",
                b.url.as_str(),
                s,
                &b.body,
            )),
        }
    }

    /// Sends one `PATCH` from `offset`; returns the registry's new offset.
    async fn patch_once(
        &self,
        repo: &RepoName,
        session: &mut Session,
        cursor: &mut Cursor,
        offset: u64,
        chunk: u64,
        size: u64,
    ) -> Result<u64, Failure> {
        let progress = Progress::new();
        let (body, len) = cursor.body(offset, chunk, size, &progress).await?;
        self.send_patch(repo, session, body, offset, len, &progress)
            .await
    }

    /// Sends one `PATCH` of `len` bytes (`body`) at `offset` through the transport's request
    /// path; returns the registry's new offset. A 416 is retryable: the caller asks the
    /// registry for its offset and resumes there.
    pub(crate) async fn send_patch(
        &self,
        repo: &RepoName,
        session: &mut Session,
        body: reqwest::Body,
        offset: u64,
        len: u64,
        progress: &Progress,
    ) -> Result<u64, Failure> {
        let url = session.location.clone();
        let req = Req::new(Method::PATCH, url.clone(), vec![push_scope(repo)], Op::Push)
            .header(CONTENT_TYPE, OCTET_STREAM)
            .header(CONTENT_RANGE, &format!("{}-{}", offset, offset + len - 1))
            .header(CONTENT_LENGTH, &len.to_string());
        let resp = self.t.send_streamed(&req, body, progress).await?;
        let status = resp.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            let headers = resp.headers().clone();
            session.location = location(&headers, resp.url()).unwrap_or(url);
            let next = headers
                .get("range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| ocireg_api::parse_upload_range(v, false))
                .unwrap_or(offset + len);
            return Ok(next);
        }
        let headers = resp.headers().clone();
        let err = self.t.error_from(&Method::PATCH, resp).await;
        if status == StatusCode::RANGE_NOT_SATISFIABLE || retry::retryable_status(status) {
            Err(Failure::retry(err, Some(headers)))
        } else {
            Err(Failure::fatal(err))
        }
    }

    /// Mounts `digest` from repository `from` into `repo` without uploading it. `Ok(true)` when
    /// mounted; `Ok(false)` when the registry declined (the session it opened instead is
    /// cancelled) and the caller should upload. Asks for a token scoped to both repositories.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool, ClientError> {
        let path = format!(
            "{}?mount={}&from={}",
            ocireg_api::upload_start_path(repo),
            ocireg_api::encode_query_value(&digest.to_string()),
            ocireg_api::encode_query_value(from.as_str())
        );
        let scopes = vec![push_scope(repo), pull_scope(from)];
        let req = Req::new(Method::POST, self.url(&path)?, scopes, Op::Push);
        let b = self.t.fetch(&req, 64 * 1024).await?;
        match b.status.as_u16() {
            201 => Ok(true),
            202 => {
                if let Ok(loc) = location(&b.headers, &b.url) {
                    let cancel = Req::new(Method::DELETE, loc, vec![push_scope(repo)], Op::Push);
                    if let Err(e) = self.t.fetch(&cancel, 64 * 1024).await {
                        tracing::debug!(error = %e, "cancelling the unused upload session failed");
                    }
                }
                Ok(false)
            }
            s => Err(ClientError::from_response(
                "POST",
                b.url.as_str(),
                s,
                &b.body,
            )),
        }
    }
}
