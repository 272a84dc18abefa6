//! Streaming uploads: content whose digest and size are known only once it has all been
//! produced (an artifact packed while it is uploaded).

use bytes::{Bytes, BytesMut};
use ocireg_oci::{Algorithm, Digest, DigestHasher, RepoName};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::ClientError;
use crate::push::Session;
use crate::registry::Registry;
use crate::retry::Attempts;
use crate::source::pieces;
use crate::transport::Progress;

/// Reads up to `want` bytes (fewer only at the end of the stream), hashing them.
async fn read_chunk<R: AsyncRead + Unpin>(
    reader: &mut R,
    want: usize,
    hasher: &mut DigestHasher,
) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::with_capacity(want);
    while buf.len() < want {
        let n = reader
            .read_buf(&mut buf)
            .await
            .map_err(|e| ClientError::io("reading the blob stream", e))?;
        if n == 0 {
            break;
        }
    }
    hasher.update(&buf);
    Ok(buf.freeze())
}

impl Registry {
    /// Uploads everything `reader` yields as one blob whose sha256 digest and size are computed
    /// on the way, and returns them. The stream is cut into chunks of `chunk_size` (at least the
    /// registry's `OCI-Chunk-Min-Length`): each is `PATCH`ed while the next one is read, and the
    /// upload is closed with `PUT ?digest=<computed>`. A stream that fits in one chunk no larger
    /// than `monolithic_threshold` goes in that `PUT`. Memory: about two chunks.
    ///
    /// Resume: after a dropped connection, timeout, 5xx or 429 the registry's offset is asked
    /// for and the upload resumes there when it lies in the chunk held in memory (at most
    /// `retries` failures in a row). The stream cannot be rewound, so when the registry lost the
    /// session (or reports an offset before the current chunk) once data has been committed,
    /// the upload fails and the caller must produce the stream again and restart.
    pub async fn push_blob_streaming<R>(
        &self,
        repo: &RepoName,
        mut reader: R,
    ) -> Result<(Digest, u64), ClientError>
    where
        R: AsyncRead + Unpin,
    {
        let opts = &self.t.opts;
        let mut session = self.start_upload(repo).await?;
        let chunk = opts.chunk_size.max(session.min_chunk.unwrap_or(0)).max(1);
        let want = usize::try_from(chunk).unwrap_or(usize::MAX);
        let mut hasher = DigestHasher::new(Algorithm::Sha256);
        let mut cur = read_chunk(&mut reader, want, &mut hasher).await?;
        if cur.len() < want && cur.len() as u64 <= opts.monolithic_threshold {
            let size = cur.len() as u64;
            let digest = hasher.finish();
            self.finish_upload(repo, &digest, &mut session, Some(cur))
                .await?;
            return Ok((digest, size));
        }
        let mut start: u64 = 0;
        loop {
            let last = cur.len() < want;
            if last {
                self.send_chunk(repo, &mut session, &cur, start).await?;
                start += cur.len() as u64;
                break;
            }
            let (sent, next) = tokio::join!(
                self.send_chunk(repo, &mut session, &cur, start),
                read_chunk(&mut reader, want, &mut hasher)
            );
            sent?;
            start += cur.len() as u64;
            cur = next?;
        }
        let digest = hasher.finish();
        self.finish_upload(repo, &digest, &mut session, None)
            .await?;
        Ok((digest, start))
    }

    /// Sends `data` (the stream's bytes from `start`) with `PATCH`es, resuming from the
    /// registry's offset inside `data` after a failure.
    async fn send_chunk(
        &self,
        repo: &RepoName,
        session: &mut Session,
        data: &Bytes,
        start: u64,
    ) -> Result<(), ClientError> {
        let end = start + data.len() as u64;
        let mut offset = start;
        let mut attempts = Attempts::new(&self.t.opts);
        while offset < end {
            let progress = Progress::new();
            let from = usize::try_from(offset - start).unwrap_or(usize::MAX);
            let body = pieces(data.slice(from.min(data.len())..), &progress);
            let sent = self
                .send_patch(repo, session, body, offset, end - offset, &progress)
                .await;
            let Err(failure) = attempts
                .advanced(sent, offset, end)
                .map(|next| offset = next)
            else {
                continue;
            };
            let what = "streamed chunk failed; resuming from the registry's offset";
            match self.resume(repo, session, &mut attempts, failure, what).await? {
                Some(off) if off < start || off > end => {
                    return Err(ClientError::Protocol(format!(
                        "the registry holds {off} bytes, but a streamed upload can only resume within {start}..={end} (the chunk in memory); restart the upload"
                    )));
                }
                Some(off) => offset = off,
                None if start == 0 => {
                    tracing::debug!("upload session lost in the first chunk; starting a new one");
                    *session = self.start_upload(repo).await?;
                    offset = 0;
                }
                None => {
                    return Err(ClientError::Protocol(
                        "the registry lost the upload session of a streamed upload, which cannot be rewound; restart the upload".into(),
                    ))
                }
            }
        }
        Ok(())
    }
}
