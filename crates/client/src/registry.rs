//! The [`Registry`] handle: construction, `/v2/` ping, blob existence, and manifests.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, Method};
use ocireg_oci::{media_types, Digest, Reference, RepoName};
use url::Url;

use crate::auth::AuthState;
use crate::connect;
use crate::error::ClientError;
use crate::options::{ClientOptions, Credentials};
use crate::ratelimit::{Limiter, Op};
use crate::transport::{Req, Transport};

/// The manifest types asked for when the caller gives no `Accept` list.
pub const DEFAULT_MANIFEST_ACCEPT: [&str; 4] = [
    media_types::OCI_MANIFEST,
    media_types::OCI_INDEX,
    media_types::DOCKER_MANIFEST,
    media_types::DOCKER_MANIFEST_LIST,
];

/// A manifest as fetched: exact bytes, media type and verified digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest bytes, exactly as served.
    pub bytes: Bytes,
    /// The `Content-Type` the registry sent (else the body's `mediaType`).
    pub media_type: String,
    /// The digest the bytes hash to (checked against the reference or `Docker-Content-Digest`).
    pub digest: Digest,
}

/// What a `HEAD` of a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Scope asking to read `repo`.
pub(crate) fn pull_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:pull")
}

/// Scope asking to read and write `repo`.
pub(crate) fn push_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:pull,push")
}

/// A handle on one registry (`http(s)://host[:port]`); cheap to clone, safe to share between tasks.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) t: Arc<Transport>,
}

fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

impl Registry {
    /// A handle on the registry at `base_url` (`http://` or `https://`, host, optional port).
    /// Plain HTTP or `verify_ssl = false` is refused unless the host is loopback or
    /// `allow_insecure` is set.
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Registry, ClientError> {
        let mut base = Url::parse(base_url)
            .map_err(|e| ClientError::Options(format!("registry URL {base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ClientError::Options(format!(
                "registry URL {base_url:?} must be http(s)://host[:port]"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ClientError::Options(
                "put credentials in Credentials, not in the registry URL".into(),
            ));
        }
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        connect::check_security(&base, &options)?;
        if options.chunk_size == 0 {
            return Err(ClientError::Options("chunk_size must be positive".into()));
        }
        let http = connect::build_http(&options)?;
        let limiter = Limiter::new(options.rate.as_ref());
        Ok(Registry {
            t: Arc::new(Transport {
                base,
                http,
                opts: options,
                creds: credentials,
                auth: AuthState::default(),
                limiter,
                abandoned: std::sync::Mutex::default(),
            }),
        })
    }

    /// The registry's base URL (`scheme://host[:port]/`).
    pub fn base_url(&self) -> &Url {
        &self.t.base
    }

    /// The options this handle was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.t.opts
    }

