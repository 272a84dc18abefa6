//! [`ObjectWriter`]: a [`FileWriter`] whose bytes and state live in the bucket (see the module
//! docs of `object/mod.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::PutPayload;

use super::session::{self, get_all, load_state, save_state};
use super::state::{plan_parts, Part, Piece, State, Upload, MAX_PARTS};
use super::{paths, Inner};
use crate::driver::{FileWriter, Version};
use crate::error::{Result, StoreError};

/// A writer on a session object.
pub(crate) struct ObjectWriter {
    inner: Arc<Inner>,
    key: String,
    /// The state as this writer last stored or read it: recorded parts, size and tail are
    /// those of the last writer that closed; only the upload and its claims change here.
    state: State,
    /// The state object's version (`None`: there is none yet).
    version: Option<Version>,
    /// Bytes after the last part: the old tail (once loaded) and what came since.
    buffer: Vec<Bytes>,
    buffered: usize,
    tail_loaded: bool,
    /// Parts this writer uploaded, recorded in the state when it closes.
    new_parts: Vec<Part>,
    size: u64,
    written: bool,
}

impl ObjectWriter {
    /// Opens a writer on `key`; see [`crate::driver::Driver::writer`].
    pub(crate) async fn open(inner: Arc<Inner>, key: &str, append: bool) -> Result<ObjectWriter> {
        let path = inner.path(key);
        let (head, loaded) = tokio::join!(inner.store.head(&path), load_state(&inner, key));
        let existing = match head {
            Ok(meta) => Some(meta.size),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(inner.err("open writer", key, e)),
        };
        let mut loaded = loaded?;
        let stale = loaded.is_some() && existing.is_some_and(|size| size > 0);
        if stale || (!append && loaded.is_some()) {
            // A session replaced by a plain object, or truncated: its state goes.
            session::remove_session(&inner, key).await?;
            loaded = None;
        }
        let (state, version) = match loaded {
            Some((state, _, _)) if state.upload.as_ref().is_some_and(|u| u.sealed.is_some()) => {
                // A completion was left half-way: finish it before adding anything.
                let (state, version) = session::complete(&inner, key).await?;
                (state, Some(version))
            }
            Some((state, version, _)) => (state, Some(version)),
            None => match existing {
                Some(size) if append && size > 0 => adopt(&inner, key, size).await?,
                _ => (State::default(), None),
            },
        };
        if existing.is_none() || !append || (version.is_some() && existing != Some(0)) {
            // Like a file opened for writing, the object exists (empty: a session's bytes
            // are described by its state) from now on.
            inner
                .store
                .put(&path, PutPayload::new())
                .await
                .map_err(|e| inner.err("open writer", key, e))?;
        }
        Ok(ObjectWriter {
            size: state.size,
            inner,
            key: key.to_owned(),
            state,
            version,
            buffer: Vec::new(),
            buffered: 0,
            tail_loaded: false,
            new_parts: Vec::new(),
            written: false,
        })
    }

    /// Takes the first `len` buffered bytes (a part).
    fn take(&mut self, len: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut need = len;
        while need > 0 && !self.buffer.is_empty() {
            let first = &mut self.buffer[0];
            if first.len() <= need {
                need -= first.len();
                out.push(self.buffer.remove(0));
            } else {
                out.push(first.split_to(need));
                need = 0;
            }
        }
        self.buffered -= len - need;
        out
    }

