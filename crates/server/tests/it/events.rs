//! Manifest events on the in-process app: one event per successful push/delete with the right
//! fields, none for failed requests, and a failing sink does not fail the request.

use crate::common;
use ocireg_test_support::router;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use ocireg_auth::Auth;
use ocireg_server::{EventSink, ServerOptions};
use ocireg_webhook::{Action, Event};

use common::{basic, sha};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Debug, Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    fail: AtomicBool,
}

impl EventSink for Recorder {
    fn manifest_event(&self, ev: Event) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err("disk full".into());
            }
            self.events.lock().unwrap().push(ev);
            Ok(())
        })
    }
}

async fn server(with_auth: bool) -> (axum::Router, Arc<Recorder>) {
    let auth = with_auth.then(|| Arc::new(Auth::new(common::admin_only()).unwrap()));
    let rec = Arc::new(Recorder::default());
    let opts = ServerOptions {
        auth,
        events: Some(rec.clone()),
        ..ServerOptions::default()
    };
    (common::memory_app(opts).await.0, rec)
}

async fn call(app: &axum::Router, method: &str, path: &str, ct: Option<&str>, body: &[u8]) -> u16 {
    router::call(method, path)
        .host(None)
        .peer(None)
        .header("authorization", &basic("admin", "adminpw"))
        .header_opt("content-type", ct)
        .body(body.to_vec())
        .send(app)
        .await
        .code()
}

/// Pushes blobs and returns the manifest bytes referencing them.
async fn manifest(app: &axum::Router, repo: &str, n: u32) -> Vec<u8> {
    let config = format!("{{\"n\":{n}}}").into_bytes();
    let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha(&config));
    assert_eq!(call(app, "POST", &path, None, &config).await, 201);
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [],
    }))
    .unwrap()
}

#[tokio::test]
async fn one_event_per_successful_push_and_delete() {
    let (app, rec) = server(true).await;
    let m1 = manifest(&app, "team/app", 1).await;
    let m2 = manifest(&app, "team/app", 2).await;
    let (d1, d2) = (sha(&m1), sha(&m2));
    let put = |r: String, m: Vec<u8>| {
        let app = app.clone();
        async move {
            let path = format!("/v2/team/app/manifests/{r}");
            call(&app, "PUT", &path, Some(MANIFEST), &m).await
        }
    };
    assert_eq!(put("v1".into(), m1.clone()).await, 201);
    assert_eq!(put(d2.clone(), m2.clone()).await, 201);
    // Failures make no event: bad JSON, unknown tag to delete.
    assert_eq!(put("bad".into(), b"{".to_vec()).await, 400);
    assert_eq!(
        call(&app, "DELETE", "/v2/team/app/manifests/nope", None, b"").await,
        404
    );
    let del = |r: String| {
        let app = app.clone();
        async move {
            call(
                &app,
                "DELETE",
                &format!("/v2/team/app/manifests/{r}"),
                None,
                b"",
            )
            .await
        }
    };
    assert_eq!(del("v1".into()).await, 202);
    assert_eq!(del(d2.clone()).await, 202);
    let got = rec.events.lock().unwrap().clone();
    let summary: Vec<_> = got
        .iter()
        .map(|e| {
            (
                e.action,
                e.repository.to_string(),
                e.tag.as_ref().map(|t| t.to_string()),
                e.digest.to_string(),
                e.media_type.clone(),
                e.size,
                e.actor.clone(),
            )
        })
        .collect();
    let admin = Some("admin".to_string());
    let repo = "team/app".to_string();
    assert_eq!(
        summary,
        vec![
            (
                Action::Push,
                repo.clone(),
                Some("v1".into()),
                d1.clone(),
                MANIFEST.into(),
                m1.len() as u64,
                admin.clone()
            ),
            (
                Action::Push,
                repo.clone(),
                None,
                d2.clone(),
                MANIFEST.into(),
                m2.len() as u64,
                admin.clone()
            ),
            (
                Action::Delete,
                repo.clone(),
                Some("v1".into()),
                d1,
                MANIFEST.into(),
                m1.len() as u64,
                admin.clone()
            ),
            (
                Action::Delete,
                repo,
                None,
                d2,
                MANIFEST.into(),
                m2.len() as u64,
                admin
            ),
        ]
    );
}

#[tokio::test]
async fn a_failing_sink_does_not_fail_the_push() {
    let (app, rec) = server(false).await;
    rec.fail.store(true, Ordering::SeqCst);
    let m = manifest(&app, "x/y", 1).await;
    let lost = ocireg_server::lost_events();
    assert_eq!(
        call(&app, "PUT", "/v2/x/y/manifests/t", Some(MANIFEST), &m).await,
        201
    );
    assert!(ocireg_server::lost_events() > lost);
    rec.fail.store(false, Ordering::SeqCst);
    assert_eq!(
        call(&app, "DELETE", "/v2/x/y/manifests/t", None, b"").await,
        202
    );
    let got = rec.events.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].action, Action::Delete);
    assert_eq!(got[0].actor, None, "auth off: no actor");
}
