//! Test harness: registries to talk to (the real `ocireg serve` binary, Debian's CNCF
//! Distribution 2.8.2 with htpasswd, TLS or token auth; both from `ocireg-test-support`),
//! certificates, blob files, and (submodules) a fault-injecting proxy, a CONNECT proxy and a token server.
//! Every server listens on 127.0.0.1 and is killed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fault;
pub mod roundtrip;
pub mod token;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ocireg_client::{ClientOptions, Credentials, Registry};
use ocireg_oci::{Algorithm, Digest, DigestHasher, RepoName};
use ocireg_test_support::{Distribution, Serve};

// Each test binary uses a different part of the harness.
#[allow(unused_imports)]
pub use ocireg_test_support::tls::{make_ca_signed, make_self_signed};
#[allow(unused_imports)]
pub use ocireg_test_support::{free_port, TlsFiles, TokenAuth};

/// A server task of a test, aborted when its owner drops.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Options for tests: short timeouts and fast retries.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(20),
        retries: 3,
        retry_delay: Duration::from_millis(50),
        retry_backoff: 2.0,
        ..ClientOptions::default()
    }
}

/// [`fast_options`] with 1 MiB chunks and monolithic threshold, so that blobs of a few MiB
/// go up in several chunks.
pub fn small_chunks() -> ClientOptions {
    ClientOptions {
        chunk_size: 1024 * 1024,
        monolithic_threshold: 1024 * 1024,
        ..fast_options()
    }
}

/// A repository name.
pub fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill_pseudo_random(&mut out, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    out
}

fn fill_pseudo_random(buf: &mut [u8], mut state: u64) -> u64 {
    for chunk in buf.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    state
}

/// Writes `size` pseudo-random bytes to `dir/name` in 1 MiB pieces; returns path and digest.
pub fn write_blob_file(dir: &Path, name: &str, size: u64, seed: u64) -> (PathBuf, Digest) {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        state = fill_pseudo_random(&mut buf[..n], state);
        hasher.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    (path, hasher.finish())
}

/// SHA-256 digest of bytes.
pub fn sha256(data: &[u8]) -> Digest {
    Digest::compute(Algorithm::Sha256, data)
}

/// The process behind a [`TestRegistry`].
enum Proc {
    Ocireg(Serve),
    Distribution(Distribution),
}

/// A registry under test, killed on drop.
pub struct TestRegistry {
    /// Base URL, `http(s)://127.0.0.1:PORT`.
    pub url: String,
    /// The address.
    pub addr: SocketAddr,
    proc: Proc,
}

impl TestRegistry {
    /// A client for this registry.
    pub fn client(&self, creds: Credentials, opts: ClientOptions) -> Registry {
        Registry::new(&self.url, creds, opts).unwrap()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        match &self.proc {
            Proc::Ocireg(s) => s.log_text(),
            Proc::Distribution(d) => d.log_text(),
        }
    }
}

/// Starts `ocireg serve --listen 127.0.0.1:0 --root <tmp>` (the binary built on demand).
pub fn start_ocireg() -> TestRegistry {
    let s = Serve::start();
    TestRegistry {
        url: s.base.clone(),
        addr: s.addr,
        proc: Proc::Ocireg(s),
    }
}

/// How to configure Distribution.
#[derive(Clone, Debug, Default)]
pub struct DistOptions {
    /// htpasswd users.
    pub htpasswd: Vec<(String, String)>,
    /// Serve TLS.
    pub tls: Option<TlsFiles>,
    /// Token auth.
    pub token: Option<TokenAuth>,
}

/// Starts Debian's CNCF Distribution 2.8.2 with a fresh filesystem root.
pub fn start_distribution(o: &DistOptions) -> TestRegistry {
    let mut b = Distribution::builder();
    for (u, p) in &o.htpasswd {
        b = b.user(u, p);
    }
    if let Some(t) = &o.tls {
        b = b.tls(t.clone());
    }
    if let Some(t) = &o.token {
        b = b.token(t.clone());
    }
    let d = b.start();
    TestRegistry {
        url: d.base.clone(),
        addr: d.addr,
        proc: Proc::Distribution(d),
    }
}

/// Distribution as [`start_distribution`] with `base`, serving TLS with a certificate signed by
/// a fresh test CA (`ca_signed`) or a self-signed one; the directory holds the PKI files.
pub fn start_distribution_tls(
    base: DistOptions,
    ca_signed: bool,
) -> (tempfile::TempDir, TlsFiles, TestRegistry) {
    let pki = tempfile::tempdir().unwrap();
    let tls = if ca_signed {
        make_ca_signed(pki.path())
    } else {
        make_self_signed(pki.path())
    };
    let reg = start_distribution(&DistOptions {
        tls: Some(tls.clone()),
        ..base
    });
    (pki, tls, reg)
}

/// An OCI image manifest over the given config and layer blobs.
pub fn image_manifest(config: (&Digest, u64), layers: &[(&Digest, u64)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": ocireg_oci::media_types::OCI_MANIFEST,
        "config": {"mediaType": ocireg_oci::media_types::OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": ocireg_oci::media_types::OCI_LAYER_TAR_GZIP, "digest": d, "size": s
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}
