//! The Bearer token flow against CNCF Distribution 2.8.2 configured with `auth.token` and a
//! token server written here (RS256 JWTs signed with a test key): challenge parsing, token
//! fetch with Basic credentials, per-scope caching, `expires_in`, `access_token`, both scopes on
//! a cross-repository mount, and clean failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::token::{Signer, TokenServer};
use common::*;
use ocireg_client::{ClientError, Credentials};
use ocireg_oci::media_types;

const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-issuer";

struct Setup {
    signer: Signer,
    tokens: TokenServer,
    reg: TestRegistry,
    _dir: tempfile::TempDir,
}

async fn setup(expires_in: u64, access_token_field: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new(dir.path());
    let cert = signer.cert.clone();
    let tokens = TokenServer::start(
        signer.clone(),
        ISSUER,
        vec![("bob".into(), "builder".into())],
        expires_in,
        access_token_field,
    )
    .await;
    let reg = start_distribution(&DistOptions {
        token: Some(TokenAuth {
            realm: tokens.realm.clone(),
            service: SERVICE.into(),
            issuer: ISSUER.into(),
            root_cert: cert,
        }),
        ..DistOptions::default()
    });
    Setup {
        signer,
        tokens,
        reg,
        _dir: dir,
    }
}

fn bob() -> Credentials {
    Credentials::Basic {
        username: "bob".into(),
        password: "builder".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_push_pull_mount_with_scoped_cached_tokens() {
    let s = setup(300, false).await;
    let client = s.reg.client(bob(), fast_options());
    client.ping().await.unwrap();

    let src = repo("proj/src");
    let dst = repo("proj/dst");
    let data = pseudo_random(200_000, 3);
    let d = sha256(&data);
    client
        .push_blob(&src, &d, data.len() as u64, data.clone().into())
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(client.blob_exists(&src, &d).await.unwrap());
    }
    let mut back = Vec::new();
    client.pull_blob(&src, &d, &mut back).await.unwrap();
    assert_eq!(back, data);

    let reqs = s.tokens.requests();
    assert!(reqs.iter().all(|r| r.service.as_deref() == Some(SERVICE)));
    assert!(reqs.iter().all(|r| r.user.as_deref() == Some("bob")));
    let pull_src: Vec<_> = reqs
        .iter()
        .filter(|r| r.scopes == vec!["repository:proj/src:pull".to_owned()])
        .collect();
    assert_eq!(
        pull_src.len(),
        1,
        "one token per scope set, then cached: {reqs:?}"
    );

    // Mount asks for one token covering both repositories.
    assert!(client.mount_blob(&dst, &d, &src).await.unwrap());
    let reqs = s.tokens.requests();
    let mount = reqs.last().unwrap();
    assert!(
        mount
            .scopes
            .contains(&"repository:proj/dst:pull,push".to_owned()),
        "{mount:?}"
    );
    assert!(
        mount
            .scopes
            .contains(&"repository:proj/src:pull".to_owned()),
        "{mount:?}"
    );
    assert!(client.blob_exists(&dst, &d).await.unwrap());

    // Manifest, tags and the catalog (registry:catalog:* scope).
    let empty = media_types::OCI_EMPTY_JSON;
    let ed = sha256(empty);
    client
        .push_blob(&dst, &ed, 2, Bytes::from_static(empty).into())
        .await
        .unwrap();
    let m = image_manifest((&ed, 2), &[(&d, data.len() as u64)]);
    let md = client
        .put_manifest(
            &dst,
            &"v1".parse().unwrap(),
            media_types::OCI_MANIFEST,
            Bytes::from(m.clone()),
        )
        .await
        .unwrap();
    assert_eq!(md, sha256(&m));
    assert_eq!(client.tags(&dst).await.unwrap(), vec!["v1"]);
    let catalog = client.catalog().await.unwrap();
    assert_eq!(catalog, vec!["proj/dst", "proj/src"]);
    assert!(s
        .tokens
        .requests()
        .iter()
        .any(|r| r.scopes.contains(&"registry:catalog:*".to_owned())));

    // Neither the password nor a cached JWT shows in Debug output.
    let shown = format!("{client:?}");
    assert!(shown.contains("CachedToken"), "tokens are cached: {shown}");
    assert!(
        !shown.contains("builder") && !shown.contains("eyJ"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_fetched_again_and_access_token_is_accepted() {
    let s = setup(1, true).await;
    let client = s.reg.client(bob(), fast_options());
    let r = repo("short");
    let d = sha256(b"absent");
    assert!(!client.blob_exists(&r, &d).await.unwrap());
    assert!(!client.blob_exists(&r, &d).await.unwrap());
    let count = |s: &Setup| {
        s.tokens
            .requests()
            .iter()
            .filter(|q| q.scopes == vec!["repository:short:pull".to_owned()])
            .count()
    };
    assert_eq!(count(&s), 1, "still cached within its lifetime");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!client.blob_exists(&r, &d).await.unwrap());
    assert_eq!(
        count(&s),
        2,
        "expires_in = 1 s: a new token after it ran out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_failures_are_clean() {
    let s = setup(300, false).await;
    let wrong = s.reg.client(
        Credentials::Basic {
            username: "bob".into(),
            password: "wrong".into(),
        },
        fast_options(),
    );
    let err = wrong.tags(&repo("x")).await.unwrap_err();
    assert!(matches!(err, ClientError::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("401"), "{err}");

    // Anonymous tokens carry no access here: the registry still refuses, with its code.
    let anon = s.reg.client(Credentials::Anonymous, fast_options());
    let err = anon.tags(&repo("x")).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(
        err.error_code(),
        Some(ocireg_oci::ErrorCode::Unauthorized),
        "{err}"
    );
    assert!(s.tokens.requests().iter().any(|r| r.user.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_bearer_token_is_sent_as_is_and_never_shown() {
    let s = setup(300, false).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = s.signer.sign(&serde_json::json!({
        "iss": ISSUER, "sub": "ci", "aud": SERVICE, "exp": now + 300, "nbf": now - 30,
        "iat": now, "jti": "static",
        "access": [{"type": "repository", "name": "ci/app", "actions": ["pull", "push"]}],
    }));
    let client = s
        .reg
        .client(Credentials::Bearer(jwt.clone()), fast_options());
    let data = pseudo_random(10_000, 12);
    let d = sha256(&data);
    client
        .push_blob(&repo("ci/app"), &d, 10_000, data.into())
        .await
        .unwrap();
    assert!(client.blob_exists(&repo("ci/app"), &d).await.unwrap());
    assert!(
        s.tokens.requests().is_empty(),
        "no token server round trips"
    );

    let err = client
        .blob_exists(&repo("elsewhere"), &d)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("bearer token"), "{err}");

    let shown = format!("{client:?}");
    assert!(
        !shown.contains(&jwt[jwt.len() - 20..]),
        "token leaked in Debug"
    );
}
