//! Referrers: the `/v2/<name>/referrers/<digest>` API, and the referrers tag schema
//! (`<alg>-<hex>` index) for registries without it (spec "Referrers Tag Schema", as ORAS does).

use bytes::Bytes;
use http::header::ACCEPT;
use http::Method;
use ocireg_oci::{media_types, Descriptor, Digest, Reference, RepoName, Tag};
use serde_json::{json, Value};

use crate::error::ClientError;
use crate::ratelimit::Op;
use crate::registry::{pull_scope, Registry};
use crate::transport::Req;

/// Most referrers pages followed.
const MAX_PAGES: usize = 10_000;

/// The fallback tag for `digest`: `<alg>-<hex>`, cut to the 128 characters a tag may have.
pub fn referrers_tag(digest: &Digest) -> Result<Tag, ClientError> {
    let mut t = format!("{}-{}", digest.algorithm(), digest.hex());
    t.truncate(Tag::MAX_LEN);
    t.parse()
        .map_err(|e| ClientError::Protocol(format!("referrers tag {t:?}: {e}")))
}

fn index_descriptors(body: &[u8]) -> Result<Vec<Descriptor>, ClientError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ClientError::Protocol(format!("referrers index is not JSON: {e}")))?;
    match v.get("manifests") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(m) => serde_json::from_value(m.clone())
            .map_err(|e| ClientError::Protocol(format!("referrers index: bad descriptor: {e}"))),
    }
}

fn keep(d: &Descriptor, artifact_type: Option<&str>) -> bool {
    artifact_type.is_none_or(|a| d.artifact_type.as_deref() == Some(a))
}

impl Registry {
    /// The manifests whose `subject` is `digest`, optionally only those of `artifact_type`.
    /// Uses the referrers API; when that answers 404, reads the referrers tag schema index
    /// (no index → no referrers).
    pub async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let mut url = self.url(&ocireg_api::referrers_path(repo, digest, artifact_type))?;
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let req = Req::new(Method::GET, url.clone(), vec![pull_scope(repo)], Op::Pull)
                .header(ACCEPT, media_types::OCI_INDEX);
            let b = self.t.fetch(&req, self.t.opts.max_manifest_bytes).await?;
            match b.status.as_u16() {
                200 => {}
                404 if page == 0 => {
                    return self.fallback_referrers(repo, digest, artifact_type).await
                }
                s => {
                    return Err(ClientError::from_response(
                        "GET",
                        b.url.as_str(),
                        s,
                        &b.body,
                    ))
                }
            }
            let filtered = b
                .headers
                .get_all("oci-filters-applied")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.split(',').any(|f| f.trim() == "artifactType"));
            out.extend(
                index_descriptors(&b.body)?
                    .into_iter()
                    .filter(|d| filtered || keep(d, artifact_type)),
            );
            match crate::listing::next_page(self, &b)? {
                Some(next) if next != url => url = next,
                _ => return Ok(out),
            }
        }
        Err(ClientError::Protocol(format!(
            "referrers: more than {MAX_PAGES} pages"
        )))
    }

    async fn fallback_referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let tag = Reference::Tag(referrers_tag(digest)?);
        match self
            .get_manifest(repo, &tag, &[media_types::OCI_INDEX])
            .await
        {
            Ok(m) => Ok(index_descriptors(&m.bytes)?
                .into_iter()
                .filter(|d| keep(d, artifact_type))
                .collect()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Adds `entry` to the referrers tag schema index of `subject` (creating it), unless listed.
    pub(crate) async fn add_fallback_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        entry: Descriptor,
    ) -> Result<(), ClientError> {
        let tag = Reference::Tag(referrers_tag(subject)?);
        let mut index = match self
            .get_manifest(repo, &tag, &[media_types::OCI_INDEX])
            .await
        {
            Ok(m) => serde_json::from_slice::<Value>(&m.bytes)
                .ok()
                .filter(|v| v.get("manifests").is_some_and(Value::is_array))
                .unwrap_or_else(empty_index),
            Err(e) if e.is_not_found() => empty_index(),
            Err(e) => return Err(e),
        };
        let entry_value = serde_json::to_value(&entry)
            .map_err(|e| ClientError::Protocol(format!("descriptor to JSON: {e}")))?;
        let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) else {
            return Err(ClientError::Protocol(
                "referrers index without manifests".into(),
            ));
        };
        let wanted = entry.digest.to_string();
        if list
            .iter()
            .any(|d| d.get("digest").and_then(Value::as_str) == Some(wanted.as_str()))
        {
            return Ok(());
        }
        list.push(entry_value);
        let body = serde_json::to_vec(&index)
            .map_err(|e| ClientError::Protocol(format!("index to JSON: {e}")))?;
        self.put_manifest(repo, &tag, media_types::OCI_INDEX, Bytes::from(body))
            .await
            .map(|_| ())
    }
}

fn empty_index() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": []
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tag_shape() {
        let d: Digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
            .parse()
            .unwrap();
        assert_eq!(
            referrers_tag(&d).unwrap().as_str(),
            "sha256-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let long = Digest::compute(ocireg_oci::Algorithm::Sha512, b"x");
        assert_eq!(referrers_tag(&long).unwrap().as_str().len(), 128);
    }

    #[test]
    fn descriptors_from_index() {
        let body = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"artifactType":"a/b"}]}"#;
        let ds = index_descriptors(body).unwrap();
        assert_eq!(ds.len(), 1);
        assert!(keep(&ds[0], Some("a/b")) && !keep(&ds[0], Some("c/d")) && keep(&ds[0], None));
    }
}
