//! The auth gate of the in-process app: challenges, 401/403/429, the token endpoint, catalog
//! filtering. The app is driven with `tower::ServiceExt::oneshot`.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::StatusCode;
use ocireg_auth::*;
use ocireg_server::ServerOptions;
use ocireg_test_support::router::Resp;

use common::{basic, sha};

fn auth(tokens: bool) -> Arc<Auth> {
    let users = common::alice_and_bob();
    let rule = common::bob_writes("prod/**", Principal::Authenticated);
    let public = common::bob_writes("public/**", Principal::Anonymous);
    Arc::new(
        Auth::new(AuthOptions {
            htpasswd: Some(users),
            acl: Acl::new(vec![rule, public], &BTreeMap::new(), Vec::<String>::new()),
            token: tokens.then(|| TokenOptions {
                key: TokenKey::generate(),
                service: "ocireg".into(),
                issuer: "ocireg".into(),
                expiry: Duration::from_secs(60),
                realm: None,
            }),
            max_failed_logins: 4,
            ..common::admin_only()
        })
        .unwrap(),
    )
}

async fn server(tokens: bool) -> axum::Router {
    let opts = ServerOptions {
        auth: Some(auth(tokens)),
        ..ServerOptions::default()
    };
    common::memory_app(opts).await.0
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    authz: Option<&str>,
    body: &[u8],
    peer: &str,
) -> Resp {
    common::request(method, path, authz, body)
        .peer(Some(peer))
        .send(app)
        .await
}

fn challenge(r: &Resp) -> String {
    r.headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn error_code(r: &Resp) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_owned()
}

async fn push_blob(app: &axum::Router, repo: &str, authz: Option<&str>, data: &[u8]) -> Resp {
    let digest = sha(data);
    let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    call(app, "POST", &path, authz, data, "10.1.1.1:1000").await
}

const PEER: &str = "10.0.0.9:4000";

/// `GET path` from [`PEER`] with no body.
async fn get(app: &axum::Router, path: &str, authz: Option<&str>) -> Resp {
    call(app, "GET", path, authz, b"", PEER).await
}

/// `GET /v2/` as alice with `pass` from `peer`.
async fn alice_logs_in(app: &axum::Router, pass: &str, peer: &str) -> Resp {
    let authz = basic("alice", pass);
    call(app, "GET", "/v2/", Some(&authz), b"", peer).await
}

#[tokio::test]
async fn basic_mode_challenges_and_refusals() {
    let app = server(false).await;
    // Anonymous push: 401 UNAUTHORIZED with a Basic challenge.
    let r = push_blob(&app, "team/app", None, b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    assert_eq!(
        challenge(&r),
        "Basic realm=\"http://reg.test:5000/v2/\",charset=\"UTF-8\""
    );
    // Wrong password: 401 too.
    let r = push_blob(&app, "team/app", Some(&basic("alice", "nope")), b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).starts_with("Basic "));
    // Right password: created.
    let r = push_blob(&app, "team/app", Some(&basic("alice", "alicepw")), b"x").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // alice may read prod/** but not write there: 403 DENIED; bob may.
    let r = push_blob(&app, "prod/app", Some(&basic("alice", "alicepw")), b"y").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "DENIED");
    let r = push_blob(&app, "prod/app", Some(&basic("bob", "bobpw")), b"y").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = push_blob(&app, "public/app", Some(&basic("bob", "bobpw")), b"z").await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Delete: only admins by default.
    let dig = sha(b"x");
    let path = format!("/v2/team/app/blobs/{dig}");
    let r = call(
        &app,
        "DELETE",
        &path,
        Some(&basic("alice", "alicepw")),
        b"",
        PEER,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Base endpoint needs a login; anonymous reads of public/** work.
    let r = get(&app, "/v2/", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let dz = sha(b"z");
    let r = get(&app, &format!("/v2/public/app/blobs/{dz}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "z");
    // Catalog: only what the caller may read.
    let r = get(&app, "/v2/_catalog", Some(&basic("admin", "adminpw"))).await;
    assert_eq!(r.status, StatusCode::OK);
    let all: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        all["repositories"],
        serde_json::json!(["prod/app", "public/app", "team/app"])
    );
    // Token endpoint is off in Basic mode.
    let r = get(&app, "/v2/_ocireg/token", Some(&basic("bob", "bobpw"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_logins_rate_limited() {
    let app = server(false).await;
    for _ in 0..4 {
        let r = alice_logs_in(&app, "bad", "10.9.9.9:1").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = alice_logs_in(&app, "alicepw", "10.9.9.9:2").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&r), "TOOMANYREQUESTS");
    assert!(r.headers.get("retry-after").is_some());
    let r = alice_logs_in(&app, "alicepw", "10.9.9.8:2").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn token_flow() {
    let app = server(true).await;
    let r = push_blob(&app, "team/app", None, b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&r),
        "Bearer realm=\"http://reg.test:5000/v2/_ocireg/token\",service=\"ocireg\",scope=\"repository:team/app:pull,push\""
    );
    // Wrong password at the token endpoint: 401.
    let q = "/v2/_ocireg/token?service=ocireg&scope=repository:team/app:pull,push";
    let r = get(&app, q, Some(&basic("alice", "bad"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Right password: a token; push with it.
    let r = get(&app, q, Some(&basic("alice", "alicepw"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    let bearer = format!("Bearer {token}");
    let r = push_blob(&app, "team/app", Some(&bearer), b"x").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // Same token on another repository: 401 insufficient_scope naming the needed scope.
    let r = push_blob(&app, "team/other", Some(&bearer), b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let ch = challenge(&r);
    assert!(
        ch.contains("scope=\"repository:team/other:pull,push\"")
            && ch.contains("insufficient_scope"),
        "{ch}"
    );
    // Asking for push on prod/** narrows to pull; pushing with it is 403 (ACL says no).
    let q2 = "/v2/_ocireg/token?service=ocireg&scope=repository%3Aprod%2Fapp%3Apull%2Cpush";
    let r = get(&app, q2, Some(&basic("alice", "alicepw"))).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let t2 = v["token"].as_str().unwrap();
    let claims = t2.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["access"][0]["actions"], serde_json::json!(["pull"]));
    let r = push_blob(&app, "prod/app", Some(&format!("Bearer {t2}")), b"q").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A garbage token: 401 invalid_token.
    let r = get(&app, "/v2/", Some("Bearer abc.def.ghi")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("invalid_token"));
    // Wrong service: 400.
    let r = get(
        &app,
        "/v2/_ocireg/token?service=x",
        Some(&basic("alice", "alicepw")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn no_auth_by_default() {
    let (app, _) = common::memory_app(ServerOptions::default()).await;
    let r = push_blob(&app, "team/app", None, b"x").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = get(&app, "/v2/_ocireg/token", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
