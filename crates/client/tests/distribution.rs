//! Round trips against Debian's CNCF Distribution 2.8.2 with htpasswd auth, behind TLS with a
//! test CA (`ca_cert_path`), with a self-signed certificate (`verify_ssl = false`), and the
//! clean failures: bad credentials, unverifiable certificates, insecure hosts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::roundtrip::{full_round_trip, only_referrer_of_type, push_referrers, push_subject};
use common::*;
use ocireg_client::{ClientError, ClientOptions, Credentials, Registry};

fn user() -> Credentials {
    Credentials::Basic {
        username: "alice".into(),
        password: "wonderland".into(),
    }
}

fn htpasswd_opts() -> DistOptions {
    DistOptions {
        htpasswd: vec![("alice".into(), "wonderland".into())],
        ..DistOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_round_trip() {
    let reg = start_distribution(&htpasswd_opts());
    let client = reg.client(user(), small_chunks());
    let work = tempfile::tempdir().unwrap();
    full_round_trip(&client, &user(), work.path(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_bad_or_missing_credentials_fail_cleanly() {
    let reg = start_distribution(&htpasswd_opts());
    let wrong = reg.client(
        Credentials::Basic {
            username: "alice".into(),
            password: "nope".into(),
        },
        fast_options(),
    );
    let err = wrong.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Auth(_)), "{err:?}");
    assert!(
        err.to_string().contains("rejected the credentials"),
        "{err}"
    );

    let anon = reg.client(Credentials::Anonymous, fast_options());
    let err = anon.tags(&repo("x")).await.unwrap_err();
    assert!(err.to_string().contains("requires credentials"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_use_the_tag_schema_on_distribution_2_8() {
    let reg = start_distribution(&htpasswd_opts());
    let client = reg.client(user(), fast_options());
    let r = repo("refs");
    let (empty_digest, subject_digest, subject_len) = push_subject(&client, &r).await;
    assert!(client
        .referrers(&r, &subject_digest, None)
        .await
        .unwrap()
        .is_empty());

    let ids = push_referrers(
        &client,
        &r,
        &empty_digest,
        (&subject_digest, subject_len),
        &[
            "application/vnd.example.sbom",
            "application/vnd.example.sig",
        ],
    )
    .await;
    let all = client.referrers(&r, &subject_digest, None).await.unwrap();
    let got: Vec<_> = all.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(got, ids);
    let sig =
        only_referrer_of_type(&client, &r, &subject_digest, "application/vnd.example.sig").await;
    assert_eq!(sig.digest, ids[1]);
    assert_eq!(sig.annotations.as_ref().unwrap()["n"], "1");
    let tags = client.tags(&r).await.unwrap();
    let fallback = ocireg_client::referrers_tag(&subject_digest).unwrap();
    assert!(tags.contains(&fallback.as_str().to_owned()), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_test_ca_and_htpasswd() {
    let (_pki, tls, reg) = start_distribution_tls(htpasswd_opts(), true);
    assert!(reg.url.starts_with("https://"));
    let opts = ClientOptions {
        ca_cert_path: Some(tls.ca.clone()),
        ..small_chunks()
    };
    let client = reg.client(user(), opts);
    let work = tempfile::tempdir().unwrap();
    full_round_trip(&client, &user(), work.path(), false).await;

    // Without the CA the same server is refused at the handshake, without retrying.
    let slow_retry = ClientOptions {
        retry_delay: Duration::from_secs(3),
        ..fast_options()
    };
    let strict = reg.client(user(), slow_retry);
    let start = Instant::now();
    let err = strict.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "TLS failures are not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_needs_verify_ssl_off() {
    let (_pki, _, reg) = start_distribution_tls(htpasswd_opts(), false);
    let err = reg.client(user(), fast_options()).ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");

    let lax = reg.client(
        user(),
        ClientOptions {
            verify_ssl: false,
            ..fast_options()
        },
    );
    lax.ping().await.unwrap();
    let r = repo("selfsigned");
    let data = pseudo_random(100_000, 9);
    let d = sha256(&data);
    lax.push_blob(&r, &d, data.len() as u64, data.clone().into())
        .await
        .unwrap();
    let mut back = Vec::new();
    lax.pull_blob(&r, &d, &mut back).await.unwrap();
    assert_eq!(back, data);
}

#[test]
fn insecure_connections_only_for_loopback_or_when_allowed() {
    let err = Registry::new(
        "http://registry.example.com",
        Credentials::Anonymous,
        ClientOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::Insecure { .. }), "{err:?}");
    assert!(err.to_string().contains("allow_insecure"), "{err}");
    let no_verify = ClientOptions {
        verify_ssl: false,
        ..ClientOptions::default()
    };
    let err = Registry::new(
        "https://registry.example.com:5000",
        Credentials::Anonymous,
        no_verify.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::Insecure { .. }), "{err:?}");
    assert!(Registry::new(
        "https://[::1]:5000",
        Credentials::Anonymous,
        no_verify.clone()
    )
    .is_ok());
    let allowed = ClientOptions {
        allow_insecure: true,
        ..no_verify
    };
    assert!(Registry::new(
        "http://registry.example.com",
        Credentials::Anonymous,
        allowed
    )
    .is_ok());
    let err =
        Registry::new("ftp://x", Credentials::Anonymous, ClientOptions::default()).unwrap_err();
    assert!(matches!(err, ClientError::Options(_)), "{err:?}");
    let missing_ca = ClientOptions {
        ca_cert_path: Some("/nonexistent/ca.pem".into()),
        ..ClientOptions::default()
    };
    let err = Registry::new("https://localhost", Credentials::Anonymous, missing_ca).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
