//! `GET /v2/_ocireg/search` on the in-process app: filters (name, tag, annotation,
//! artifactType), stable pagination with `Link`, metadata loaded lazily after a reopen, the
//! off switch, and read-access filtering with auth.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use ocireg_auth::*;
use ocireg_server::{app, ServerOptions};
use ocireg_store::{MemoryDriver, Store, StoreOptions};
use ocireg_test_support::router::Resp;
use serde_json::{json, Value};

use common::{basic, sha};

const EXT: &str = "application/vnd.provisioning.extension.v1";
const KCL: &str = "application/vnd.provisioning.kcl-package.v1";
const SBOM: &str = "application/spdx+json";
const EMPTY: &[u8] = b"{}";

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    authz: Option<&str>,
    body: Vec<u8>,
    ctype: Option<&str>,
) -> Resp {
    common::request(method, path, authz, &body)
        .host(Some("reg.test"))
        .header_opt("content-type", ctype)
        .send(app)
        .await
}

async fn push_blob(app: &axum::Router, repo: &str, data: &[u8], authz: Option<&str>) {
    let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha(data));
    let r = call(app, "POST", &path, authz, data.to_vec(), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
}

/// Pushes an artifact manifest (empty config, one layer) under `tag` (or by digest when `None`);
/// returns its digest.
async fn push_artifact(
    app: &axum::Router,
    repo: &str,
    tag: Option<&str>,
    artifact_type: &str,
    annotations: Value,
    subject: Option<(&str, usize)>,
    authz: Option<&str>,
) -> String {
    let layer = format!("{repo}:{tag:?}:{annotations}").into_bytes();
    push_blob(app, repo, EMPTY, authz).await;
    push_blob(app, repo, &layer, authz).await;
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(EMPTY), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha(&layer), "size": layer.len()}],
        "annotations": annotations,
    });
    if let Some((digest, size)) = subject {
        m["subject"] = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size});
    }
    let body = serde_json::to_vec(&m).unwrap();
    let digest = sha(&body);
    let reference = tag.map_or(digest.clone(), str::to_owned);
    let r = call(
        app,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        authz,
        body,
        Some("application/vnd.oci.image.manifest.v1+json"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    digest
}

/// The hits of one search request, as (repository, tags) pairs.
fn hits(r: &Resp) -> Vec<(String, Vec<String>)> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let tags = h["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            (h["repository"].as_str().unwrap().to_owned(), tags)
        })
        .collect()
}

async fn search(app: &axum::Router, query: &str, authz: Option<&str>) -> Resp {
    call(
        app,
        "GET",
        &format!("/v2/_ocireg/search?{query}"),
        authz,
        Vec::new(),
        None,
    )
    .await
}

/// Follows `Link` from `first` to the end; returns every hit in order.
async fn all_pages(app: &axum::Router, first: &str, authz: Option<&str>) -> (Vec<Value>, usize) {
    let mut path = format!("/v2/_ocireg/search?{first}");
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let r = call(app, "GET", &path, authz, Vec::new(), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        pages += 1;
        out.extend(r.json()["results"].as_array().unwrap().iter().cloned());
        match r.headers.get("link") {
            None => {
                assert!(r.json().get("next").is_none());
                return (out, pages);
            }
            Some(link) => {
                let link = link.to_str().unwrap();
                path = ocireg_api::parse_link_next(link).unwrap();
                let next = r.json()["next"].as_str().unwrap().to_owned();
                assert!(
                    path.ends_with(&ocireg_api::encode_query_value(&next)),
                    "{path} vs {next}"
                );
            }
        }
        assert!(pages < 100, "pagination does not end");
    }
}

