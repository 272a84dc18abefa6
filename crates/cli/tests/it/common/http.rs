//! HTTP helpers: a blocking client, digests, replies and the spec error envelope, and small
//! push helpers shared by the test binaries.
#![allow(dead_code)]

use rand::RngCore;
use reqwest::blocking::{Client, Response};
use reqwest::header::HeaderMap;
use reqwest::Url;
use sha2::{Digest, Sha256, Sha512};
use std::time::Duration;

use super::Server;

/// Media types used throughout the tests.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A blocking HTTP client: no redirects followed, no proxies, generous timeout.
pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// `sha256:<hex>` of the data.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `sha512:<hex>` of the data.
pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

/// Hashes data with the algorithm named in `digest` and compares.
pub fn digest_matches(digest: &str, data: &[u8]) -> bool {
    if digest.starts_with("sha512:") {
        sha512(data) == digest
    } else {
        sha256(data) == digest
    }
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// A random lowercase suffix for unique names.
pub fn rand_suffix() -> String {
    hex::encode(random_bytes(4))
}

/// A header as a string (panics if absent, with the header set in the message).
pub fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .unwrap_or_else(|| panic!("missing header {name}; got {h:?}"))
        .to_str()
        .unwrap()
        .to_string()
}

/// A header as a string if present.
pub fn header_opt(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_string())
}

/// Appends a query parameter to a URL that may already have a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let mut u = Url::parse(url).unwrap();
    u.query_pairs_mut().append_pair(key, value);
    u.to_string()
}

/// The path (and query) of a Location, whether it was absolute or relative.
pub fn location_path(srv: &Server, location: &str) -> String {
    let u = Url::parse(&srv.resolve(location)).unwrap();
    u.path().to_string()
}

/// Status, headers and body of a finished response.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads a response fully.
    pub fn of(r: Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }
    /// A header value (panics if missing).
    pub fn h(&self, name: &str) -> String {
        header(&self.headers, name)
    }
    /// A header value if present.
    pub fn ho(&self, name: &str) -> Option<String> {
        header_opt(&self.headers, name)
    }
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// Asserts the status.
    pub fn expect(self, status: u16, what: &str) -> Reply {
        assert_eq!(
            self.status,
            status,
            "{what}: expected HTTP {status}, got {}; body: {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(600)])
        );
        self
    }
    /// Asserts that the status is one of `statuses`.
    pub fn expect_in(self, statuses: &[u16], what: &str) -> Reply {
        assert!(
            statuses.contains(&self.status),
            "{what}: expected HTTP {statuses:?}, got {}",
            self.status
        );
        self
    }
    /// Asserts an error status and that the body is the spec envelope containing `code`.
    pub fn expect_error(self, status: u16, code: &str, what: &str) -> Reply {
        self.expect_error_in(status, &[code], what)
    }
    /// Asserts an error status and that the body is the spec envelope containing one of `codes`.
    pub fn expect_error_in(self, status: u16, codes: &[&str], what: &str) -> Reply {
        let r = self.expect(status, what);
        let got = error_codes(&r.body)
            .unwrap_or_else(|e| panic!("{what}: error body is not the spec envelope: {e}"));
        assert!(
            got.iter().any(|c| codes.contains(&c.as_str())),
            "{what}: expected an error code in {codes:?}, got {got:?}"
        );
        r
    }
}

/// Parses `{"errors":[{"code":..,"message":..}]}` and returns the codes; checks the envelope shape.
pub fn error_codes(body: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{e}: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    let errs = v
        .get("errors")
        .and_then(|e| e.as_array())
        .ok_or_else(|| format!("no errors array in {v}"))?;
    if errs.is_empty() {
        return Err(format!("empty errors array in {v}"));
    }
    let mut codes = Vec::new();
    for e in errs {
        let code = e
            .get("code")
            .and_then(|c| c.as_str())
            .ok_or_else(|| format!("no code in {e}"))?;
        if code.is_empty() || !code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            return Err(format!(
                "code {code:?} is not uppercase letters and underscores"
            ));
        }
        if let Some(m) = e.get("message") {
            if !m.is_string() {
                return Err(format!("message is not a string in {e}"));
            }
        }
        codes.push(code.to_string());
    }
    Ok(codes)
}

