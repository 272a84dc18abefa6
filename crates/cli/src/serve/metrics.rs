//! Prometheus metrics of `ocireg serve`: on when `registry.zot_features` is present with
//! `metrics_enabled` (no `zot_features`, e.g. type "distribution": off). The endpoint listens on
//! `registry.local.ops_config.metrics_listen_address` : `zot_features.metrics_port` (port 0 = any
//! free port), prints `metrics on http://ADDR/metrics` after the listening line, and stops with
//! the server.

use std::io::Write;

use anyhow::Context;
use ocireg_store::Store;

use super::Settings;

/// Binds and serves the metrics endpoint when metrics are on; prints its address.
pub(super) async fn start(s: &Settings, store: &Store) -> anyhow::Result<()> {
    let (Some(metrics), Some(addr)) = (s.server.metrics.clone(), s.cfg.metrics) else {
        return Ok(());
    };
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
