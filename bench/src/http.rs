//! A minimal registry client over reqwest that verifies every response it gets.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::Bytes;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION, RANGE};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use sha2::{Digest, Sha256};
use url::Url;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer media type (uncompressed tar).
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// One registry endpoint with its own connection pool.
#[derive(Clone, Debug)]
pub struct Registry {
    client: Client,
    base: Url,
    big_timeout: Duration,
}

/// A full listing gathered by following `Link` headers.
#[derive(Debug, Default)]
pub struct Listing {
    /// All entries, in the order received.
    pub items: Vec<String>,
    /// Number of HTTP requests made.
    pub pages: usize,
    /// Whether some page held more entries than the requested `n`.
    pub ignored_n: bool,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn expect(resp: Response, want: StatusCode, what: &str) -> Result<Response> {
    if resp.status() == want {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    bail!("{what}: expected {want}, got {status}: {}", body.trim())
}

/// Sends `req` and checks that the answer has status `want` (`what` names it in errors).
async fn send(req: RequestBuilder, want: StatusCode, what: &str) -> Result<Response> {
    expect(req.send().await?, want, what).await
}

/// Checks an answer's `Docker-Content-Digest`, when it has one, against `digest`.
fn check_digest_header(r: &Response, digest: &str, what: &str) -> Result<()> {
    if let Some(d) = header(r.headers(), "docker-content-digest") {
        ensure!(d == digest, "{what}: Docker-Content-Digest {d} != {digest}");
    }
    Ok(())
}

impl Registry {
    /// A client for the registry at `base` (e.g. `http://127.0.0.1:5000/`).
    pub fn new(base: &str, small_timeout: Duration, big_timeout: Duration) -> Result<Self> {
        let client = Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(small_timeout)
            .build()?;
        Ok(Registry {
            client,
            base: Url::parse(base)?,
            big_timeout,
        })
    }

    fn url(&self, path: &str) -> Result<Url> {
        Ok(self.base.join(path)?)
    }

    fn location(&self, resp: &Response) -> Result<Url> {
        let loc = header(resp.headers(), LOCATION.as_str())
            .ok_or_else(|| anyhow!("no Location header"))?;
        self.base
            .join(loc)
            .with_context(|| format!("bad Location {loc:?}"))
    }

    /// `GET /v2/` answers 200.
    pub async fn ping(&self) -> Result<()> {
        let req = self.client.get(self.url("/v2/")?);
        send(req, StatusCode::OK, "GET /v2/").await.map(drop)
    }

    async fn start_upload(&self, repo: &str) -> Result<Url> {
        let req = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/"))?);
        let r = send(req, StatusCode::ACCEPTED, "POST upload").await?;
        self.location(&r)
    }

    async fn finish_upload(&self, mut loc: Url, digest: &str, body: Option<Bytes>) -> Result<()> {
        loc.query_pairs_mut().append_pair("digest", digest);
        let req = self.client.put(loc).timeout(self.big_timeout);
        let req = match body {
            Some(b) => req
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, b.len())
                .body(b),
            None => req.header(CONTENT_LENGTH, 0),
        };
        let r = send(req, StatusCode::CREATED, "PUT upload").await?;
        check_digest_header(&r, digest, "PUT upload")
    }

    /// Pushes `data` with POST + one PUT carrying the whole body.
    pub async fn push_monolithic(&self, repo: &str, data: Bytes, digest: &str) -> Result<()> {
        let loc = self.start_upload(repo).await?;
        self.finish_upload(loc, digest, Some(data)).await
    }

    /// Pushes `data` with POST, one PATCH per `chunk` bytes, and a closing PUT.
    pub async fn push_chunked(
        &self,
        repo: &str,
        data: Bytes,
        digest: &str,
        chunk: usize,
    ) -> Result<()> {
        let mut loc = self.start_upload(repo).await?;
        let mut off = 0usize;
        while off < data.len() {
            let end = (off + chunk.max(1)).min(data.len());
            let part = data.slice(off..end);
            let req = self
                .client
                .patch(loc.clone())
                .timeout(self.big_timeout)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("content-range", format!("{}-{}", off, end - 1))
                .header(CONTENT_LENGTH, part.len())
                .body(part);
            let r = send(req, StatusCode::ACCEPTED, "PATCH chunk").await?;
            let range = header(r.headers(), RANGE.as_str()).unwrap_or_default();
            let want = format!("0-{}", end - 1);
            ensure!(
                range == want,
                "PATCH chunk: Range {range:?}, expected {want:?}"
            );
            loc = self.location(&r)?;
            off = end;
        }
        self.finish_upload(loc, digest, None).await
    }

    /// Cross-repository mount; falls back to a monolithic push of `data` if the registry
    /// answers 202 (mount not performed).
    pub async fn mount_or_push(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
        data: &Bytes,
    ) -> Result<()> {
        let mut u = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        u.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let r = self.client.post(u).send().await?;
        match r.status() {
            StatusCode::CREATED => Ok(()),
            StatusCode::ACCEPTED => {
                let loc = self.location(&r)?;
                self.finish_upload(loc, digest, Some(data.clone())).await
            }
            _ => expect(r, StatusCode::CREATED, "POST mount").await.map(drop),
        }
    }

    /// `HEAD` a blob; returns its `Content-Length`.
    pub async fn head_blob(&self, repo: &str, digest: &str) -> Result<u64> {
        let req = self
            .client
            .head(self.url(&format!("/v2/{repo}/blobs/{digest}"))?);
        let r = send(req, StatusCode::OK, "HEAD blob").await?;
        header(r.headers(), CONTENT_LENGTH.as_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("HEAD blob: no Content-Length"))
    }

    /// Downloads a blob, hashing it as it streams; fails unless size and sha256 match.
    pub async fn pull_blob(&self, repo: &str, digest: &str, size: u64) -> Result<()> {
        let u = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let req = self.client.get(u).timeout(self.big_timeout);
        let mut r = send(req, StatusCode::OK, "GET blob").await?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(c) = r.chunk().await? {
            n += c.len() as u64;
            h.update(&c);
        }
        ensure!(n == size, "GET blob: got {n} bytes, expected {size}");
        let got = format!("sha256:{}", hex::encode(h.finalize()));
        ensure!(
            got == digest,
            "GET blob: content hashes to {got}, expected {digest}"
        );
        Ok(())
    }

    /// PUTs a manifest; checks 201 and that `Docker-Content-Digest` (if sent) is `digest`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: Bytes,
        digest: &str,
    ) -> Result<()> {
        let req = self
            .client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}"))?)
            .header(CONTENT_TYPE, OCI_MANIFEST)
            .body(body);
        let r = send(req, StatusCode::CREATED, "PUT manifest").await?;
        check_digest_header(&r, digest, "PUT manifest")
    }

    /// GETs a manifest; checks 200, the media type and that the bytes hash to `digest`.
    pub async fn get_manifest(&self, repo: &str, reference: &str, digest: &str) -> Result<()> {
        let req = self
            .client
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}"))?)
            .header(ACCEPT, OCI_MANIFEST);
        let r = send(req, StatusCode::OK, "GET manifest").await?;
        let ct = header(r.headers(), CONTENT_TYPE.as_str())
            .unwrap_or_default()
            .to_string();
        ensure!(
            ct.starts_with(OCI_MANIFEST),
            "GET manifest: Content-Type {ct:?}"
        );
        let body = r.bytes().await?;
        let got = crate::stats::sha256_digest(&body);
        ensure!(
            got == digest,
            "GET manifest: body hashes to {got}, expected {digest}"
        );
        Ok(())
    }

    /// Lists `path` (`/v2/<repo>/tags/list` or `/v2/_catalog`), following `Link` to the end.
    /// `key` is the JSON array to read (`tags` or `repositories`).
    pub async fn list_all(
        &self,
        path: &str,
        key: &str,
        n: Option<usize>,
        max_pages: usize,
    ) -> Result<Listing> {
        let mut url = self.url(path)?;
        if let Some(n) = n {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let mut out = Listing::default();
        loop {
            ensure!(
                out.pages < max_pages,
                "listing: more than {max_pages} pages"
            );
            let req = self
                .client
                .request(Method::GET, url.clone())
                .timeout(self.big_timeout);
            out.pages += 1;
            let r = send(req, StatusCode::OK, "GET list").await?;
            let next = header(r.headers(), LINK.as_str())
                .map(parse_link)
                .transpose()?;
            let v: serde_json::Value = r.json().await.context("list body is not JSON")?;
            let page: Vec<String> = match v.get(key) {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| anyhow!("non-string entry"))
                    })
                    .collect::<Result<_>>()?,
                Some(serde_json::Value::Null) | None => Vec::new(),
                Some(_) => bail!("list body: {key} is not an array"),
            };
            if n.is_some_and(|n| page.len() > n) {
                out.ignored_n = true;
            }
            out.items.extend(page);
            match next {
                Some(link) => url = self.base.join(&link)?,
                None => return Ok(out),
            }
        }
    }
}

