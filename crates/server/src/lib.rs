//! The built-in OCI Distribution v1.1 server: axum app, middleware, one handler file per
//! resource, one error-to-response mapping.
//!
//! Shape: [`serve`] accepts connections (with read/write/idle timeouts and graceful shutdown) and
//! hands every request to [`app`]; the app's outermost layer parses the path once through
//! `ocireg-api` into an [`ocireg_api::Endpoint`] that metrics, limits, auth and dispatch share,
//! and dispatch hands the request to the handler of that resource. Every failure is turned
//! into the spec's error envelope in one place ([`error`]).

mod auth;
mod blobs;
mod conn;
mod error;
mod events;
mod ext;
mod gc;
mod limits;
mod listing;
mod manifests;
mod metrics;
mod reload;
mod routes;
mod scrub;
mod search;
mod timed_io;
mod tls;
mod trace;
mod uploads;
mod usage;
mod zero_copy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ocireg_store::Store;

pub use conn::serve;
pub use events::{lost_events, EventSink};
pub use metrics::{serve_metrics, Metrics};
pub use reload::Reloader;
pub use tls::TlsOptions;

/// Settings of the built-in server; the binary builds them from `registry.local.http_config`.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// A request whose body (or headers) stalls this long is cut off.
    pub read_timeout: Duration,
    /// A response write that stalls this long is cut off.
    pub write_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// How long in-flight requests may run after a shutdown signal before connections are dropped.
    pub shutdown_grace: Duration,
    /// Authentication and authorization; `None` = every request is allowed (no auth).
    pub auth: Option<Arc<ocireg_auth::Auth>>,
    /// TLS; `None` = plain HTTP (and h2c).
    pub tls: Option<TlsOptions>,
    /// Manifest-size, request-head, name, upload-session and rate limits.
    pub limits: ocireg_config::LimitsView,
    /// Handle to swap the settings of the running server (SIGHUP reload); keep a clone.
    pub reload: Reloader,
    /// Prometheus metrics: every request is recorded here; `None` = metrics off.
    pub metrics: Option<Metrics>,
    /// The search extension `GET /v2/_ocireg/search`; off = 404 `UNSUPPORTED`.
    pub search: bool,
    /// Manifest push/delete events (webhooks); `None` = no events.
    pub events: Option<Arc<dyn EventSink>>,
    /// Garbage collection defaults of `POST /v2/_ocireg/gc` (grace period, upload TTL, ...).
    pub gc: ocireg_store::GcOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(30),
            auth: None,
            tls: None,
            limits: ocireg_config::LimitsView::default(),
            reload: Reloader::default(),
            metrics: None,
            search: true,
            events: None,
            gc: ocireg_store::GcOptions::default(),
        }
    }
}

/// The one error type of this crate: what can stop the server itself (requests never do).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket failed.
    #[error("listener on {addr}: {source}")]
    Listener {
        /// The address being served.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS certificate, key or CA files are unusable.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Shared state of the request handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) opts: Arc<ServerOptions>,
}

/// The axum application (all of `/v2/`), for in-process tests and for [`serve`].
pub fn app(store: Store, opts: ServerOptions) -> axum::Router {
    // The per-client session cap learns from the store when sessions open and end.
    store.watch_uploads(opts.reload.sessions().clone());
    let state = AppState {
        store,
        opts: Arc::new(opts),
    };
    routes::router(state)
}