/// Starts an upload session; returns the absolute Location URL.
pub fn start_upload(srv: &Server, c: &Client, repo: &str) -> String {
    let r = Reply::of(
        c.post(srv.url(&format!("/v2/{repo}/blobs/uploads/")))
            .header("Content-Length", "0")
            .send()
            .unwrap(),
    )
    .expect(202, "POST upload session");
    srv.resolve(&r.h("Location"))
}

/// Pushes a blob with POST then PUT; returns its sha256 digest.
pub fn push_blob(srv: &Server, c: &Client, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    push_blob_as(srv, c, repo, data, &digest);
    digest
}

/// Pushes a blob with POST then PUT under the given digest (sha256 or sha512).
pub fn push_blob_as(srv: &Server, c: &Client, repo: &str, data: &[u8], digest: &str) {
    let loc = start_upload(srv, c, repo);
    put_upload(c, &loc, digest, data).expect(201, "PUT blob");
}

/// The closing PUT of the upload session at `loc` carrying `data` as an octet stream under
/// `digest`; returns the reply (not checked).
pub fn put_upload(c: &Client, loc: &str, digest: &str, data: &[u8]) -> Reply {
    Reply::of(
        c.put(with_query(loc, "digest", digest))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .unwrap(),
    )
}

/// Asserts that `GET /v2/REPO/blobs/DIGEST` answers 200 with exactly `data`.
pub fn assert_blob(srv: &Server, c: &Client, repo: &str, digest: &str, data: &[u8]) {
    let r = get(srv, c, &format!("/v2/{repo}/blobs/{digest}"))
        .expect(200, &format!("GET blob {digest} in {repo}"));
    assert!(r.body == data, "blob {digest} in {repo}: bytes differ");
}

/// PUTs a manifest; returns the reply (not checked).
pub fn put_manifest(
    srv: &Server,
    c: &Client,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Reply {
    Reply::of(
        c.put(srv.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
            .unwrap(),
    )
}

/// GETs a path, accepting every manifest type.
pub fn get(srv: &Server, c: &Client, path: &str) -> Reply {
    accepting_manifests(c.get(srv.url(path)))
}

/// HEADs a path, accepting every manifest type.
pub fn head(srv: &Server, c: &Client, path: &str) -> Reply {
    accepting_manifests(c.head(srv.url(path)))
}

fn accepting_manifests(req: reqwest::blocking::RequestBuilder) -> Reply {
    let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
    Reply::of(req.header("Accept", accept).send().unwrap())
}

/// DELETEs a path.
pub fn delete(srv: &Server, c: &Client, path: &str) -> Reply {
    Reply::of(c.delete(srv.url(path)).send().unwrap())
}

/// A descriptor JSON object.
pub fn desc(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256(data), "size": data.len()})
}

/// A small image in one repo: config + layers pushed; returns (manifest bytes, digest).
pub struct PushedImage {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
}

/// Pushes a config and `n_layers` random layers, then an OCI image manifest under `reference`.
pub fn push_image(
    srv: &Server,
    c: &Client,
    repo: &str,
    reference: &str,
    n_layers: usize,
) -> PushedImage {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"nonce":"{}"}}"#,
        rand_suffix()
    )
    .into_bytes();
    push_blob(srv, c, repo, &config);
    let layers: Vec<Vec<u8>> = (0..n_layers).map(|i| random_bytes(100 + i * 37)).collect();
    for l in &layers {
        push_blob(srv, c, repo, l);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config),
        "layers": layers.iter().map(|l| desc(OCI_LAYER, l)).collect::<Vec<_>>(),
    }))
    .unwrap();
    put_manifest(srv, c, repo, reference, OCI_MANIFEST, &manifest)
        .expect(201, "PUT image manifest");
    PushedImage {
        digest: sha256(&manifest),
        manifest,
        config,
        layers,
    }
}