/// Extracts the target of `<...>; rel="next"` from a `Link` header.
pub fn parse_link(v: &str) -> Result<String> {
    let start = v
        .find('<')
        .ok_or_else(|| anyhow!("bad Link header {v:?}"))?;
    let end = v[start..]
        .find('>')
        .ok_or_else(|| anyhow!("bad Link header {v:?}"))?
        + start;
    ensure!(
        v[end..].contains("next"),
        "Link header without rel=next: {v:?}"
    );
    Ok(v[start + 1..end].to_string())
}

/// Builds a small OCI image manifest referencing `config` and `layers` (digest, size).
pub fn manifest(config: (&str, u64), layers: &[(&str, u64)], note: &str) -> Bytes {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| serde_json::json!({"mediaType": OCI_LAYER, "digest": d, "size": s}))
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers,
        "annotations": {"org.example.bench": note},
    });
    Bytes::from(m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header() {
        assert_eq!(
            parse_link("</v2/_catalog?last=b&n=2>; rel=\"next\"").unwrap(),
            "/v2/_catalog?last=b&n=2"
        );
        assert!(parse_link("garbage").is_err());
        assert!(parse_link("</x>; rel=\"prev\"").is_err());
    }

    #[test]
    fn manifest_shape() {
        let m = manifest(("sha256:aa", 2), &[("sha256:bb", 3)], "n1");
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["config"]["size"], 2);
        assert_eq!(v["layers"][0]["digest"], "sha256:bb");
        assert_ne!(m, manifest(("sha256:aa", 2), &[("sha256:bb", 3)], "n2"));
    }
}
