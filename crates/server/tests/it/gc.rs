//! `POST /v2/_ocireg/gc` on the in-process app: admin-only with auth, flags, the JSON report.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use ocireg_auth::*;
use ocireg_server::ServerOptions;
use ocireg_store::{GcOptions, GcReport, Store};
use ocireg_test_support::router::Resp;

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

/// `POST /v2/_ocireg/gc{query}` with optional credentials.
async fn gc(app: &axum::Router, query: &str, authz: Option<&str>) -> Resp {
    let path = format!("/v2/_ocireg/gc{query}");
    common::request("POST", &path, authz, b"").send(app).await
}

#[tokio::test]
async fn only_admins_may_collect() {
    let (app, _) = server(Some(admin_and_bob())).await;
    let r = gc(&app, "", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("www-authenticate").is_some());
    let bob = basic("bob", "bobpw");
    let r = gc(&app, "", Some(&bob)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("DENIED"));
    let admin = basic("admin", "adminpw");
    let r = gc(&app, "?dry_run=true", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK);
    let report: GcReport = serde_json::from_slice(&r.body).unwrap();
    assert!(report.dry_run);
    let r = common::request("GET", "/v2/_ocireg/gc", Some(&admin), b"")
        .send(&app)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn collects_unreferenced_blobs_and_honours_dry_run() {
    let (app, store) = server(None).await;
    let data = b"an unreferenced blob".to_vec();
    let d = sha(&data);
    let path = format!("/v2/lonely/blobs/uploads/?digest={d}");
    let r = common::request("POST", &path, None, &data).send(&app).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = gc(&app, "?dry_run=1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let dry: GcReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(dry.blobs.len(), 1);
    assert_eq!(dry.blobs[0].digest, d);
    assert_eq!(dry.bytes_freed, data.len() as u64);
    assert_eq!(store.snapshot().len(), 1, "dry run kept the repository");
    // A real run (grace period 0) removes it.
    let r = gc(&app, "?dry_run=false", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let real: GcReport = serde_json::from_slice(&r.body).unwrap();
    assert!(!real.dry_run);
    assert_eq!(real.blobs, dry.blobs);
    assert!(store.snapshot().is_empty());
    let r = gc(&app, "?dry_run=maybe", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
