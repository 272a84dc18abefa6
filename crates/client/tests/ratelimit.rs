//! Rate limits measured against a real registry: the global token bucket (rate and burst), and
//! the separate pull bucket that leaves other requests alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use ocireg_client::{ClientOptions, Credentials, RateView, Registry};

/// An anonymous client of `reg` limited to `requests_per_second` with `burst`, and pulls to
/// `pull_limit` per second.
fn limited_client(
    reg: &TestRegistry,
    requests_per_second: u32,
    burst: u32,
    pull_limit: Option<u32>,
) -> Registry {
    let rate = RateView {
        requests_per_second,
        burst,
        pull_limit,
        push_limit: None,
    };
    let opts = ClientOptions {
        rate: Some(rate),
        ..fast_options()
    };
    reg.client(Credentials::Anonymous, opts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_bucket_rate_and_burst() {
    let reg = start_ocireg();
    let client = limited_client(&reg, 10, 4, None);
    let start = Instant::now();
    for _ in 0..4 {
        client.ping().await.unwrap();
    }
    let burst = start.elapsed().as_secs_f64();
    assert!(burst < 0.3, "the burst goes at once: {burst}");
    for _ in 0..20 {
        client.ping().await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    // 20 requests beyond the burst at 10/s: 2 seconds.
    assert!((1.95..2.5).contains(&secs), "24 requests took {secs}s");
    let rate = 20.0 / (secs - burst);
    assert!((8.0..=10.3).contains(&rate), "measured {rate} req/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_limit_applies_to_pulls_only() {
    let reg = start_ocireg();
    let client = limited_client(&reg, 100, 1, Some(4));
    let r = repo("limited");
    let d = sha256(b"x");
    let start = Instant::now();
    for _ in 0..9 {
        assert!(!client.blob_exists(&r, &d).await.unwrap());
    }
    let pulls = start.elapsed().as_secs_f64();
    assert!(
        (1.95..2.5).contains(&pulls),
        "9 pulls at 4/s (burst 1) took {pulls}s"
    );

    let start = Instant::now();
    for _ in 0..9 {
        client.ping().await.unwrap();
    }
    let others = start.elapsed().as_secs_f64();
    assert!(others < 0.5, "pings only see the 100/s bucket: {others}s");
}
