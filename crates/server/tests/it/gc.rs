//! `POST /v2/_ocireg/gc` on the in-process app: admin-only with auth, flags, the JSON report.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use ocireg_auth::*;
use ocireg_server::ServerOptions;
use ocireg_store::{GcOptions, GcReport, Store};

use common::{admin_and_bob, basic, sha};

async fn server(auth: Option<Arc<Auth>>) -> (axum::Router, Store) {
    let opts = ServerOptions {
        auth,
        gc: GcOptions {
            grace_period: Duration::ZERO,
            ..GcOptions::default()
        },
        ..ServerOptions::default()
    };
    common::memory_app(opts).await
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    authz: Option<&str>,
    body: &[u8],
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let r = common::request(method, path, authz, body).send(app).await;
    (r.status, r.headers, r.body.to_vec())
}

#[tokio::test]
async fn only_admins_may_collect() {
    let (app, _) = server(Some(admin_and_bob())).await;
    let (status, headers, _) = call(&app, "POST", "/v2/_ocireg/gc", None, b"").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("www-authenticate").is_some());
    let bob = basic("bob", "bobpw");
    let (status, _, body) = call(&app, "POST", "/v2/_ocireg/gc", Some(&bob), b"").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("DENIED"));
    let admin = basic("admin", "adminpw");
    let (status, _, body) = call(
        &app,
        "POST",
        "/v2/_ocireg/gc?dry_run=true",
        Some(&admin),
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let report: GcReport = serde_json::from_slice(&body).unwrap();
    assert!(report.dry_run);
    let (status, _, _) = call(&app, "GET", "/v2/_ocireg/gc", Some(&admin), b"").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn collects_unreferenced_blobs_and_honours_dry_run() {
    let (app, store) = server(None).await;
    let data = b"an unreferenced blob".to_vec();
    let d = sha(&data);
    let (status, _, _) = call(
        &app,
        "POST",
        &format!("/v2/lonely/blobs/uploads/?digest={d}"),
        None,
        &data,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = call(&app, "POST", "/v2/_ocireg/gc?dry_run=1", None, b"").await;
    assert_eq!(status, StatusCode::OK);
    let dry: GcReport = serde_json::from_slice(&body).unwrap();
    assert_eq!(dry.blobs.len(), 1);
    assert_eq!(dry.blobs[0].digest, d);
    assert_eq!(dry.bytes_freed, data.len() as u64);
    assert_eq!(store.snapshot().len(), 1, "dry run kept the repository");
    // A real run (grace period 0) removes it.
    let (status, _, body) = call(&app, "POST", "/v2/_ocireg/gc?dry_run=false", None, b"").await;
    assert_eq!(status, StatusCode::OK);
    let real: GcReport = serde_json::from_slice(&body).unwrap();
    assert!(!real.dry_run);
    assert_eq!(real.blobs, dry.blobs);
    assert!(store.snapshot().is_empty());
    let (status, _, _) = call(&app, "POST", "/v2/_ocireg/gc?dry_run=maybe", None, b"").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
