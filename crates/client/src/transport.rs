//! Sending one logical request: rate limiting, auth challenges, retries with backoff, and a
//! no-progress timeout.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::auth::{AuthCtx, AuthState, Retry};
use crate::error::ClientError;
use crate::options::{ClientOptions, Credentials};
use crate::ratelimit::{Limiter, Op};
use crate::retry::{self, Attempts, Failure};

/// True when a `WWW-Authenticate` header offers Basic.
fn basic_challenge(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(crate::auth::parse_challenges)
        .any(|c| c.scheme == "basic")
}

/// A request body.
#[derive(Debug, Clone, Default)]
pub(crate) enum ReqBody {
    /// No body.
    #[default]
    Empty,
    /// An in-memory body (replayable, so retried).
    Bytes(Bytes),
}

/// One logical request.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: ReqBody,
    pub(crate) scopes: Vec<String>,
    pub(crate) op: Op,
}

impl Req {
    /// A request without body or extra headers.
    pub(crate) fn new(method: Method, url: Url, scopes: Vec<String>, op: Op) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: ReqBody::Empty,
            scopes,
            op,
        }
    }

    /// Adds a header (values built by this crate are always valid).
    pub(crate) fn header(mut self, name: http::header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.append(name, v);
        }
        self
    }

    /// Sets an in-memory body.
    pub(crate) fn body(mut self, body: Bytes) -> Req {
        self.body = ReqBody::Bytes(body);
        self
    }
}

/// A response read fully into memory.
#[derive(Debug)]
pub(crate) struct Buffered {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) body: Bytes,
}

