//! Request path → [`Endpoint`], and the access each request needs.
//!
//! # Path policy
//! * `parse_path` takes the raw request path. Anything from the first `?` on is ignored.
//! * `/v2` and `/v2/` are both the base endpoint. Other routes take no trailing slash, except
//!   the upload start, which is accepted as `.../blobs/uploads/` and `.../blobs/uploads`.
//! * Percent-decoding: `%XX` is decoded only when it yields a printable ASCII character other
//!   than `/`, `\`, `%`, `?` and `#`; any other escape (`%2F`, `%00`, non-ASCII, malformed) makes
//!   the request `NAME_INVALID` (400), so an encoded slash can never change how a path splits.
//!   Decoded text is then validated by the normal grammars (so `%2e%2e` → `..` → `NAME_INVALID`).
//! * Names contain slashes, so the route is decided from the END of the path: the last segments
//!   decide (`tags/list`, `manifests/<ref>`, `blobs/uploads/[<id>]`, `blobs/<digest>`,
//!   `referrers/<digest>`), everything before is the name. A repository may be called `blobs`.
//! * Errors: invalid name → `NAME_INVALID` (400); invalid digest or unsupported algorithm →
//!   `DIGEST_INVALID` (400); invalid tag → `MANIFEST_INVALID` (400; the spec has no tag code);
//!   malformed upload id → `BLOB_UPLOAD_UNKNOWN` (404); empty name, empty reference or any
//!   other shape → 404 without a code.
//! * Reads of what cannot exist ([`parse_request`] with `GET`/`HEAD`): a manifest, blob or tag
//!   list whose name, tag or digest fails its grammar is not found, because the spec's answer
//!   to a read of a missing manifest, blob or repository is `404` ("If the manifest is not found
//!   in the repository, the response code MUST be `404 Not Found`", likewise for blobs and for
//!   "an attempt to pull a nonexistent repository"): `NAME_UNKNOWN`, `MANIFEST_UNKNOWN` or
//!   `BLOB_UNKNOWN`. Writes keep their 400 (a push of an invalid digest "SHOULD" get `400`).
//!   Referrers keep their 400 too: "If the request is invalid, such as a `<digest>` with an
//!   invalid syntax, a `400 Bad Request` MUST be returned", and the API must never answer 404.
//!   A forbidden percent-escape stays 400 for every method: the path is refused unread.
//! * `/v2/_catalog` is the catalog; `/v2/_ocireg` and `/v2/_ocireg/<rest>` are our extensions
//!   (`path` = `<rest>`, decoded). Names cannot start with `_`, so these never clash.

use http::Method;
use ocireg_oci::{Digest, ErrorCode, OciError, Reference, RepoName};

use crate::error::ApiError;

/// One Distribution API route, with its validated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET/HEAD /v2/`.
    Base,
    /// `GET /v2/_catalog`.
    Catalog,
    /// `GET /v2/<name>/tags/list`.
    Tags {
        /// Repository.
        repo: RepoName,
    },
    /// `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// Repository.
        repo: RepoName,
        /// Tag or digest.
        reference: Reference,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository.
        repo: RepoName,
        /// Blob digest.
        digest: Digest,
    },
    /// `POST /v2/<name>/blobs/uploads/`.
    UploadStart {
        /// Repository.
        repo: RepoName,
    },
    /// `/v2/<name>/blobs/uploads/<session>`.
    Upload {
        /// Repository.
        repo: RepoName,
        /// Upload session id (`[A-Za-z0-9][A-Za-z0-9._=-]{0,255}`).
        session: String,
    },
    /// `GET /v2/<name>/referrers/<digest>`.
    Referrers {
        /// Repository.
        repo: RepoName,
        /// Subject digest.
        digest: Digest,
    },
    /// `/v2/_ocireg/<path>`: our REST extensions.
    Extension {
        /// The decoded path after `/v2/_ocireg/` (may be empty).
        path: String,
    },
}

