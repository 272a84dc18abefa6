//! Tag and catalog listings, following `Link: <...>; rel="next"` pagination.

use http::Method;
use ocireg_oci::RepoName;
use serde_json::Value;
use url::Url;

use crate::error::ClientError;
use crate::ratelimit::Op;
use crate::registry::{pull_scope, Registry};
use crate::transport::{Buffered, Req};

/// Most pages followed for one listing (guards against a registry whose links loop).
const MAX_PAGES: usize = 100_000;

/// The next page's URL from a response's `Link` header, if any.
pub(crate) fn next_page(reg: &Registry, b: &Buffered) -> Result<Option<Url>, ClientError> {
    let Some(link) = b
        .headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(ocireg_api::parse_link_next)
    else {
        return Ok(None);
    };
    // Relative links are resolved against the URL that was answered.
    let next = b
        .url
        .join(&link)
        .map_err(|e| ClientError::Protocol(format!("bad Link URL {link:?}: {e}")))?;
    if next.origin() != reg.base_url().origin() {
        return Err(ClientError::Protocol(format!(
            "Link points to another origin: {next}"
        )));
    }
    Ok(Some(next))
}

fn string_list(body: &[u8], key: &str, what: &str) -> Result<Vec<String>, ClientError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ClientError::Protocol(format!("{what} response is not JSON: {e}")))?;
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ClientError::Protocol(format!("{what}: non-string in {key:?}")))
            })
            .collect(),
        Some(_) => Err(ClientError::Protocol(format!(
            "{what}: {key:?} is not a list"
        ))),
    }
}

impl Registry {
    async fn list_all(
        &self,
        first: Url,
        scopes: Vec<String>,
        key: &str,
        what: &str,
    ) -> Result<Vec<String>, ClientError> {
        let mut out = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let req = Req::new(Method::GET, url.clone(), scopes.clone(), Op::Pull);
            let b = self
                .t
                .fetch_ok(&req, self.t.opts.max_manifest_bytes, &[200])
                .await?;
            out.extend(string_list(&b.body, key, what)?);
            match next_page(self, &b)? {
                Some(next) if next != url => url = next,
                _ => return Ok(out),
            }
        }
        Err(ClientError::Protocol(format!(
            "{what}: more than {MAX_PAGES} pages"
        )))
    }

    /// All tags of `repo`, following pagination (`page_size` per request when set).
    pub async fn tags(&self, repo: &RepoName) -> Result<Vec<String>, ClientError> {
        let first = self.url(&ocireg_api::tags_path(repo, self.t.opts.page_size, None))?;
        self.list_all(first, vec![pull_scope(repo)], "tags", "tags list")
            .await
    }

    /// One page of tags: at most `n` tags after `last`, plus whether the registry has more.
    pub async fn tags_page(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<(Vec<String>, bool), ClientError> {
        let url = self.url(&ocireg_api::tags_path(repo, n, last))?;
        let req = Req::new(Method::GET, url, vec![pull_scope(repo)], Op::Pull);
        let b = self
            .t
            .fetch_ok(&req, self.t.opts.max_manifest_bytes, &[200])
            .await?;
        let more = next_page(self, &b)?.is_some();
        Ok((string_list(&b.body, "tags", "tags list")?, more))
    }

    /// All repositories of the registry (`/v2/_catalog`), following pagination.
    pub async fn catalog(&self) -> Result<Vec<String>, ClientError> {
        let first = self.url(&ocireg_api::catalog_path(self.t.opts.page_size, None))?;
        self.list_all(
            first,
            vec!["registry:catalog:*".to_owned()],
            "repositories",
            "catalog",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_missing_lists_are_empty() {
        assert!(string_list(br#"{"name":"a","tags":null}"#, "tags", "t")
            .unwrap()
            .is_empty());
        assert!(string_list(br#"{"name":"a"}"#, "tags", "t")
            .unwrap()
            .is_empty());
        assert_eq!(
            string_list(br#"{"tags":["a","b"]}"#, "tags", "t").unwrap(),
            vec!["a", "b"]
        );
        assert!(string_list(br#"{"tags":[1]}"#, "tags", "t").is_err());
        assert!(string_list(b"nope", "tags", "t").is_err());
    }
}