/// Records when a body last made progress, for the no-progress timeout.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Marks progress now.
    pub(crate) fn touch(&self) {
        let ms = self.base.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Runs `fut` until it finishes or `timeout` passes without `progress` being touched.
pub(crate) async fn with_idle_timeout<F: Future>(
    fut: F,
    timeout: Duration,
    progress: &Progress,
) -> Option<F::Output> {
    tokio::pin!(fut);
    progress.touch();
    loop {
        let deadline = progress.last() + timeout;
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep_until(deadline) => {
                if progress.last() + timeout <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// The state shared by every request of one registry handle.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) base: Url,
    pub(crate) http: reqwest::Client,
    pub(crate) opts: ClientOptions,
    pub(crate) creds: Credentials,
    pub(crate) auth: AuthState,
    pub(crate) limiter: Limiter,
    /// Upload sessions given up without being completed (see `push::Session`), newest last.
    pub(crate) abandoned: std::sync::Mutex<Vec<(ocireg_oci::RepoName, Url)>>,
}

/// What one attempt produced.
enum Attempt {
    Done(reqwest::Response),
    Buffered(Buffered),
}

impl Transport {
    fn ctx(&self) -> AuthCtx<'_> {
        AuthCtx {
            http: &self.http,
            opts: &self.opts,
            creds: &self.creds,
        }
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// The `Authorization` value for a request to `url` needing `scopes` (none for other origins).
    pub(crate) async fn authorization(
        &self,
        url: &Url,
        scopes: &[String],
    ) -> Result<Option<HeaderValue>, ClientError> {
        if !self.same_origin(url) {
            return Ok(None);
        }
        self.auth.authorization(&self.ctx(), scopes).await
    }

    /// Handles a 401 answer; `Ok(())` means "send again".
    pub(crate) async fn unauthorized(
        &self,
        headers: &HeaderMap,
        scopes: &[String],
        sent: bool,
    ) -> Result<(), ClientError> {
        let challenges: Vec<String> = headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        match self
            .auth
            .on_unauthorized(&self.ctx(), &challenges, scopes, sent)
            .await
        {
            Retry::Again => Ok(()),
            Retry::GiveUp(e) => Err(e),
        }
    }

    /// Sends a replayable request; returns the response (any status that is not retried).
    /// `attempts` is shared with the caller, who retries further failures itself (a download
    /// resuming after a broken body), so both count against the same `retries`.
    pub(crate) async fn send_counted(
        &self,
        req: &Req,
        attempts: &mut Attempts<'_>,
    ) -> Result<reqwest::Response, ClientError> {
        match self.run(req, None, attempts).await? {
            Attempt::Done(r) => Ok(r),
            Attempt::Buffered(_) => Err(ClientError::Protocol(
                "internal: unexpected buffered reply".into(),
            )),
        }
    }

    /// Sends a replayable request and reads the whole body (at most `limit` bytes); body read
    /// failures are retried too.
    pub(crate) async fn fetch(&self, req: &Req, limit: usize) -> Result<Buffered, ClientError> {
        let mut attempts = Attempts::new(&self.opts);
        match self.run(req, Some(limit), &mut attempts).await? {
            Attempt::Buffered(b) => Ok(b),
            Attempt::Done(_) => Err(ClientError::Protocol("internal: unbuffered reply".into())),
        }
    }

    /// Like [`Transport::fetch`] but turns statuses outside `ok` into [`ClientError::Registry`].
    pub(crate) async fn fetch_ok(
        &self,
        req: &Req,
        limit: usize,
        ok: &[u16],
    ) -> Result<Buffered, ClientError> {
        let b = self.fetch(req, limit).await?;
        if ok.contains(&b.status.as_u16()) {
            Ok(b)
        } else {
            Err(ClientError::from_response(
                req.method.as_str(),
                b.url.as_str(),
                b.status.as_u16(),
                &b.body,
            ))
        }
    }

    /// Sends a request whose body cannot be replayed (`body`, fed by the caller, who touches
    /// `progress` as it goes), once. A 401 renews the credentials and comes back as a retryable
    /// failure: the caller owns the body's source and sends again.
    pub(crate) async fn send_streamed(
        &self,
        req: &Req,
        body: reqwest::Body,
        progress: &Progress,
    ) -> Result<reqwest::Response, Failure> {
        let (resp, sent_auth) = self.send_once(req, Some(body), progress).await?;
        if resp.status() == StatusCode::UNAUTHORIZED && self.same_origin(resp.url()) {
            self.unauthorized(resp.headers(), &req.scopes, sent_auth)
                .await
                .map_err(Failure::fatal)?;
            let err = ClientError::Auth(format!("{} needed fresh credentials", req.method));
            return Err(Failure::retry(err, None));
        }
        Ok(resp)
    }

    /// One attempt: rate limit, authorization, then the request under the no-progress timeout.
    /// Transport failures are classified; any answer is returned, with whether it carried
    /// credentials. `body` replaces the request's own (replayable) body.
    async fn send_once(
        &self,
        req: &Req,
        body: Option<reqwest::Body>,
        progress: &Progress,
    ) -> Result<(reqwest::Response, bool), Failure> {
        self.limiter.acquire(req.op).await;
        let authz = self.authorization(&req.url, &req.scopes).await?;
        let sent_auth = authz.is_some();
        let mut rb = self
            .http
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        if let Some(v) = authz {
            rb = rb.header(http::header::AUTHORIZATION, v);
        }
        rb = match (body, &req.body) {
            (Some(b), _) => rb.body(b),
            (None, ReqBody::Bytes(b)) => rb.body(b.clone()),
            (None, ReqBody::Empty)
                if req.method == Method::PUT
                    || req.method == Method::POST
                    || req.method == Method::PATCH =>
            {
                rb.header(http::header::CONTENT_LENGTH, "0")
            }
            (None, ReqBody::Empty) => rb,
        };
        match with_idle_timeout(rb.send(), self.opts.timeout, progress).await {
            None => Err(Failure::retry(self.timeout_error(req), None)),
            Some(Err(e)) => Err(Failure::transport(
                &e,
                req.method.as_str(),
                req.url.as_str(),
                &self.opts,
            )),
            Some(Ok(resp)) => Ok((resp, sent_auth)),
        }
    }

    async fn run(
        &self,
        req: &Req,
        buffer: Option<usize>,
        attempts: &mut Attempts<'_>,
    ) -> Result<Attempt, ClientError> {
        let mut auth_retried = false;
        loop {
            let failure = match self.send_once(req, None, &Progress::new()).await {
                Err(f) => f,
                Ok((resp, sent_auth)) => {
                    if resp.status() == StatusCode::UNAUTHORIZED && self.same_origin(resp.url()) {
                        if !auth_retried {
                            auth_retried = true;
                            self.unauthorized(resp.headers(), &req.scopes, sent_auth)
                                .await?;
                            continue;
                        }
                        if sent_auth && basic_challenge(resp.headers()) {
                            // Rejected again: says which credentials failed.
                            self.unauthorized(resp.headers(), &req.scopes, true).await?;
                        }
                    }
                    match self.answer(req, resp, buffer, attempts).await {
                        Ok(a) => return Ok(a),
                        Err(f) => f,
                    }
                }
            };
            attempts.after(failure, "request failed").await?;
        }
    }

    /// What to make of an answer: a retryable status while retries are left is a failure;
    /// anything else is the result, read into memory when `buffer` asks for it.
    async fn answer(
        &self,
        req: &Req,
        resp: reqwest::Response,
        buffer: Option<usize>,
        attempts: &Attempts<'_>,
    ) -> Result<Attempt, Failure> {
        let status = resp.status();
        if retry::retryable_status(status) && !attempts.exhausted() {
            let err = ClientError::from_response(
                req.method.as_str(),
                resp.url().as_str(),
                status.as_u16(),
                b"",
            );
            return Err(Failure::retry(err, Some(resp.headers().clone())));
        }
        match buffer {
            None => Ok(Attempt::Done(resp)),
            Some(limit) => Ok(Attempt::Buffered(self.read_body(req, resp, limit).await?)),
        }
    }

    pub(crate) fn timeout_error(&self, req: &Req) -> ClientError {
        ClientError::Timeout {
            method: req.method.to_string(),
            url: req.url.to_string(),
            timeout: self.opts.timeout,
        }
    }

    /// Reads a response body into memory.
    async fn read_body(
        &self,
        req: &Req,
        resp: reqwest::Response,
        limit: usize,
    ) -> Result<Buffered, Failure> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let url = resp.url().clone();
        if req.method == Method::HEAD {
            return Ok(Buffered {
                status,
                headers,
                url,
                body: Bytes::new(),
            });
        }
        if let Some(len) = resp.content_length() {
            if len > limit as u64 {
                return Err(Failure::fatal(ClientError::Protocol(format!(
                    "{} {url}: response of {len} bytes exceeds the {limit}-byte limit",
                    req.method
                ))));
            }
        }
        let mut stream = resp.bytes_stream();
        let mut body: Vec<u8> = Vec::new();
        loop {
            let next = tokio::time::timeout(self.opts.timeout, stream.next()).await;
            match next {
                Err(_) => return Err(Failure::retry(self.timeout_error(req), None)),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Failure::transport(
                        &e,
                        req.method.as_str(),
                        url.as_str(),
                        &self.opts,
                    ))
                }
                Ok(Some(Ok(chunk))) => {
                    if body.len() + chunk.len() > limit {
                        return Err(Failure::fatal(ClientError::Protocol(format!(
                            "{} {url}: response exceeds the {limit}-byte limit",
                            req.method
                        ))));
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        Ok(Buffered {
            status,
            headers,
            url,
            body: Bytes::from(body),
        })
    }

    /// Reads a (small) error body and turns the response into a [`ClientError::Registry`].
    pub(crate) async fn error_from(&self, method: &Method, resp: reqwest::Response) -> ClientError {
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let body = tokio::time::timeout(self.opts.timeout, resp.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let body = &body[..body.len().min(64 * 1024)];
        ClientError::from_response(method.as_str(), &url, status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_only_without_progress() {
        let p = Progress::new();
        let slow = tokio::time::sleep(Duration::from_secs(10));
        assert!(with_idle_timeout(slow, Duration::from_secs(1), &p)
            .await
            .is_none());

        let p = Progress::new();
        let p2 = p.clone();
        let busy = async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                p2.touch();
            }
            7
        };
        assert_eq!(
            with_idle_timeout(busy, Duration::from_secs(1), &p).await,
            Some(7)
        );
    }
}