impl Endpoint {
    /// The repository the endpoint addresses, if any.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Endpoint::Base | Endpoint::Catalog | Endpoint::Extension { .. } => None,
            Endpoint::Tags { repo }
            | Endpoint::Manifest { repo, .. }
            | Endpoint::Blob { repo, .. }
            | Endpoint::UploadStart { repo }
            | Endpoint::Upload { repo, .. }
            | Endpoint::Referrers { repo, .. } => Some(repo),
        }
    }

    /// The methods the endpoint answers (anything else → 405 `UNSUPPORTED`). Extensions list
    /// every method of [`API_METHODS`]; the extension handler decides.
    pub fn allowed_methods(&self) -> &'static [Method] {
        const READ: &[Method] = &[Method::GET, Method::HEAD];
        match self {
            Endpoint::Base | Endpoint::Catalog | Endpoint::Tags { .. } => READ,
            Endpoint::Referrers { .. } => READ,
            Endpoint::Manifest { .. } => &[Method::GET, Method::HEAD, Method::PUT, Method::DELETE],
            Endpoint::Blob { .. } => &[Method::GET, Method::HEAD, Method::DELETE],
            Endpoint::UploadStart { .. } => &[Method::POST],
            Endpoint::Upload { .. } => &[Method::GET, Method::PATCH, Method::PUT, Method::DELETE],
            Endpoint::Extension { .. } => API_METHODS,
        }
    }

    /// True when `method` is in [`Endpoint::allowed_methods`].
    pub fn allows(&self, method: &Method) -> bool {
        self.allowed_methods().contains(method)
    }
}

/// Every method some endpoint answers.
pub const API_METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// What a request does to its repository, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read content.
    Pull,
    /// Write content (uploads, manifest PUT).
    Push,
    /// Delete manifests, tags or blobs.
    Delete,
    /// No repository access (base, catalog, extensions: the auth layer decides those itself).
    None,
}

/// One (repository, action) pair a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Repository.
    pub repo: RepoName,
    /// Action on it.
    pub action: Action,
}

/// The action `method` on `ep` performs on `ep.repo()`. Uploads (including status `GET` and
/// cancel `DELETE`) are `Push`. A method the endpoint does not allow is classified by the method
/// alone (`GET`/`HEAD` → `Pull`, `DELETE` → `Delete`, else `Push`).
pub fn required_action(method: &Method, ep: &Endpoint) -> Action {
    let by_method = || {
        if method == Method::GET || method == Method::HEAD {
            Action::Pull
        } else if method == Method::DELETE {
            Action::Delete
        } else {
            Action::Push
        }
    };
    match ep {
        Endpoint::Base | Endpoint::Catalog | Endpoint::Extension { .. } => Action::None,
        Endpoint::UploadStart { .. } | Endpoint::Upload { .. } => Action::Push,
        Endpoint::Tags { .. } | Endpoint::Referrers { .. } if ep.allows(method) => Action::Pull,
        _ => by_method(),
    }
}

/// Every access a request needs: the endpoint's own plus, for a cross-repository mount
/// (`POST .../blobs/uploads/?mount=<digest>&from=<repo>`), `Pull` on `from` (ignored when
/// `from` is not a valid name — the handler then falls back to a normal upload).
pub fn required_access(method: &Method, ep: &Endpoint, query: Option<&str>) -> Vec<Access> {
    let mut out = Vec::new();
    if let Some(repo) = ep.repo() {
        let action = required_action(method, ep);
        if action != Action::None {
            out.push(Access {
                repo: repo.clone(),
                action,
            });
        }
    }
    if let (Endpoint::UploadStart { .. }, true) = (ep, method == Method::POST) {
        if crate::urls::query_param(query, "mount").is_some() {
            if let Some(from) =
                crate::urls::query_param(query, "from").and_then(|f| f.parse::<RepoName>().ok())
            {
                out.push(Access {
                    repo: from,
                    action: Action::Pull,
                });
            }
        }
    }
    out
}

/// Decodes `%XX` escapes per the module policy.
fn decode_path(raw: &str) -> Result<String, ApiError> {
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            // `raw` is a &str, so non-escape bytes are copied char by char below.
            let ch_len = raw[i..].chars().next().map(char::len_utf8).unwrap_or(1);
            out.push_str(&raw[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        let decoded = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(d) if d.is_ascii_graphic() && !matches!(d, b'/' | b'\\' | b'%' | b'?' | b'#') => {
                out.push(char::from(d));
                i += 3;
            }
            _ => {
                return Err(ApiError::new(
                    ErrorCode::NameInvalid,
                    "path contains a forbidden or malformed percent-escape",
                ))
            }
        }
    }
    Ok(out)
}

fn repo_of(segments: &[&str]) -> Result<RepoName, ApiError> {
    if segments.is_empty() {
        return Err(ApiError::not_found("no repository name in path"));
    }
    let name = segments.join("/");
    name.parse::<RepoName>().map_err(ApiError::from)
}

fn digest_of(s: &str) -> Result<Digest, ApiError> {
    // Unsupported algorithms are DIGEST_INVALID too (spec: 400 for invalid or unsupported).
    s.parse::<Digest>().map_err(|e: OciError| {
        ApiError::from(OciError {
            code: ErrorCode::DigestInvalid,
            ..e
        })
    })
}