    /// Uploads one part: claims its index in the state first.
    async fn upload_part(&mut self, bytes: Vec<Bytes>) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let key = self.key.as_str();
        let mut created = None;
        if self.state.upload.is_none() {
            let segment = paths::fresh(key, "seg");
            let id = inner
                .multipart
                .create_multipart(&inner.path(&segment))
                .await
                .map_err(|e| inner.err("start an upload", key, e))?;
            created = Some((segment.clone(), id.clone()));
            self.state.upload = Some(Upload {
                key: segment,
                id,
                next_part: 0,
                parts: Vec::new(),
                sealed: None,
            });
        }
        let Some(upload) = self.state.upload.as_mut() else {
            return Err(StoreError::Internal("upload vanished".into()));
        };
        let index = upload.next_part;
        if index >= MAX_PARTS {
            return Err(StoreError::Internal(format!(
                "session {key} reached {MAX_PARTS} parts"
            )));
        }
        upload.next_part += 1;
        let (segment, id) = (upload.key.clone(), upload.id.clone());
        let claimed = save_state(&inner, key, &self.state, self.version.as_ref()).await;
        let version = match claimed {
            Ok(version) => version,
            Err(e) => {
                if let Some((segment, id)) = created {
                    let _ = inner
                        .multipart
                        .abort_multipart(&inner.path(&segment), &id)
                        .await;
                }
                return Err(e);
            }
        };
        self.version = Some(version);
        let size = bytes.iter().map(|b| b.len() as u64).sum();
        let payload: PutPayload = bytes.into_iter().collect();
        let part = inner
            .multipart
            .put_part(&inner.path(&segment), &id, index, payload)
            .await
            .map_err(|e| inner.err("upload a part", key, e))?;
        self.new_parts.push(Part {
            index,
            id: part.content_id,
            size,
        });
        Ok(())
    }

    /// Records the writer's parts and the rest of its bytes (as a new tail) in the state.
    async fn finish(&mut self) -> Result<u64> {
        if !self.written {
            return Ok(self.size);
        }
        let inner = Arc::clone(&self.inner);
        let key = self.key.as_str();
        let tail = if self.buffered > 0 {
            let tail_key = paths::fresh(key, "tail");
            let payload: PutPayload = self.buffer.iter().cloned().collect();
            inner
                .store
                .put(&inner.path(&tail_key), payload)
                .await
                .map_err(|e| inner.err("store the tail", key, e))?;
            Some(Piece {
                key: tail_key,
                size: self.buffered as u64,
            })
        } else {
            None
        };
        let mut next = self.state.clone();
        if let Some(upload) = next.upload.as_mut() {
            upload.parts.extend(self.new_parts.iter().cloned());
        }
        next.size = self.size;
        next.tail = tail.clone();
        match save_state(&inner, key, &next, self.version.as_ref()).await {
            Ok(version) => {
                if let Some(old) = self.state.tail.take() {
                    let _ = inner.store.delete(&inner.path(&old.key)).await;
                }
                self.state = next;
                self.version = Some(version);
                self.new_parts.clear();
                self.written = false;
                Ok(self.size)
            }
            Err(e) => {
                if let Some(t) = tail {
                    let _ = inner.store.delete(&inner.path(&t.key)).await;
                }
                Err(e)
            }
        }
    }
}

/// Makes the plain object `key` (`size` bytes) the first segment of a new session.
async fn adopt(inner: &Inner, key: &str, size: u64) -> Result<(State, Option<Version>)> {
    let segment = paths::fresh(key, "seg");
    session::copy_object(inner, key, &segment, size).await?;
    let state = State {
        size,
        segments: vec![Piece { key: segment, size }],
        upload: None,
        tail: None,
    };
    let version = save_state(inner, key, &state, None).await?;
    Ok((state, Some(version)))
}

#[async_trait]
impl FileWriter for ObjectWriter {
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        if !self.tail_loaded {
            if let Some(tail) = &self.state.tail {
                let bytes = get_all(&self.inner, &self.key, &tail.key).await?;
                self.buffered += bytes.len();
                self.buffer.insert(0, bytes);
            }
            self.tail_loaded = true;
        }
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            self.size += chunk.len() as u64;
            self.buffered += chunk.len();
            self.buffer.push(chunk);
            self.written = true;
        }
        for len in plan_parts(self.buffered) {
            let part = self.take(len);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn commit(mut self: Box<Self>) -> Result<u64> {
        self.finish().await
    }

    async fn close(mut self: Box<Self>) -> Result<u64> {
        self.finish().await
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        let inner = &self.inner;
        session::remove_session(inner, &self.key).await?;
        match inner.store.delete(&inner.path(&self.key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(inner.err("cancel", &self.key, e)),
        }
    }
}
