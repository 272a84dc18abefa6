//! Blob downloads: streamed, hashed while streaming, resumed with `Range` after a broken
//! connection, verified against the digest at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use http::header::RANGE;
use http::{Method, StatusCode};
use ocireg_oci::{Digest, DigestHasher, RepoName};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::ClientError;
use crate::ratelimit::Op;
use crate::registry::{pull_scope, Registry};
use crate::retry::{Attempts, Failure};
use crate::transport::{Req, Transport};

/// `bytes <start>-<end>/<total|*>` → `(start, total)`.
fn content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "blob".into());
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.part-{}-{n}", std::process::id()))
}

/// How an answer to a (possibly ranged) `GET` of a blob continues the download.
enum Answer {
    /// Its body continues the blob after skipping this many bytes we already hold (a registry
    /// that ignores `Range` sends everything again).
    Body { skip: u64 },
    /// Nothing is left to read: a 416 once every byte is in.
    Complete,
    /// An error answer.
    Refused,
}

/// A download in progress: the bytes received and hashed so far, and the blob's length once an
/// answer told it.
struct Download<'a> {
    digest: &'a Digest,
    hasher: DigestHasher,
    received: u64,
    total: Option<u64>,
}

impl<'a> Download<'a> {
    fn new(digest: &'a Digest) -> Download<'a> {
        Download {
            digest,
            hasher: DigestHasher::new(digest.algorithm()),
            received: 0,
            total: None,
        }
    }

    /// Checks an answer against what has been received so far.
    fn answer(&mut self, resp: &reqwest::Response) -> Result<Answer, ClientError> {
        let received = self.received;
        match resp.status() {
            StatusCode::OK => {
                if let Some(len) = resp.content_length() {
                    if self.total.is_some_and(|t| t != len) {
                        return Err(ClientError::Protocol(format!(
                            "blob length changed between requests ({:?} then {len})",
                            self.total
                        )));
                    }
                    self.total = Some(len);
                }
                Ok(Answer::Body { skip: received })
            }
            StatusCode::PARTIAL_CONTENT if received > 0 => {
                let cr = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range);
                match cr {
                    Some((start, t)) if start == received => {
                        if t.is_some() {
                            self.total = t;
                        }
                        Ok(Answer::Body { skip: 0 })
                    }
                    _ => Err(ClientError::Protocol(format!(
                        "resumed download from {received} got Content-Range {:?}",
                        resp.headers().get("content-range")
                    ))),
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if self.total == Some(received) => {
                Ok(Answer::Complete)
            }
            _ => Ok(Answer::Refused),
        }
    }

    /// Writes the answer's body into `dest`, hashing it, until it ends (`Ok`) or breaks.
    async fn body<W>(
        &mut self,
        resp: reqwest::Response,
        mut skip: u64,
        dest: &mut W,
        req: &Req,
        t: &Transport,
    ) -> Result<(), Failure>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut stream = resp.bytes_stream();
        loop {
            let chunk = match tokio::time::timeout(t.opts.timeout, stream.next()).await {
                Err(_) => return Err(Failure::retry(t.timeout_error(req), None)),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    return Err(Failure::transport(&e, "GET", req.url.as_str(), &t.opts))
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let mut data = &chunk[..];
            if skip > 0 {
                let n = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
                data = &data[n..];
                skip -= n as u64;
            }
            if data.is_empty() {
                continue;
            }
            self.hasher.update(data);
            dest.write_all(data)
                .await
                .map_err(|e| ClientError::io("writing the downloaded blob", e))?;
            self.received += data.len() as u64;
            if self.total.is_some_and(|t| self.received > t) {
                return Err(self.size_mismatch().into());
            }
        }
    }

    fn size_mismatch(&self) -> ClientError {
        ClientError::SizeMismatch {
            what: format!("blob {}", self.digest),
            expected: self.total.unwrap_or(0),
            actual: self.received,
        }
    }

    /// Checks the length and the digest of everything received.
    fn verify(self) -> Result<u64, ClientError> {
        if self.total.is_some_and(|t| t != self.received) {
            return Err(self.size_mismatch());
        }
        let actual = self.hasher.finish();
        if &actual != self.digest {
            return Err(ClientError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        Ok(self.received)
    }
}

impl Registry {
    /// Streams a blob into `dest`, hashing as it goes; returns its size. A broken connection
    /// (or a stall longer than `timeout`) resumes with `Range: bytes=<received>-` up to
    /// `retries` times in a row without progress. A digest or size mismatch is an error; `dest`
    /// then holds unverified bytes, so callers that must keep nothing should use
    /// [`Registry::pull_blob_to_file`].
    pub async fn pull_blob<W>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        dest: &mut W,
    ) -> Result<u64, ClientError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let url = self.url(&ocireg_api::blob_path(repo, digest))?;
        let mut download = Download::new(digest);
        let mut attempts = Attempts::new(&self.t.opts);
        loop {
            let mut req = Req::new(Method::GET, url.clone(), vec![pull_scope(repo)], Op::Pull);
            if download.received > 0 {
                req = req.header(RANGE, &format!("bytes={}-", download.received));
            }
            let resp = self.t.send_counted(&req, &mut attempts).await?;
            let skip = match download.answer(&resp)? {
                Answer::Body { skip } => skip,
                Answer::Complete => break,
                Answer::Refused => return Err(self.t.error_from(&Method::GET, resp).await),
            };
            let before = download.received;
            match download.body(resp, skip, dest, &req, &self.t).await {
                Ok(()) => break,
                Err(f) => {
                    if download.received > before {
                        attempts.progressed();
                    }
                    attempts.after(f, "download broke; resuming").await?;
                }
            }
        }
        dest.flush()
            .await
            .map_err(|e| ClientError::io("writing the downloaded blob", e))?;
        download.verify()
    }

    /// Downloads a blob to `path` through a temporary file in the same directory, renamed into
    /// place only once size and digest check out; on any error nothing is left behind.
    pub async fn pull_blob_to_file(
        &self,
        repo: &RepoName,
        digest: &Digest,
        path: &Path,
    ) -> Result<u64, ClientError> {
        let tmp = temp_path(path);
        let result = async {
            let file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| ClientError::io(format!("creating {}", tmp.display()), e))?;
            let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, file);
            let n = self.pull_blob(repo, digest, &mut w).await?;
            let file = w.into_inner();
            file.sync_all()
                .await
                .map_err(|e| ClientError::io(format!("syncing {}", tmp.display()), e))?;
            drop(file);
            tokio::fs::rename(&tmp, path)
                .await
                .map_err(|e| ClientError::io(format!("renaming into {}", path.display()), e))?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(content_range("bytes=5-9/10"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn temp_files_are_hidden_siblings() {
        let t = temp_path(Path::new("/a/b/blob.bin"));
        assert_eq!(t.parent(), Some(Path::new("/a/b")));
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".blob.bin.part-"), "{name}");
    }
}
