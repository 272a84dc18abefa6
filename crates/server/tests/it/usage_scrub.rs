//! `GET /v2/_ocireg/usage`, `POST /v2/_ocireg/scrub` and quota refusals on the in-process app:
//! rights with auth on, the JSON answers, `403 DENIED` for chunks over a quota (using the
//! request's Content-Length), and scrubbed objects answered as unknown.

use crate::common;
use ocireg_test_support::router;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use ocireg_auth::*;
use ocireg_server::{app, ServerOptions};
use ocireg_store::{
    paths, Driver, MemoryDriver, NamespaceLimit, QuotaOptions, ScrubReport, Store, StoreOptions,
};
use serde_json::Value;

use common::{admin_and_bob, basic, sha};

fn quota() -> QuotaOptions {
    let mut namespaces = BTreeMap::new();
    namespaces.insert(
        "team".to_owned(),
        NamespaceLimit {
            storage_limit_bytes: Some(1000),
            artifact_limit: Some(5),
        },
    );
    QuotaOptions {
        storage_limit_bytes: None,
        artifact_limit: Some(50),
        namespaces,
    }
}

async fn server(auth: Option<Arc<Auth>>) -> (axum::Router, Store, Arc<MemoryDriver>) {
    let driver = Arc::new(MemoryDriver::new());
    let dyn_driver: Arc<dyn Driver> = driver.clone();
    let store = Store::open(
        dyn_driver,
        StoreOptions {
            dedupe: true,
            quota: Some(quota()),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let opts = ServerOptions {
        auth,
        ..ServerOptions::default()
    };
    (app(store.clone(), opts), store, driver)
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (StatusCode, Vec<u8>) {
    let mut c = router::call(method, path).body(body.to_vec());
    for (k, v) in headers {
        c = c.header(k, v);
    }
    let r = c.send(app).await;
    (r.status, r.body.to_vec())
}

/// A monolithic upload of `data` to `repo` with these headers.
async fn post_blob(
    app: &axum::Router,
    repo: &str,
    data: &[u8],
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<u8>) {
    let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha(data));
    call(app, "POST", &path, headers, data).await
}

fn code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_owned()
}

/// The usage answer before anything was pushed names the configured limits.
fn shows_limits(body: &[u8]) {
    let usage: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(usage["total_bytes"], 0);
    assert_eq!(
        usage["limits"]["namespaces"]["team"]["storage_limit_bytes"],
        1000
    );
    assert_eq!(usage["limits"]["artifact_limit"], 50);
}

/// A spec error envelope with the code `DENIED`.
fn denied(body: &[u8]) {
    assert_eq!(code(body), "DENIED");
}

/// A scrub report without findings.
fn clean(body: &[u8]) {
    let report: ScrubReport = serde_json::from_slice(body).unwrap();
    assert!(report.findings.is_empty());
}

#[tokio::test]
async fn usage_needs_credentials_and_scrub_an_admin() {
    let (app, _, _) = server(Some(admin_and_bob())).await;
    let bob = basic("bob", "bobpw");
    let admin = basic("admin", "adminpw");
    // (method, path under /v2/_ocireg/, credentials, status, what the body must show)
    type Check = Option<fn(&[u8])>;
    let cases: &[(&str, &str, Option<&str>, u16, Check)] = &[
        ("GET", "usage", None, 401, None),
        ("GET", "usage", Some(&bob), 200, Some(shows_limits)),
        ("POST", "scrub", None, 401, None),
        ("POST", "scrub", Some(&bob), 403, Some(denied)),
        ("POST", "scrub?rate_mb=0", Some(&admin), 200, Some(clean)),
        ("POST", "scrub?rate_mb=fast", Some(&admin), 400, None),
        ("GET", "scrub", Some(&admin), 405, None),
    ];
    for (method, path, authz, want, check) in cases {
        let headers: Vec<(&str, &str)> = authz.map(|a| ("authorization", a)).into_iter().collect();
        let path = format!("/v2/_ocireg/{path}");
        let (status, body) = call(&app, method, &path, &headers, b"").await;
        assert_eq!(status.as_u16(), *want, "{method} {path} as {authz:?}");
        if let Some(check) = check {
            check(&body);
        }
    }
}

#[tokio::test]
async fn chunks_over_a_quota_are_denied_and_usage_follows() {
    let (app, _, _) = server(None).await;
    // Start a session; its Location names it.
    let resp = router::call("POST", "/v2/team/app/blobs/uploads/")
        .host(None)
        .peer(None)
        .send(&app)
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let location = resp.headers["location"].to_str().unwrap().to_owned();

    let chunk = vec![7u8; 600];
    let (status, _) = call(
        &app,
        "PATCH",
        &location,
        &[
            ("content-range", "0-599"),
            ("content-length", "600"),
            ("content-type", "application/octet-stream"),
        ],
        &chunk,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // 600 held by the session + 500 > 1000.
    let more = vec![8u8; 500];
    let (status, body) = call(
        &app,
        "PATCH",
        &location,
        &[("content-range", "600-1099"), ("content-length", "500")],
        &more,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "DENIED");
    let message = String::from_utf8_lossy(&body).into_owned();
    assert!(
        message.contains(
            "namespace \\\"team\\\" storage limit 1000 B (in use 600 B, this upload 500 B)"
        ),
        "{message}"
    );
    // The session is where it was: completing it with the 600 bytes works.
    let (status, _) = call(
        &app,
        "PUT",
        &format!("{location}?digest={}", sha(&chunk)),
        &[("content-length", "0")],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = call(&app, "GET", "/v2/_ocireg/usage", &[], b"").await;
    let usage: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(usage["namespaces"]["team"]["bytes"], 600);
    // A single-request upload announcing too much is denied too.
    let big = vec![9u8; 401];
    let (status, body) = post_blob(&app, "team/app", &big, &[("content-length", "401")]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    // Deleting frees it.
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/v2/team/app/blobs/{}", sha(&chunk)),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = post_blob(&app, "team/app", &big, &[("content-length", "401")]).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn scrubbed_objects_are_answered_unknown() {
    let (app, _, driver) = server(None).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = vec![3u8; 300];
    for data in [&config, &layer] {
        let (status, _) = post_blob(&app, "other/app", data, &[]).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let ct = ("content-type", "application/vnd.oci.image.manifest.v1+json");
    let (status, _) = call(&app, "PUT", "/v2/other/app/manifests/v1", &[ct], &manifest).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&app, "GET", "/v2/other/app/manifests/v1", &[], b"").await;
    assert_eq!(status, StatusCode::OK);

    for data in [&layer, &manifest] {
        let key = paths::shared_data(&sha(data).parse().unwrap());
        let mut bytes = driver.get_content(&key).await.unwrap().to_vec();
        bytes[10] ^= 1;
        driver.put_content(&key, bytes.into()).await.unwrap();
    }
    let (status, body) = call(&app, "POST", "/v2/_ocireg/scrub?rate_mb=0", &[], b"").await;
    assert_eq!(status, StatusCode::OK);
    let report: ScrubReport = serde_json::from_slice(&body).unwrap();
    assert_eq!(report.findings.len(), 2, "{report:?}");

    let blob = format!("/v2/other/app/blobs/{}", sha(&layer));
    for method in ["GET", "HEAD"] {
        let (status, body) = call(&app, method, &blob, &[], b"").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        if method == "GET" {
            assert_eq!(code(&body), "BLOB_UNKNOWN");
        }
    }
    let (status, body) = call(&app, "GET", "/v2/other/app/manifests/v1", &[], b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "MANIFEST_UNKNOWN");
    let config_blob = format!("/v2/other/app/blobs/{}", sha(&config));
    let (status, _) = call(&app, "GET", &config_blob, &[], b"").await;
    assert_eq!(status, StatusCode::OK);
}
