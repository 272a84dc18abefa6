//! Search on an ocireg registry (`GET /v2/_ocireg/search`, an ocireg extension): manifests by
//! repository name, tag, annotation and artifact type, one page or every page (following
//! `Link`). Requests go through the usual transport, so auth, TLS, retries and rate limits apply.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::listing::next_page;
use crate::ratelimit::Op;
use crate::registry::Registry;
use crate::transport::Req;

/// Most pages followed by [`Registry::search`].
const MAX_PAGES: usize = 10_000;

/// What to search for; `None` / empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Substring of the repository name (case-insensitive).
    pub name: Option<String>,
    /// A tag: exact, or a prefix when it ends with `*`.
    pub tag: Option<String>,
    /// Annotation filters, each `KEY` (present) or `KEY=VALUE` (equal); all must match.
    pub annotations: Vec<String>,
    /// The artifact type (`artifactType`, else the config media type), exactly.
    pub artifact_type: Option<String>,
    /// Page size (the registry's default when `None`).
    pub n: Option<usize>,
    /// Start after this cursor (a page's [`SearchPage::next`]).
    pub last: Option<String>,
}

impl SearchQuery {
    /// `/v2/_ocireg/search?...` for this query.
    pub fn path(&self) -> String {
        let enc = ocireg_api::encode_query_value;
        let mut params = Vec::new();
        if let Some(v) = self.name.as_deref().filter(|v| !v.is_empty()) {
            params.push(format!("q={}", enc(v)));
        }
        if let Some(v) = self.tag.as_deref().filter(|v| !v.is_empty()) {
            params.push(format!("tag={}", enc(v)));
        }
        for a in &self.annotations {
            params.push(format!("annotation={}", enc(a)));
        }
        if let Some(v) = self.artifact_type.as_deref().filter(|v| !v.is_empty()) {
            params.push(format!("artifactType={}", enc(v)));
        }
        if let Some(n) = self.n {
            params.push(format!("n={n}"));
        }
        if let Some(v) = self.last.as_deref().filter(|v| !v.is_empty()) {
            params.push(format!("last={}", enc(v)));
        }
        if params.is_empty() {
            "/v2/_ocireg/search".to_owned()
        } else {
            format!("/v2/_ocireg/search?{}", params.join("&"))
        }
    }
}

/// One manifest found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    /// Repository.
    pub repository: String,
    /// Manifest digest.
    pub digest: String,
    /// Tags pointing at it (empty when untagged).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Media type of the manifest.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Artifact type, if any.
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Size of the manifest in bytes.
    pub size: u64,
}

/// One page of hits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    /// The hits, ordered by repository then digest.
    #[serde(rename = "results")]
    pub hits: Vec<SearchHit>,
    /// Cursor of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn parse_page(body: &[u8]) -> Result<SearchPage, ClientError> {
    serde_json::from_slice(body)
        .map_err(|e| ClientError::Protocol(format!("search response is not a result page: {e}")))
}

impl Registry {
    /// One page of search results. A registry without the extension (or with search off)
    /// answers 404.
    pub async fn search_page(&self, q: &SearchQuery) -> Result<SearchPage, ClientError> {
        let url = self.url(&q.path())?;
        let req = Req::new(Method::GET, url, search_scopes(), Op::Pull);
        let b = self
            .t
            .fetch_ok(&req, self.t.opts.max_manifest_bytes, &[200])
            .await?;
        parse_page(&b.body)
    }

    /// Every hit, following the registry's `Link` headers (`q.n` sets the page size).
    pub async fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, ClientError> {
        let mut url = self.url(&q.path())?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let req = Req::new(Method::GET, url.clone(), search_scopes(), Op::Pull);
            let b = self
                .t
                .fetch_ok(&req, self.t.opts.max_manifest_bytes, &[200])
                .await?;
            out.extend(parse_page(&b.body)?.hits);
            match next_page(self, &b)? {
                Some(next) if next != url => url = next,
                _ => return Ok(out),
            }
        }
        Err(ClientError::Protocol(format!(
            "search: more than {MAX_PAGES} pages"
        )))
    }
}

/// Search needs no repository scope (the registry filters by what the caller may read); a
/// token for the catalog scope identifies the caller.
fn search_scopes() -> Vec<String> {
    vec!["registry:catalog:*".to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_filter() {
        assert_eq!(SearchQuery::default().path(), "/v2/_ocireg/search");
        let q = SearchQuery {
            name: Some("aws".into()),
            tag: Some("1.*".into()),
            annotations: vec!["k=v w".into(), "only".into()],
            artifact_type: Some("application/spdx+json".into()),
            n: Some(5),
            last: Some("a/b@sha256:00".into()),
        };
        assert_eq!(
            q.path(),
            "/v2/_ocireg/search?q=aws&tag=1.%2A&annotation=k%3Dv%20w&annotation=only\
             &artifactType=application%2Fspdx%2Bjson&n=5&last=a%2Fb%40sha256%3A00"
        );
    }

    #[test]
    fn pages_parse() {
        let p = parse_page(
            br#"{"results":[{"repository":"r","digest":"sha256:00","tags":["t"],
                "mediaType":"m","artifactType":null,"annotations":{"a":"b"},"size":3}],
                "next":"r@sha256:00"}"#,
        )
        .unwrap();
        assert_eq!(p.hits[0].tags, ["t"]);
        assert_eq!(p.next.as_deref(), Some("r@sha256:00"));
        assert!(parse_page(b"[]").is_err());
        assert!(parse_page(br#"{"repositories":[]}"#).is_err());
    }
}
