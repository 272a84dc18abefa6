//! Prometheus metrics of `ocireg serve`: on when `registry.zot_features` is present with
//! `metrics_enabled` (no `zot_features`, e.g. type "distribution": off). The endpoint listens on
//! `registry.local.ops_config.metrics_listen_address` : `zot_features.metrics_port` (port 0 = any
//! free port), prints `metrics on http://ADDR/metrics` after the listening line, and stops with
//! the server.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use ocireg_config::{Document, LocalOpsConfig};
use ocireg_server::Metrics;
use ocireg_store::Store;

use super::Settings;

/// True when the config turns metrics on.
fn enabled(doc: &Document) -> bool {
    doc.registry
        .zot_features
        .as_ref()
        .is_some_and(|z| z.metrics_enabled)
}

/// A fresh registry when metrics are on (the server records every request into it).
pub(super) fn handle(doc: &Document) -> Option<Metrics> {
    enabled(doc).then(Metrics::new)
}

/// `registry.local.ops_config`, or its schema defaults when the block is absent (extension
/// schemas are reachable through their parent, `LocalOCIConfig`).
fn ops_config(doc: &Document) -> anyhow::Result<LocalOpsConfig> {
    let local = doc
        .registry
        .local
        .as_ref()
        .context("registry.local is required for a local deployment")?;
    if let Some(ops) = &local.ops_config {
        return Ok(ops.clone());
    }
    let mut value = serde_json::to_value(local).context("encoding registry.local")?;
    value["ops_config"] = serde_json::json!({});
    let value = ocireg_config::validate_schema("LocalOCIConfig", value)?;
    let filled: ocireg_config::LocalOCIConfig =
        serde_json::from_value(value).context("decoding registry.local")?;
    filled
        .ops_config
        .context("registry.local.ops_config: no schema defaults")
}

/// Where the metrics endpoint listens.
fn address(doc: &Document) -> anyhow::Result<SocketAddr> {
    let port = doc
        .registry
        .zot_features
        .as_ref()
        .map_or(Ok(9090), |z| u16::try_from(z.metrics_port))
        .context("registry.zot_features.metrics_port out of range")?;
    let ops = ops_config(doc)?;
    let host = ops.metrics_listen_address.as_str();
    let ip: IpAddr = if host == "localhost" {
        Ipv4Addr::LOCALHOST.into()
    } else {
        host.parse().with_context(|| {
            format!(
                "registry.local.ops_config.metrics_listen_address {host:?} is not an IP address"
            )
        })?
    };
    Ok(SocketAddr::new(ip, port))
}

/// Binds and serves the metrics endpoint when metrics are on; prints its address.
pub(super) async fn start(s: &Settings, store: &Store) -> anyhow::Result<()> {
    let Some(metrics) = s.server.metrics.clone() else {
        return Ok(());
    };
    let addr = address(&s.doc)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics endpoint: listening on {addr}"))?;
    let bound = listener
        .local_addr()
        .context("reading the metrics endpoint's address")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "metrics on http://{bound}/metrics").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    }
    tracing::info!(addr = %bound, "metrics endpoint");
    let store = store.clone();
    tokio::spawn(async move {
        let stopped = super::shutdown_signal();
        if let Err(err) = ocireg_server::serve_metrics(listener, metrics, store, stopped).await {
            tracing::error!(%err, "metrics endpoint failed");
        }
    });
    Ok(())
}
