//! An in-memory driver, for tests and ephemeral registries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use parking_lot::RwLock;

use super::{
    key_prefix, range_end, validate_key, Driver, FileWriter, ObjectMeta, Precondition, Version,
};
use crate::error::{Result, StoreError};
use crate::ByteStream;

/// Chunk size of streams handed out by [`MemoryDriver::reader`].
const READ_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    modified: SystemTime,
}

type Objects = Arc<RwLock<BTreeMap<String, Object>>>;

/// Keeps every object in a sorted map; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct MemoryDriver {
    objects: Objects,
    /// Reported by [`Driver::shared`]: clones stand for replicas on one bucket.
    shared: bool,
}

impl MemoryDriver {
    /// An empty in-memory store.
    pub fn new() -> MemoryDriver {
        MemoryDriver::default()
    }

    /// An empty in-memory store whose clones stand for processes sharing one storage (replicas
    /// on one bucket, in tests): [`Driver::shared`] answers `true`, so a store over each clone
    /// revalidates what it caches, as over an object store.
    pub fn shared_by_replicas() -> MemoryDriver {
        MemoryDriver {
            shared: true,
            ..MemoryDriver::default()
        }
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get_content(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        self.objects
            .read()
            .get(key)
            .map(|o| o.data.clone())
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })
    }

    fn shared(&self) -> bool {
        self.shared
    }

    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version)> {
        let data = self.get_content(key).await?;
        let version = Version::of_content(&data);
        Ok((data, version))
    }

    async fn put_if(&self, key: &str, content: Bytes, condition: Precondition) -> Result<Version> {
        validate_key(key)?;
        let version = Version::of_content(&content);
        let mut objects = self.objects.write();
        let holds = match (&condition, objects.get(key)) {
            (Precondition::Absent, None) => true,
            (Precondition::Matches(want), Some(o)) => Version::of_content(&o.data) == *want,
            _ => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed {
                key: key.to_owned(),
            });
        }
        let object = Object {
            data: content,
            modified: SystemTime::now(),
        };
        objects.insert(key.to_owned(), object);
        Ok(version)
    }

    async fn put_content(&self, key: &str, content: Bytes) -> Result<()> {
        validate_key(key)?;
        let object = Object {
            data: content,
            modified: SystemTime::now(),
        };
        self.objects.write().insert(key.to_owned(), object);
        Ok(())
    }

    async fn reader(&self, key: &str, offset: u64, len: Option<u64>) -> Result<(u64, ByteStream)> {
        let data = self.get_content(key).await?;
        let size = data.len() as u64;
        let end = range_end(key, size, offset, len)?;
        let (start, end) = (to_usize(offset)?, to_usize(end)?);
        let body = data.slice(start..end);
        let chunks: Vec<std::io::Result<Bytes>> = (0..body.len())
            .step_by(READ_CHUNK)
            .map(|at| Ok(body.slice(at..body.len().min(at + READ_CHUNK))))
            .collect();
        Ok((size, Box::pin(stream::iter(chunks))))
    }

    async fn writer(&self, key: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        validate_key(key)?;
        let mut buffer = BytesMut::new();
        if append {
            if let Some(existing) = self.objects.read().get(key) {
                buffer.extend_from_slice(&existing.data);
            }
        }
        // Like a file opened for writing, the object exists (possibly empty) from now on.
        let object = Object {
            data: buffer.clone().freeze(),
            modified: SystemTime::now(),
        };
        self.objects.write().insert(key.to_owned(), object);
        Ok(Box::new(MemoryWriter {
            objects: Arc::clone(&self.objects),
            key: key.to_owned(),
            buffer,
        }))
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        self.objects
            .read()
            .get(key)
            .map(|o| ObjectMeta {
                key: key.to_owned(),
                size: o.data.len() as u64,
                modified: o.modified,
            })
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        super::check_prefix(prefix)?;
        let dir = key_prefix(prefix);
        let objects = self.objects.read();
        let mut out: Vec<String> = Vec::new();
        for key in objects.range(dir.clone()..).map(|(k, _)| k) {
            let Some(rest) = key.strip_prefix(&dir) else {
                break;
            };
            let child = rest.split('/').next().unwrap_or(rest);
            let full = format!("{dir}{child}");
            if out.last() != Some(&full) {
                out.push(full);
            }
        }
        Ok(out)
    }

    async fn walk(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        super::check_prefix(prefix)?;
        let dir = key_prefix(prefix);
        let objects = self.objects.read();
        Ok(objects
            .range(dir.clone()..)
            .take_while(|(k, _)| k.starts_with(&dir))
            .map(|(k, o)| ObjectMeta {
                key: k.clone(),
                size: o.data.len() as u64,
                modified: o.modified,
            })
            .collect())
    }

    async fn move_object(&self, from: &str, to: &str) -> Result<()> {
        validate_key(from)?;
        validate_key(to)?;
        let mut objects = self.objects.write();
        let object = objects.remove(from).ok_or_else(|| StoreError::NotFound {
            key: from.to_owned(),
        })?;
        objects.insert(to.to_owned(), object);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let dir = key_prefix(key);
        let mut objects = self.objects.write();
        let mut removed = objects.remove(key).is_some();
        let below: Vec<String> = objects
            .range(dir.clone()..)
            .take_while(|(k, _)| k.starts_with(&dir))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            objects.remove(&k);
            removed = true;
        }
        if removed {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                key: key.to_owned(),
            })
        }
    }
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| StoreError::Internal(format!("offset {v} exceeds memory")))
}

struct MemoryWriter {
    objects: Objects,
    key: String,
    buffer: BytesMut,
}

impl MemoryWriter {
    fn publish(&self) -> u64 {
        let object = Object {
            data: self.buffer.clone().freeze(),
            modified: SystemTime::now(),
        };
        self.objects.write().insert(self.key.clone(), object);
        self.buffer.len() as u64
    }
}

#[async_trait]
impl FileWriter for MemoryWriter {
    async fn write(&mut self, chunks: Vec<Bytes>) -> Result<()> {
        for chunk in chunks {
            self.buffer.extend_from_slice(&chunk);
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.buffer.len() as u64
    }

    async fn commit(self: Box<Self>) -> Result<u64> {
        Ok(self.publish())
    }

    async fn close(self: Box<Self>) -> Result<u64> {
        Ok(self.publish())
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        self.objects.write().remove(&self.key);
        Ok(())
    }
}
