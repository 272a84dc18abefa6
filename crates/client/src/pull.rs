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
use crate::retry;
use crate::transport::Req;

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
        let opts = &self.t.opts;
        let url = self.url(&ocireg_api::blob_path(repo, digest))?;
        let mut hasher = DigestHasher::new(digest.algorithm());
        let mut received: u64 = 0;
        let mut total: Option<u64> = None;
        let mut failures: u32 = 0;
        'attempts: loop {
            let mut req = Req::new(Method::GET, url.clone(), vec![pull_scope(repo)], Op::Pull);
            if received > 0 {
                req = req.header(RANGE, &format!("bytes={received}-"));
            }
            let resp = self.t.send_counted(&req, &mut failures).await?;
            let mut skip: u64 = 0;
            match resp.status() {
                StatusCode::OK => {
                    // A registry that ignores Range sends everything again: skip what we have.
                    skip = received;
                    if let Some(len) = resp.content_length() {
                        if total.is_some_and(|t| t != len) {
                            return Err(ClientError::Protocol(format!(
                                "blob length changed between requests ({total:?} then {len})"
                            )));
                        }
                        total = Some(len);
                    }
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
                                total = t;
                            }
                        }
                        _ => {
                            return Err(ClientError::Protocol(format!(
                                "resumed download from {received} got Content-Range {:?}",
                                resp.headers().get("content-range")
                            )))
                        }
                    }
                }
                StatusCode::RANGE_NOT_SATISFIABLE if total == Some(received) => break 'attempts,
                _ => return Err(self.t.error_from(&Method::GET, resp).await),
            }
            let before = received;
            let mut stream = resp.bytes_stream();
            let failure = loop {
                match tokio::time::timeout(opts.timeout, stream.next()).await {
                    Err(_) => break self.t.timeout_error(&req),
                    Ok(None) => break 'attempts,
                    Ok(Some(Err(e))) => {
                        let (err, retryable) = retry::classify(&e, "GET", url.as_str(), opts);
                        if !retryable {
                            return Err(err);
                        }
                        break err;
                    }
                    Ok(Some(Ok(chunk))) => {
                        let mut data = &chunk[..];
                        if skip > 0 {
                            let n = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
                            data = &data[n..];
                            skip -= n as u64;
                        }
                        if data.is_empty() {
                            continue;
                        }
                        hasher.update(data);
                        dest.write_all(data)
                            .await
                            .map_err(|e| ClientError::io("writing the downloaded blob", e))?;
                        received += data.len() as u64;
                        if total.is_some_and(|t| received > t) {
                            return Err(ClientError::SizeMismatch {
                                what: format!("blob {digest}"),
                                expected: total.unwrap_or(0),
                                actual: received,
                            });
                        }
                    }
                }
            };
            if received > before {
                failures = 0;
            }
            if failures >= opts.retries {
                return Err(failure);
            }
            let wait = retry::backoff(opts, failures);
            failures += 1;
            tracing::debug!(error = %failure, received, ?wait, "download broke; resuming");
            tokio::time::sleep(wait).await;
        }
        dest.flush()
            .await
            .map_err(|e| ClientError::io("writing the downloaded blob", e))?;
        if let Some(t) = total {
            if t != received {
                return Err(ClientError::SizeMismatch {
                    what: format!("blob {digest}"),
                    expected: t,
                    actual: received,
                });
            }
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(ClientError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(received)
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
