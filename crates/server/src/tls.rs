//! TLS (rustls): server certificate and key from PEM files, optional client certificates
//! verified against a CA bundle, and reload without restart — the files are checked (at most
//! once a second, on new connections) and a changed set is loaded; a broken new set is logged
//! and the previous one kept. A plain-HTTP request to the TLS port is answered `400` in plain
//! HTTP and the connection closed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::ServerError;

/// Where the TLS material lives.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// PEM certificate chain (leaf first).
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed.
    pub client_ca_path: Option<PathBuf>,
}

type Stamp = Vec<Option<SystemTime>>;

/// The current rustls config, reloaded when the files change.
pub(crate) struct Reloading {
    opts: TlsOptions,
    state: Mutex<(Arc<ServerConfig>, Stamp, Instant)>,
    /// Bumped (SIGHUP) to force a reload on the next connection.
    forced: Arc<AtomicU64>,
    forced_seen: AtomicU64,
}

const CHECK_EVERY: Duration = Duration::from_secs(1);

fn tls_err(message: String) -> ServerError {
    ServerError::Tls(message)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Reloading {
    /// Loads the files (fails at start when they are unusable).
    pub(crate) fn new(opts: TlsOptions, forced: Arc<AtomicU64>) -> Result<Self, ServerError> {
        let stamp = stamp(&opts);
        let config = load(&opts)?;
        let seen = forced.load(Ordering::Acquire);
        Ok(Self {
            opts,
            state: Mutex::new((config, stamp, Instant::now())),
            forced,
            forced_seen: AtomicU64::new(seen),
        })
    }

    /// The config for a new connection.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        let mut state = self.state.lock();
        let generation = self.forced.load(Ordering::Acquire);
        let forced = self.forced_seen.swap(generation, Ordering::AcqRel) != generation;
        if forced || state.2.elapsed() >= CHECK_EVERY {
            state.2 = Instant::now();
            let now = stamp(&self.opts);
            if forced || now != state.1 {
                match load(&self.opts) {
                    Ok(config) => {
                        tracing::info!(forced, "TLS certificate files reloaded");
                        state.0 = config;
                        state.1 = now;
                    }
                    Err(err) => {
                        tracing::warn!(%err, "TLS certificate files changed but cannot be loaded; keeping the previous ones");
                        state.1 = now;
                    }
                }
            }
        }
        state.0.clone()
    }
}

fn stamp(opts: &TlsOptions) -> Stamp {
    let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut out = vec![mtime(&opts.cert_path), mtime(&opts.key_path)];
    if let Some(ca) = &opts.client_ca_path {
        out.push(mtime(ca));
    }
    out
}

fn certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(format!("certificates {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

fn load(opts: &TlsOptions) -> Result<Arc<ServerConfig>, ServerError> {
    let chain = certs(&opts.cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&opts.key_path)
        .map_err(|e| tls_err(format!("private key {}: {e}", opts.key_path.display())))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = match &opts.client_ca_path {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| tls_err(format!("CA {}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| tls_err(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The answer to a plain-HTTP request on the TLS port.
pub(crate) const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 48\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
