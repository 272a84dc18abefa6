//! `api_path`: request path → `Endpoint`, access rules, query/pagination and `Link` parsing.

use http::Method;
use ocireg_api::{
    blob_path, catalog_path, link_header, manifest_path, parse_link_next, parse_pagination,
    parse_path, query_param, referrers_path, required_access, required_action, tags_path,
    upload_path, upload_start_path, Action, Endpoint, API_METHODS,
};

/// The canonical request path for an endpoint, built with the crate's URL builders.
fn build(ep: &Endpoint) -> String {
    match ep {
        Endpoint::Base => "/v2/".to_owned(),
        Endpoint::Catalog => catalog_path(None, None),
        Endpoint::Tags { repo } => tags_path(repo, None, None),
        Endpoint::Manifest { repo, reference } => manifest_path(repo, reference),
        Endpoint::Blob { repo, digest } => blob_path(repo, digest),
        Endpoint::UploadStart { repo } => upload_start_path(repo),
        Endpoint::Upload { repo, session } => upload_path(repo, session),
        Endpoint::Referrers { repo, digest } => referrers_path(repo, digest, None),
        Endpoint::Extension { path } => format!("/v2/_ocireg/{path}"),
    }
}

fn check_endpoint(input: &str, ep: &Endpoint) {
    let built = build(ep);
    assert_eq!(
        parse_path(&built).as_ref(),
        Ok(ep),
        "URL builder output {built:?} (from {input:?}) does not parse back to the endpoint"
    );
    if let Endpoint::Extension { path } = ep {
        assert!(
            !path.contains(['%', '?']),
            "decoded extension path {path:?} still holds '%' or '?'"
        );
    }
    if let Some(repo) = ep.repo() {
        assert!(repo.as_str().len() <= ocireg_oci::RepoName::MAX_LEN);
    }
    assert!(!ep.allowed_methods().is_empty());
    // OPTIONS, which no endpoint answers, probes the rules for an unknown method.
    for m in API_METHODS.iter().chain([&Method::OPTIONS]) {
        let action = required_action(m, ep);
        let access = required_access(m, ep, None);
        match ep.repo() {
            None => {
                assert_eq!(action, Action::None, "{ep:?} {m}");
                assert!(access.is_empty(), "{ep:?} {m}: {access:?}");
            }
            Some(repo) => {
                assert_ne!(action, Action::None, "{ep:?} {m}");
                assert_eq!(access.len(), 1, "{ep:?} {m}: {access:?}");
                assert_eq!(&access[0].repo, repo);
                assert_eq!(access[0].action, action);
            }
        }
    }
}

fn check_query(query: Option<&str>, ep: Option<&Endpoint>) {
    if let Ok(p) = parse_pagination(query) {
        // Rebuild the query with the builder and parse it again: the same pagination.
        let rebuilt = catalog_path(p.n, p.last.as_deref());
        let q = rebuilt.split_once('?').map(|(_, q)| q);
        assert_eq!(
            parse_pagination(q).as_ref(),
            Ok(&p),
            "pagination of {query:?} does not survive {rebuilt:?}"
        );
        assert!(p.last.as_deref() != Some(""));
    } else {
        let n = query_param(query, "n");
        assert!(
            n.as_deref()
                .is_some_and(|n| !n.is_empty() && !n.bytes().all(|b| b.is_ascii_digit())),
            "pagination of {query:?} rejected although n={n:?} is a plain integer"
        );
    }
    // A cross-repository mount adds at most one access, always Pull on a valid name.
    if let Some(ep @ Endpoint::UploadStart { .. }) = ep {
        let access = required_access(&Method::POST, ep, query);
        assert!(!access.is_empty() && access.len() <= 2, "{access:?}");
        if let Some(extra) = access.get(1) {
            assert_eq!(extra.action, Action::Pull);
            assert_eq!(
                query_param(query, "from").as_deref(),
                Some(extra.repo.as_str())
            );
        }
    }
}

fn check_link(s: &str) {
    if let Some(uri) = parse_link_next(s) {
        assert!(!uri.contains('>'), "{uri:?}");
        let again = link_header(&uri);
        assert_eq!(
            parse_link_next(&again).as_deref(),
            Some(uri.as_str()),
            "Link {again:?} built from {s:?} does not parse back"
        );
    }
}

/// Parses the input as a request path (query included): on success the URL builders must
/// produce a path that parses back to an equal `Endpoint`, access rules must be consistent;
/// the query's pagination must survive a rebuild; a `Link` header found in the input must
/// survive `link_header`. Errors must be 4xx.
pub fn api_path(data: &[u8]) {
    let s = crate::text(data);
    let query = s.split_once('?').map(|(_, q)| q);
    let parsed = parse_path(&s);
    match &parsed {
        Ok(ep) => check_endpoint(&s, ep),
        Err(e) => assert!(
            (400..500).contains(&e.status),
            "parse_path({s:?}) failed with status {}",
            e.status
        ),
    }
    check_query(query, parsed.as_ref().ok());
    check_link(&s);
}
