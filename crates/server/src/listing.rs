//! Listings: tags (sorted, `n`/`last`/`Link` pagination), the catalog, and the referrers API.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use ocireg_oci::{media_types, Digest, RepoName};
use serde_json::json;

use crate::error::{Failure, Result};
use crate::routes::{json_response, typed_response, Req};
use crate::AppState;

/// Asks the store for one more than a page to know whether a `Link` to the next page is due.
/// Returns the page and, when more follow, the last entry of the page.
fn page(mut items: Vec<String>, n: Option<usize>) -> (Vec<String>, Option<String>) {
    match n {
        Some(n) if items.len() > n => {
            items.truncate(n);
            let last = items.last().cloned();
            (items, last)
        }
        _ => (items, None),
    }
}

fn set_link(resp: &mut Response, next_path: String) {
    if let Ok(v) = HeaderValue::from_str(&ocireg_api::link_header(&next_path)) {
        resp.headers_mut().insert(header::LINK, v);
    }
}

pub(crate) async fn tags(st: &AppState, repo: &RepoName, req: Req) -> Result<Response> {
    let p = ocireg_api::parse_pagination(req.query.as_deref()).map_err(Failure::from)?;
    let items = if p.n == Some(0) {
        // Still answers NAME_UNKNOWN for a repository that does not exist.
        st.store.tags(repo, None, Some(1)).await?;
        Vec::new()
    } else {
        st.store
            .tags(repo, p.last.as_deref(), p.n.map(|n| n.saturating_add(1)))
            .await?
    };
    let (items, more) = page(items, p.n);
    let mut resp = json_response(json!({ "name": repo.as_str(), "tags": items }).to_string());
    if let Some(last) = more {
        set_link(&mut resp, ocireg_api::tags_path(repo, p.n, Some(&last)));
    }
    Ok(resp)
}

pub(crate) async fn catalog(st: &AppState, req: Req) -> Result<Response> {
    let p = ocireg_api::parse_pagination(req.query.as_deref()).map_err(Failure::from)?;
    let items = if p.n == Some(0) {
        Vec::new()
    } else if let (Some(auth), Some(caller)) = (&st.opts.auth, &req.caller) {
        // Only what the caller may read; filtered before paging so pages stay full.
        let mut all = st.store.catalog(p.last.as_deref(), None).await?;
        all.retain(|repo| auth.can_read(caller, repo));
        if let Some(n) = p.n {
            all.truncate(n.saturating_add(1));
        }
        all
    } else {
        st.store
            .catalog(p.last.as_deref(), p.n.map(|n| n.saturating_add(1)))
            .await?
    };
    let (items, more) = page(items, p.n);
    let mut resp = json_response(json!({ "repositories": items }).to_string());
    if let Some(last) = more {
        set_link(&mut resp, ocireg_api::catalog_path(p.n, Some(&last)));
    }
    Ok(resp)
}

pub(crate) async fn referrers(
    st: &AppState,
    repo: &RepoName,
    subject: &Digest,
    req: Req,
) -> Result<Response> {
    let artifact_type = req.query_param("artifactType");
    let found = st
        .store
        .referrers(repo, subject, artifact_type.as_deref())
        .await?;
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": found,
    });
    let mut resp = typed_response(body.to_string(), media_types::OCI_INDEX);
    if artifact_type.is_some() {
        resp.headers_mut().insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