    /// An absolute URL for an API path (or a `Location`/`Link` value, absolute or relative).
    pub(crate) fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.t
            .base
            .join(path)
            .map_err(|e| ClientError::Protocol(format!("bad URL {path:?}: {e}")))
    }

    /// `GET /v2/`: checks that the registry speaks the API and that the credentials work.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let req = Req::new(Method::GET, self.url("/v2/")?, Vec::new(), Op::Other);
        self.t.fetch_ok(&req, 64 * 1024, &[200]).await.map(|_| ())
    }

    /// `HEAD` of a blob: `Some(size)` when `repo` has it, `None` on 404.
    pub async fn blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, ClientError> {
        let url = self.url(&ocireg_api::blob_path(repo, digest))?;
        let req = Req::new(Method::HEAD, url, vec![pull_scope(repo)], Op::Pull);
        let b = self.t.fetch(&req, 0).await?;
        match b.status.as_u16() {
            200..=299 => Ok(Some(
                header_str(&b.headers, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            s => Err(ClientError::from_response("HEAD", b.url.as_str(), s, b"")),
        }
    }

    /// True when `repo` has the blob.
    pub async fn blob_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool, ClientError> {
        Ok(self.blob_size(repo, digest).await?.is_some())
    }

    /// Deletes a blob from `repo` (registries may refuse with `UNSUPPORTED`).
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), ClientError> {
        self.delete(repo, &ocireg_api::blob_path(repo, digest))
            .await
    }

    /// Uploads a manifest under `reference` (a tag, or its own digest) and returns its digest.
    /// When the manifest has a `subject` and the registry does not answer with `OCI-Subject`,
    /// the referrers tag schema index (`<alg>-<hex>`) is updated, as the spec asks of clients.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        media_type: &str,
        body: Bytes,
    ) -> Result<Digest, ClientError> {
        let digest = match reference {
            Reference::Digest(d) => {
                let actual = Digest::compute(d.algorithm(), &body);
                if &actual != d {
                    return Err(ClientError::DigestMismatch {
                        expected: d.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::compute(ocireg_oci::Algorithm::Sha256, &body),
        };
        let url = self.url(&ocireg_api::manifest_path(repo, reference))?;
        let req = Req::new(Method::PUT, url, vec![push_scope(repo)], Op::Push)
            .header(CONTENT_TYPE, media_type)
            .body(body.clone());
        let b = self
            .t
            .fetch_ok(&req, 64 * 1024, &[200, 201, 202, 204])
            .await?;
        if let Some(sent) =
            header_str(&b.headers, "docker-content-digest").and_then(|v| v.parse::<Digest>().ok())
        {
            if sent.algorithm() == digest.algorithm() && sent != digest {
                return Err(ClientError::Protocol(format!(
                    "registry stored the manifest as {sent}, but its bytes hash to {digest}"
                )));
            }
        }
        if b.headers.get("oci-subject").is_none() {
            if let Ok(parsed) = ocireg_oci::parse_manifest(&body, Some(media_type)) {
                if let Some(subject) = &parsed.subject {
                    let entry = parsed.referrer_descriptor(digest.clone(), body.len() as u64);
                    // Boxed: adding the entry puts the index through this function again.
                    Box::pin(self.add_fallback_referrer(repo, &subject.digest, entry)).await?;
                }
            }
        }
        Ok(digest)
    }

    /// Fetches a manifest, accepting the `accept` media types (all four manifest types when
    /// empty), and verifies its digest against a digest reference or `Docker-Content-Digest`.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Manifest, ClientError> {
        let url = self.url(&ocireg_api::manifest_path(repo, reference))?;
        let req = accept_headers(
            Req::new(Method::GET, url, vec![pull_scope(repo)], Op::Pull),
            accept,
        );
        let b = self
            .t
            .fetch_ok(&req, self.t.opts.max_manifest_bytes, &[200])
            .await?;
        let header_digest =
            header_str(&b.headers, "docker-content-digest").and_then(|v| v.parse::<Digest>().ok());
        let expected = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(_) => header_digest,
        };
        let digest = match expected {
            Some(exp) => {
                let actual = Digest::compute(exp.algorithm(), &b.body);
                if actual != exp {
                    return Err(ClientError::DigestMismatch {
                        expected: exp,
                        actual,
                    });
                }
                actual
            }
            None => Digest::compute(ocireg_oci::Algorithm::Sha256, &b.body),
        };
        let media_type = match header_str(&b.headers, "content-type") {
            Some(ct) if !ct.is_empty() => ct.to_owned(),
            _ => body_media_type(&b.body).unwrap_or_default(),
        };
        Ok(Manifest {
            bytes: b.body,
            media_type,
            digest,
        })
    }

    /// `HEAD` of a manifest: `None` on 404. When the registry omits `Docker-Content-Digest` for
    /// a tag, the manifest is fetched to compute it.
    pub async fn head_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Option<ManifestInfo>, ClientError> {
        let url = self.url(&ocireg_api::manifest_path(repo, reference))?;
        let req = accept_headers(
            Req::new(Method::HEAD, url, vec![pull_scope(repo)], Op::Pull),
            accept,
        );
        let b = self.t.fetch(&req, 0).await?;
        match b.status.as_u16() {
            200..=299 => {}
            404 => return Ok(None),
            s => return Err(ClientError::from_response("HEAD", b.url.as_str(), s, b"")),
        }
        let digest = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(_) => {
                header_str(&b.headers, "docker-content-digest").and_then(|v| v.parse().ok())
            }
        };
        let size = header_str(&b.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
        let media_type = header_str(&b.headers, "content-type")
            .unwrap_or("")
            .to_owned();
        match (digest, size) {
            (Some(digest), Some(size)) if !media_type.is_empty() => Ok(Some(ManifestInfo {
                digest,
                media_type,
                size,
            })),
            _ => {
                let m = self.get_manifest(repo, reference, accept).await?;
                Ok(Some(ManifestInfo {
                    digest: m.digest,
                    media_type: m.media_type,
                    size: m.bytes.len() as u64,
                }))
            }
        }
    }

    /// Deletes a manifest (by digest; by tag where the registry supports it).
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(), ClientError> {
        self.delete(repo, &ocireg_api::manifest_path(repo, reference))
            .await
    }

    /// `DELETE` of an API path of `repo`, accepted as 200, 202 or 204.
    async fn delete(&self, repo: &RepoName, path: &str) -> Result<(), ClientError> {
        let url = self.url(path)?;
        let req = Req::new(Method::DELETE, url, vec![delete_scope(repo)], Op::Push);
        self.t
            .fetch_ok(&req, 64 * 1024, &[200, 202, 204])
            .await
            .map(|_| ())
    }
}

/// Scope asking to delete from `repo`.
pub(crate) fn delete_scope(repo: &RepoName) -> String {
    format!("repository:{repo}:delete")
}

pub(crate) fn accept_headers(mut req: Req, accept: &[&str]) -> Req {
    let list: Vec<&str> = if accept.is_empty() {
        DEFAULT_MANIFEST_ACCEPT.to_vec()
    } else {
        accept.to_vec()
    };
    for a in list {
        req = req.header(ACCEPT, a);
    }
    req
}

fn body_media_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("mediaType")?.as_str().map(str::to_owned)
}
