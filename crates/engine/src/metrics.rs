//! Prometheus metrics endpoint: on when `registry.zot_features` is present with `metrics_enabled`
//! (no `zot_features`, e.g. type "distribution": off). It listens on
//! `registry.local.ops_config.metrics_listen_address` : `zot_features.metrics_port` (port 0 = any
//! free port) and stops with the server.

use std::future::Future;
use std::net::SocketAddr;

use ocireg_server::Metrics;
use ocireg_store::Store;
use tokio::net::TcpListener;

use crate::EngineError;

/// The bound metrics endpoint, not yet serving.
pub(crate) struct Endpoint {
    listener: TcpListener,
    metrics: Metrics,
    /// The bound address (the port resolved when 0 was asked for).
    pub(crate) addr: SocketAddr,
}

/// Binds the metrics endpoint when metrics are on (`addr` and the registry both set).
pub(crate) async fn bind(
    addr: Option<SocketAddr>,
    metrics: Option<&Metrics>,
) -> Result<Option<Endpoint>, EngineError> {
    let (Some(addr), Some(metrics)) = (addr, metrics) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| EngineError::io(format!("metrics endpoint: listening on {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| EngineError::io("reading the metrics endpoint's address", e))?;
    Ok(Some(Endpoint {
        listener,
        metrics: metrics.clone(),
        addr: bound,
    }))
}

impl Endpoint {
    /// Serves scrapes in the background until `stopped` resolves.
    pub(crate) fn spawn(self, store: &Store, stopped: impl Future<Output = ()> + Send + 'static) {
        tracing::info!(addr = %self.addr, "metrics endpoint");
        let store = store.clone();
        tokio::spawn(async move {
            let served =
                ocireg_server::serve_metrics(self.listener, self.metrics, store, stopped).await;
            if let Err(err) = served {
                tracing::error!(%err, "metrics endpoint failed");
            }
        });
    }
}
