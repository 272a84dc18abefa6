//! Forward proxies: `https_proxy` tunnels TLS through `CONNECT`, `http_proxy` carries plain
//! requests, `no_proxy` bypasses both, and each applies only to its own scheme.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fault::ForwardProxy;
use common::*;
use ocireg_client::{ClientOptions, Credentials};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_tunnels_with_connect_and_no_proxy_bypasses_it() {
    let (_pki, tls, reg) = start_distribution_tls(DistOptions::default(), true);
    let tls_opts = ClientOptions {
        ca_cert_path: Some(tls.ca.clone()),
        ..fast_options()
    };

    let proxy = ForwardProxy::start().await;
    let via = reg.client(
        Credentials::Anonymous,
        ClientOptions {
            https_proxy: Some(proxy.url.clone()),
            ..tls_opts.clone()
        },
    );
    via.ping().await.unwrap();
    let data = pseudo_random(50_000, 1);
    let d = sha256(&data);
    via.push_blob(&repo("p"), &d, 50_000, data.into())
        .await
        .unwrap();
    let targets = proxy.targets();
    assert!(!targets.is_empty());
    let want = format!("CONNECT {}", reg.addr);
    assert!(targets.iter().all(|t| t == &want), "{targets:?}");

    let bypass_proxy = ForwardProxy::start().await;
    let bypass = reg.client(
        Credentials::Anonymous,
        ClientOptions {
            https_proxy: Some(bypass_proxy.url.clone()),
            no_proxy: vec!["example.com".into(), "127.0.0.1".into()],
            ..tls_opts.clone()
        },
    );
    bypass.ping().await.unwrap();
    assert!(bypass.blob_exists(&repo("p"), &d).await.unwrap());
    assert!(
        bypass_proxy.targets().is_empty(),
        "{:?}",
        bypass_proxy.targets()
    );

    // An http_proxy alone does not apply to https:// registries.
    let http_only = ForwardProxy::start().await;
    let direct = reg.client(
        Credentials::Anonymous,
        ClientOptions {
            http_proxy: Some(http_only.url.clone()),
            ..tls_opts
        },
    );
    direct.ping().await.unwrap();
    assert!(http_only.targets().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_carries_plain_requests() {
    let reg = start_ocireg();
    let proxy = ForwardProxy::start().await;
    let client = reg.client(
        Credentials::Anonymous,
        ClientOptions {
            http_proxy: Some(proxy.url.clone()),
            ..fast_options()
        },
    );
    client.ping().await.unwrap();
    let targets = proxy.targets();
    assert_eq!(
        targets.first().map(String::as_str),
        Some(format!("GET {}/v2/", reg.url).as_str())
    );

    let https_only = ForwardProxy::start().await;
    let client = reg.client(
        Credentials::Anonymous,
        ClientOptions {
            https_proxy: Some(https_only.url.clone()),
            ..fast_options()
        },
    );
    client.ping().await.unwrap();
    assert!(https_only.targets().is_empty());
}