/// A registry with extensions, a KCL package, an image with an SBOM referrer.
async fn populate(app: &axum::Router) -> BTreeMap<&'static str, String> {
    let mut d = BTreeMap::new();
    let ann = |v: &str| json!({"org.opencontainers.image.version": v, "kind": "extension"});
    let extensions = [
        ("vpc1", "provisioning-extensions/aws/vpc", "1.0.0"),
        ("vpc2", "provisioning-extensions/aws/vpc", "1.1.0"),
        ("dns", "provisioning-extensions/gcp/dns", "2.0.0"),
    ];
    for (key, repo, version) in extensions {
        let digest = push_artifact(app, repo, Some(version), EXT, ann(version), None, None).await;
        d.insert(key, digest);
    }
    let kcl = json!({"kind": "kcl"});
    let kcl_digest = push_artifact(
        app,
        "provisioning-kcl/lib",
        Some("0.1"),
        KCL,
        kcl,
        None,
        None,
    );
    d.insert("kcl", kcl_digest.await);
    let app_digest =
        push_artifact(app, "team/app", Some("latest"), EXT, json!({}), None, None).await;
    let path = format!("/v2/team/app/manifests/{app_digest}");
    let r = call(app, "GET", &path, None, Vec::new(), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let sbom = json!({"kind": "sbom"});
    let subject = Some((app_digest.as_str(), 300));
    let sbom_digest = push_artifact(app, "team/app", None, SBOM, sbom, subject, None).await;
    d.insert("sbom", sbom_digest);
    d.insert("app", app_digest);
    d
}

/// Populates a registry through one app, then opens a second store over the same storage
/// (which knows no manifest metadata until it loads it) behind an app with `opts`.
async fn populated_then_reopened(
    opts: ServerOptions,
) -> (axum::Router, BTreeMap<&'static str, String>) {
    let driver = Arc::new(MemoryDriver::new());
    let store = Store::open(driver.clone(), StoreOptions::default())
        .await
        .unwrap();
    let d = populate(&app(store, ServerOptions::default())).await;
    let store = Store::open(driver, StoreOptions::default()).await.unwrap();
    (app(store, opts), d)
}

/// One hit of `repo` carrying exactly `tag`.
fn only(repo: &str, tag: &str) -> Vec<(String, Vec<String>)> {
    vec![(repo.to_owned(), vec![tag.to_owned()])]
}

