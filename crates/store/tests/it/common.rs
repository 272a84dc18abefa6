//! Shared helpers: stores over both drivers, byte streams, manifest builders.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use ocireg_oci::{Algorithm, Digest, Reference, RepoName};
use ocireg_store::{ByteStream, Chunk, Driver, FsDriver, MemoryDriver, Store, StoreOptions};
use serde_json::{json, Value};

/// Deterministic pseudo-random bytes.
pub use ocireg_test_support::xorshift::bytes;

/// A store over one of the drivers, reopenable on the same storage.
pub struct Harness {
    pub driver: Arc<dyn Driver>,
    pub dir: Option<tempfile::TempDir>,
    pub opts: StoreOptions,
}

impl Harness {
    pub async fn memory(opts: StoreOptions) -> Harness {
        Harness {
            driver: Arc::new(MemoryDriver::new()),
            dir: None,
            opts,
        }
    }

    pub async fn fs(opts: StoreOptions) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let driver = FsDriver::open(dir.path()).await.unwrap();
        Harness {
            driver: Arc::new(driver),
            dir: Some(dir),
            opts,
        }
    }

    /// Both backends with the given options.
    pub async fn both(opts: StoreOptions) -> Vec<Harness> {
        vec![Harness::memory(opts.clone()).await, Harness::fs(opts).await]
    }

    /// Both storages, each with a store opened on it and the repository `name` to work in.
    pub async fn opened(opts: StoreOptions, name: &str) -> Vec<(Harness, Store, RepoName)> {
        let mut out = Vec::new();
        for mut h in Harness::both(opts).await {
            let store = h.open().await;
            out.push((h, store, repo(name)));
        }
        out
    }

    /// Opens a (new) store on this storage; for the filesystem a fresh driver, like a restart.
    pub async fn open(&mut self) -> Store {
        if let Some(dir) = &self.dir {
            let driver = FsDriver::open(dir.path()).await.unwrap();
            self.driver = Arc::new(driver);
        }
        Store::open(Arc::clone(&self.driver), self.opts.clone())
            .await
            .unwrap()
    }

    pub fn name(&self) -> &'static str {
        self.driver.name()
    }

    /// Keys of every object below `prefix`.
    /// Keys under `repositories/` whose path contains `needle` (e.g. `"/_uploads/"`).
    pub async fn repository_keys(&self, needle: &str) -> Vec<String> {
        let mut keys = self.keys("repositories").await;
        keys.retain(|k| k.contains(needle));
        keys
    }

    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        self.driver
            .walk(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect()
    }

    /// True when the shared blob store holds an object with this content's digest.
    pub async fn holds_blob(&self, data: &[u8]) -> bool {
        let hex = sha256(data).hex().to_owned();
        self.keys("blobs").await.iter().any(|k| k.ends_with(&hex))
    }
}

pub fn dedupe() -> StoreOptions {
    StoreOptions {
        dedupe: true,
        ..Default::default()
    }
}

pub fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

pub fn tag(name: &str) -> Reference {
    Reference::Tag(name.parse().unwrap())
}

pub fn by_digest(d: &Digest) -> Reference {
    Reference::Digest(d.clone())
}

pub fn sha256(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha256, data)
}

pub fn sha512(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha512, data)
}

/// The data as a stream of uneven chunks.
pub fn body(data: &[u8]) -> ByteStream {
    let mut chunks = Vec::new();
    let mut at = 0;
    let mut size = 1000;
    while at < data.len() {
        let end = data.len().min(at + size);
        chunks.push(Ok(Bytes::copy_from_slice(&data[at..end])));
        at = end;
        size = (size * 3 + 7) % 300_000 + 1;
    }
    Box::pin(stream::iter(chunks))
}

/// A stream that yields `data` and then fails, like a client that went away.
pub fn failing_body(data: &[u8]) -> ByteStream {
    let chunks = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    Box::pin(stream::iter(chunks))
}

pub async fn collect(mut s: ByteStream) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// A filesystem driver over a fresh temporary directory (removed when the guard drops).
pub async fn fresh_fs_driver() -> (tempfile::TempDir, FsDriver) {
    let dir = tempfile::tempdir().unwrap();
    let driver = FsDriver::open(dir.path()).await.unwrap();
    (dir, driver)
}

/// Writes `data` at `key` with a plain (unjournaled) put.
pub async fn put(driver: &dyn Driver, key: &str, data: &'static [u8]) {
    driver
        .put_content(key, Bytes::from_static(data))
        .await
        .unwrap();
}

/// Starts an upload session in `r` with `first` as its first chunk; returns the session id.
pub async fn upload_with_first_chunk(store: &Store, r: &RepoName, first: &[u8]) -> String {
    let id = store.upload_start(r, None).await.unwrap();
    store
        .upload_append(r, &id, Chunk::new(body(first)).at(0))
        .await
        .unwrap();
    id
}

/// The whole content of blob `d` as served from repository `name`.
pub async fn read_blob(store: &Store, name: &str, d: &Digest) -> Vec<u8> {
    collect(store.blob_read(&repo(name), d, None).await.unwrap().body).await
}

/// Pushes a blob with a single request and returns its digest.
pub async fn push_blob(store: &Store, name: &str, data: &[u8]) -> Digest {
    let d = sha256(data);
    store
        .blob_put(&repo(name), &d, body(data), None)
        .await
        .unwrap();
    d
}

pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(data).to_string(), "size": data.len() })
}

/// An OCI image manifest over the given config and layers.
pub fn image_manifest(config: &[u8], layers: &[&[u8]], extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": layers
            .iter()
            .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l))
            .collect::<Vec<_>>(),
    });
    if let (Value::Object(m), Value::Object(extra)) = (&mut m, extra) {
        m.extend(extra);
    }
    serde_json::to_vec_pretty(&m).unwrap()
}

/// Pushes config + layers and a manifest tagged `tag_name`; returns the manifest digest.
pub async fn push_image(store: &Store, name: &str, tag_name: &str, seed: u64) -> (Digest, Vec<u8>) {
    let config = bytes(300, seed);
    let layer = bytes(5000, seed + 1);
    push_blob(store, name, &config).await;
    push_blob(store, name, &layer).await;
    let manifest = image_manifest(&config, &[&layer], json!({}));
    let put = store
        .manifest_put(
            &repo(name),
            &tag(tag_name),
            None,
            Bytes::from(manifest.clone()),
        )
        .await
        .unwrap();
    (put.digest, manifest)
}
