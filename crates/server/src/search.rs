//! `GET /v2/_ocireg/search`: manifests by repository name, tag, annotation and artifact type,
//! limited to the repositories the caller may read (the catalog's rule), paginated with `n` /
//! `last` and a `Link` header like the catalog.
//!
//! Parameters: `q` (substring of the repository name, case-insensitive), `tag` (exact, or a
//! prefix when it ends with `*`), `annotation` (`key` or `key=value`, repeatable, all must
//! match), `artifactType` (exact), `n` (page size, default [`DEFAULT_PAGE`], at most
//! [`MAX_PAGE`]), `last` (the `next` cursor of the previous page).

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use ocireg_oci::ErrorCode;
use ocireg_store::{SearchHit, SearchQuery};
use serde_json::{json, Value};

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

/// Page size when the request gives no `n`.
pub(crate) const DEFAULT_PAGE: usize = 100;
/// Largest page served (a larger `n` is clamped).
pub(crate) const MAX_PAGE: usize = 1000;
/// The endpoint's path.
const PATH: &str = "/v2/_ocireg/search";

/// Every value of a (possibly repeated) query parameter, percent-decoded.
fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    query
        .map(|q| {
            q.split('&')
                .filter_map(|pair| ocireg_api::query_param(Some(pair), key))
                .collect()
        })
        .unwrap_or_default()
}

fn bad_request(message: String) -> Failure {
    Failure::code(ErrorCode::Unsupported, message).with_status(StatusCode::BAD_REQUEST)
}

/// The query of a request (without pagination).
fn parse_query(query: Option<&str>) -> Result<SearchQuery> {
    let one = |key: &str| ocireg_api::query_param(query, key).filter(|v| !v.is_empty());
    let mut annotations = Vec::new();
    for a in query_values(query, "annotation") {
        let (key, value) = match a.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        if key.is_empty() {
            return Err(bad_request(format!(
                "invalid annotation filter {a:?}: expected KEY or KEY=VALUE"
            )));
        }
        annotations.push((key, value));
    }
    Ok(SearchQuery {
        name: one("q"),
        tag: one("tag"),
        annotations,
        artifact_type: one("artifactType"),
        n: DEFAULT_PAGE,
        last: None,
    })
}

/// The query string that asks for the page after `last` with the same filters.
fn next_path(q: &SearchQuery, last: &str) -> String {
    let enc = ocireg_api::encode_query_value;
    let mut params = Vec::new();
    if let Some(v) = &q.name {
        params.push(format!("q={}", enc(v)));
    }
    if let Some(v) = &q.tag {
        params.push(format!("tag={}", enc(v)));
    }
    for (k, v) in &q.annotations {
        let a = match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        };
        params.push(format!("annotation={}", enc(&a)));
    }
    if let Some(v) = &q.artifact_type {
        params.push(format!("artifactType={}", enc(v)));
    }
    params.push(format!("n={}", q.n));
    params.push(format!("last={}", enc(last)));
    format!("{PATH}?{}", params.join("&"))
}

fn hit_json(h: &SearchHit) -> Value {
    json!({
        "repository": h.repository,
        "digest": h.digest.to_string(),
        "tags": h.tags,
        "mediaType": h.media_type,
        "artifactType": h.artifact_type,
        "annotations": h.annotations,
        "size": h.size,
    })
}

/// `GET /v2/_ocireg/search`.
pub(crate) async fn get(st: &AppState, req: Req) -> Result<Response> {
    if !st.opts.search {
        return Err(Failure::code(
            ErrorCode::Unsupported,
            "search is disabled on this registry",
        )
        .with_status(StatusCode::NOT_FOUND));
    }
    if req.method != Method::GET {
        return Err(Failure::unsupported_method());
    }
    let raw = req.query.as_deref();
    let p = ocireg_api::parse_pagination(raw).map_err(Failure::from)?;
    let mut q = parse_query(raw)?;
    q.n = p.n.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    q.last = p.last;
    let auth = st.opts.auth.clone();
    let caller = req.caller.clone();
    let can_read = move |repo: &str| match (&auth, &caller) {
        (None, _) => true,
        (Some(auth), Some(caller)) => auth.can_read(caller, repo),
        (Some(_), None) => false,
    };
    let page = st.store.search(&q, &can_read).await?;
    let results: Vec<Value> = page.hits.iter().map(hit_json).collect();
    let mut body = json!({ "results": results });
    if let Some(next) = &page.next {
        body["next"] = Value::String(next.clone());
    }
    let mut resp = crate::routes::json_response(body.to_string());
    if let Some(next) = &page.next {
        if let Ok(v) = HeaderValue::from_str(&ocireg_api::link_header(&next_path(&q, next))) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_round_trips_the_filters() {
        let raw = "q=ext&tag=v1*&annotation=a%3Db&annotation=c&artifactType=application%2Fx%2Bjson";
        let mut q = parse_query(Some(raw)).unwrap();
        q.n = 5;
        let path = next_path(&q, "r@sha256:00");
        let query = path.split_once('?').unwrap().1;
        let mut again = parse_query(Some(query)).unwrap();
        let p = ocireg_api::parse_pagination(Some(query)).unwrap();
        again.n = p.n.unwrap();
        again.last = p.last.clone();
        assert_eq!(again.annotations, q.annotations);
        assert_eq!(again.artifact_type.as_deref(), Some("application/x+json"));
        assert_eq!(again.tag.as_deref(), Some("v1*"));
        assert_eq!(again.n, 5);
        assert_eq!(p.last.as_deref(), Some("r@sha256:00"));
        assert!(parse_query(Some("annotation==x")).is_err());
    }
}