/// By name (substring, case-insensitive): both vpc versions, ordered by digest, with the
/// manifest's metadata.
async fn check_name_filter(app: &axum::Router, d: &BTreeMap<&str, String>) {
    let r = search(app, "q=AWS", None).await;
    let h = hits(&r);
    let mut want = [(d["vpc1"].clone(), "1.0.0"), (d["vpc2"].clone(), "1.1.0")];
    want.sort();
    assert_eq!(
        h,
        want.iter()
            .map(|(_, t)| (
                "provisioning-extensions/aws/vpc".to_owned(),
                vec![t.to_string()]
            ))
            .collect::<Vec<_>>()
    );
    let first = &r.json()["results"][0];
    assert_eq!(first["digest"], want[0].0.as_str());
    assert_eq!(first["artifactType"], EXT);
    assert_eq!(
        first["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(first["annotations"]["kind"], "extension");
    assert!(first["size"].as_u64().unwrap() > 100);
}

/// Tags (exact, and prefix with `*`), annotations (key=value, key only, all must match) and
/// artifactType (a `+` in the media type survives the query string).
async fn check_tag_annotation_and_type_filters(app: &axum::Router, d: &BTreeMap<&str, String>) {
    let dns_version = "annotation=org.opencontainers.image.version%3D2.0.0";
    let exact = [
        (
            "tag=1.1.0",
            only("provisioning-extensions/aws/vpc", "1.1.0"),
        ),
        (
            dns_version,
            only("provisioning-extensions/gcp/dns", "2.0.0"),
        ),
        (
            &format!("artifactType={KCL}&q=kcl"),
            only("provisioning-kcl/lib", "0.1"),
        ),
    ];
    for (query, want) in exact {
        assert_eq!(hits(&search(app, query, None).await), want, "{query}");
    }
    let counts = [
        ("tag=1.*", 2),
        ("tag=1.1", 0),
        ("annotation=kind%3Dextension", 3),
        ("annotation=kind", 5),
        (
            "annotation=kind&annotation=org.opencontainers.image.version%3D1.0.0",
            1,
        ),
        ("annotation=kind%3Dnope", 0),
        (&format!("artifactType={KCL}&q=aws"), 0),
    ];
    for (query, n) in counts {
        assert_eq!(hits(&search(app, query, None).await).len(), n, "{query}");
    }
    let sbom = ocireg_api::encode_query_value(SBOM);
    let r = search(app, &format!("artifactType={sbom}"), None).await;
    assert_eq!(
        hits(&r),
        vec![("team/app".to_owned(), vec![])],
        "the untagged referrer"
    );
    assert_eq!(r.json()["results"][0]["digest"], d["sbom"].as_str());
}

/// Everything, then page by page: the same hits in the same order, no repeats; filters survive
/// in the Link; n=0 finds nothing, a bad n is 400, and only GET is allowed.
async fn check_pagination(app: &axum::Router) {
    let everything = search(app, "n=1000", None).await;
    let all: Vec<Value> = everything.json()["results"].as_array().unwrap().clone();
    assert_eq!(all.len(), 6);
    assert!(everything.headers.get("link").is_none());
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|h| {
            (
                h["repository"].as_str().unwrap().to_owned(),
                h["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ordered by repository, then digest");
    for n in [1, 2, 4, 5] {
        let (paged, pages) = all_pages(app, &format!("n={n}"), None).await;
        assert_eq!(paged, all, "n={n}");
        assert_eq!(pages, all.len().div_ceil(n), "n={n}");
    }
    let (paged, _) = all_pages(app, "n=1&annotation=kind%3Dextension", None).await;
    assert_eq!(paged.len(), 3);
    assert_eq!(hits(&search(app, "n=0", None).await).len(), 0);
    for query in ["n=x", "annotation=%3Dv"] {
        let status = search(app, query, None).await.status;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
    let r = call(app, "POST", "/v2/_ocireg/search", None, Vec::new(), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn filters_pagination_and_lazy_metadata() {
    let (app, d) = populated_then_reopened(ServerOptions::default()).await;
    check_name_filter(&app, &d).await;
    check_tag_annotation_and_type_filters(&app, &d).await;
    check_pagination(&app).await;
}

#[tokio::test]
async fn search_can_be_switched_off() {
    let opts = ServerOptions {
        search: false,
        ..ServerOptions::default()
    };
    let (app, _) = common::memory_app(opts).await;
    let r = search(&app, "q=x", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["errors"][0]["code"], "UNSUPPORTED");
}

fn auth() -> Arc<Auth> {
    let users = common::alice_and_bob();
    let secret = common::bob_writes("provisioning-kcl/**", Principal::User("bob".into()));
    let public = common::bob_writes("team/**", Principal::Anonymous);
    Arc::new(
        Auth::new(AuthOptions {
            single_user: None,
            htpasswd: Some(users),
            acl: Acl::new(vec![secret, public], &BTreeMap::new(), Vec::<String>::new()),
            max_failed_logins: 10,
            ..common::admin_only()
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn only_readable_repositories_are_searched() {
    let opts = ServerOptions {
        auth: Some(auth()),
        ..ServerOptions::default()
    };
    let (app, _) = populated_then_reopened(opts).await;
    let repos = |r: &Resp| {
        let mut v: Vec<String> = hits(r).into_iter().map(|(repo, _)| repo).collect();
        v.dedup();
        v
    };
    let bob = basic("bob", "bobpw");
    let alice = basic("alice", "alicepw");
    let r = search(&app, "n=100", Some(&bob)).await;
    assert_eq!(
        repos(&r),
        [
            "provisioning-extensions/aws/vpc",
            "provisioning-extensions/gcp/dns",
            "provisioning-kcl/lib",
            "team/app"
        ]
    );
    // alice may not read provisioning-kcl/**: never sees it, by name or by type, on any page.
    let r = search(&app, "n=100", Some(&alice)).await;
    assert_eq!(
        repos(&r),
        [
            "provisioning-extensions/aws/vpc",
            "provisioning-extensions/gcp/dns",
            "team/app"
        ]
    );
    assert_eq!(hits(&search(&app, "q=kcl", Some(&alice)).await).len(), 0);
    assert_eq!(
        hits(&search(&app, &format!("artifactType={KCL}"), Some(&alice)).await).len(),
        0
    );
    let (paged, _) = all_pages(&app, "n=1", Some(&alice)).await;
    assert_eq!(paged.len(), 5);
    assert!(paged
        .iter()
        .all(|h| h["repository"] != "provisioning-kcl/lib"));
    // Anonymous callers are challenged, as for the catalog.
    let r = search(&app, "q=team", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("www-authenticate").is_some());
}