fn session_ok(s: &str) -> bool {
    s.len() <= 256
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'=' | b'-'))
}

/// Parses a request path into an [`Endpoint`] as a write would see it (malformed names, tags and
/// digests are 400s); see the module docs for the exact policy.
pub fn parse_path(path: &str) -> Result<Endpoint, ApiError> {
    parse(path, false)
}

/// Parses a request's path for `method`: like [`parse_path`], except that a `GET` or `HEAD` of a
/// manifest, blob or tag list that cannot exist is a 404 of the endpoint's "unknown" code.
pub fn parse_request(method: &Method, path: &str) -> Result<Endpoint, ApiError> {
    parse(path, method == Method::GET || method == Method::HEAD)
}

/// For a read, a grammar error in the name (`NAME_UNKNOWN`) or in the tag or digest (`unknown`)
/// becomes a 404 of that code; errors without a spec code (unknown routes) stay as they are.
fn unknown_on_read(read: bool, unknown: ErrorCode) -> impl Fn(ApiError) -> ApiError {
    move |e| match e.code {
        Some(code) if read => {
            let missing = if code == ErrorCode::NameInvalid {
                ErrorCode::NameUnknown
            } else {
                unknown
            };
            ApiError {
                detail: e.detail,
                ..ApiError::new(
                    missing,
                    format!("{}: nothing can exist under it", e.message),
                )
            }
        }
        _ => e,
    }
}

fn parse(path: &str, read: bool) -> Result<Endpoint, ApiError> {
    let path = path.split_once('?').map(|(p, _)| p).unwrap_or(path);
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Endpoint::Base),
        Some(r) => match r.strip_prefix('/') {
            Some(r) => r,
            None => return Err(ApiError::not_found("not a /v2/ path")),
        },
        None => return Err(ApiError::not_found("not a /v2/ path")),
    };
    let rest = decode_path(rest)?;
    if rest == "_catalog" {
        return Ok(Endpoint::Catalog);
    }
    if rest == "_ocireg" {
        return Ok(Endpoint::Extension {
            path: String::new(),
        });
    }
    if let Some(ext) = rest.strip_prefix("_ocireg/") {
        return Ok(Endpoint::Extension {
            path: ext.to_owned(),
        });
    }

    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let last = segs[n - 1];
    let penult = if n >= 2 { segs[n - 2] } else { "" };
    let antepenult = if n >= 3 { segs[n - 3] } else { "" };

    // .../blobs/uploads/<session> and .../blobs/uploads/ (trailing slash: last == "")
    if n >= 3 && penult == "uploads" && antepenult == "blobs" {
        let repo = repo_of(&segs[..n - 3])?;
        if last.is_empty() {
            return Ok(Endpoint::UploadStart { repo });
        }
        if !session_ok(last) {
            return Err(ApiError::new(
                ErrorCode::BlobUploadUnknown,
                "malformed upload session id",
            ));
        }
        return Ok(Endpoint::Upload {
            repo,
            session: last.to_owned(),
        });
    }
    if n < 2 || last.is_empty() {
        return Err(ApiError::not_found("unknown route"));
    }
    match penult {
        "tags" if last == "list" => Ok(Endpoint::Tags {
            repo: repo_of(&segs[..n - 2]).map_err(unknown_on_read(read, ErrorCode::NameUnknown))?,
        }),
        "manifests" => {
            let unknown = unknown_on_read(read, ErrorCode::ManifestUnknown);
            let repo = repo_of(&segs[..n - 2]).map_err(&unknown)?;
            let reference = last
                .parse::<Reference>()
                .map_err(|e| unknown(ApiError::from(e)))?;
            Ok(Endpoint::Manifest { repo, reference })
        }
        "blobs" if last == "uploads" => Ok(Endpoint::UploadStart {
            repo: repo_of(&segs[..n - 2])?,
        }),
        "blobs" => {
            let unknown = unknown_on_read(read, ErrorCode::BlobUnknown);
            let repo = repo_of(&segs[..n - 2]).map_err(&unknown)?;
            Ok(Endpoint::Blob {
                repo,
                digest: digest_of(last).map_err(&unknown)?,
            })
        }
        "referrers" => {
            let repo = repo_of(&segs[..n - 2])?;
            Ok(Endpoint::Referrers {
                repo,
                digest: digest_of(last)?,
            })
        }
        _ => Err(ApiError::not_found("unknown route")),
    }
}
