//! The built-in OCI registry engine, assembled from the effective settings of a local
//! deployment ([`ocireg_config::ServeSettings`]): the store (a directory, or an S3 bucket or
//! Azure container once the object driver is built in) with its quota, the
//! server's auth, limits and TLS, the durable webhook notifier, the metrics endpoint, the
//! background GC and scrub schedules, and SIGHUP reload. The binary loads the config and prints;
//! everything between the settings and a serving registry is here.
//!
//! ```no_run
//! # async fn demo(settings: ocireg_config::ServeSettings) -> Result<(), ocireg_engine::EngineError> {
//! use ocireg_engine::{Engine, EngineOptions};
//! let engine = Engine::build(EngineOptions::new(settings)).await?;
//! let bound = engine.bind().await?;
//! println!("listening on {}", bound.url());
//! bound.run(ocireg_engine::shutdown_signal()).await
//! # }
//! ```

mod auth;
mod error;
mod gc;
mod metrics;
mod options;
mod reload;
mod scrub;
mod storage;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ocireg_config::ServeSettings;
use ocireg_server::ServerOptions;
use ocireg_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::EngineError;
pub use gc::{gc_options, summary as gc_summary};
pub use reload::ReloadFn;
pub use scrub::scrub_options;
pub use storage::{target as storage_target, StorageTarget};

/// What the engine is built from: the effective settings and the command line's overrides.
pub struct EngineOptions {
    /// The effective settings of the config.
    pub settings: ServeSettings,
    /// Listen here instead of the configured address (`serve --listen`; port 0 = any free port).
    pub listen: Option<SocketAddr>,
    /// Use this storage root instead of the configured one (`serve --root`; filesystem
    /// backend only).
    pub root: Option<PathBuf>,
    /// How to read the settings again on SIGHUP; `None`: SIGHUP is not handled.
    pub reload: Option<ReloadFn>,
}

impl EngineOptions {
    /// The settings as configured: no overrides, no reload.
    pub fn new(settings: ServeSettings) -> Self {
        Self {
            settings,
            listen: None,
            root: None,
            reload: None,
        }
    }
}

/// The address the engine listens on: the override, else the configured listen address.
pub fn listen_address(
    settings: &ServeSettings,
    flag: Option<SocketAddr>,
) -> Result<SocketAddr, EngineError> {
    match flag {
        Some(addr) => Ok(addr),
        None => Ok(settings.local.http.listen.socket_addr()?),
    }
}

/// A built engine: storage open, webhook queue open, server options ready, nothing listening.
pub struct Engine {
    settings: ServeSettings,
    listen: SocketAddr,
    storage: StorageTarget,
    store: Store,
    server: ServerOptions,
    gc: gc::GcSchedule,
    /// Shuts the notifier down when the engine is dropped.
    _webhooks: webhooks::Webhooks,
}

impl Engine {
    /// Builds the server options (reading the auth files), opens the storage and the webhook
    /// queue, and installs the SIGHUP handler when `opts.reload` is set.
    pub async fn build(opts: EngineOptions) -> Result<Self, EngineError> {
        let EngineOptions {
            settings,
            listen,
            root,
            reload,
        } = opts;
        let listen = listen_address(&settings, listen)?;
        let storage = storage::target(&settings, root.as_deref())?;
        for note in &settings.notes {
            tracing::warn!("{note}");
        }
        let generated = auth::GeneratedKey::default();
        let mut server = server_options(&settings, &generated)?;
        let gc = gc::schedule(&settings.gc)?;
        // A descriptor per connection and per upload session kept open (up to 256): the common
        // soft limit of 1,024 would be the first thing to give under load.
        match ocireg_sys::raise_open_files_limit() {
            Ok(limit) => tracing::debug!(limit, "open files limit"),
            Err(e) => tracing::debug!(error = %e, "open files limit not raised"),
        }
        let store = storage::open(&settings, &storage).await?;
        let (webhooks, events) = webhooks::start(settings.webhooks.as_ref()).await?;
        server.events = events;
        if let Some(reload) = reload {
            reload::spawn(server.clone(), reload, generated)?;
        }
        Ok(Self {
            settings,
            listen,
            storage,
            store,
            server,
            gc,
            _webhooks: webhooks,
        })
    }

    /// The storage root directory, when the backend is the filesystem.
    pub fn storage_root(&self) -> Option<&Path> {
        self.storage.root()
    }

    /// Binds the registry's listener (and the metrics endpoint's, when metrics are on).
    pub async fn bind(self) -> Result<Bound, EngineError> {
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|e| EngineError::io(format!("listening on {}", self.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| EngineError::io("reading the bound address", e))?;
        let metrics = metrics::bind(self.settings.metrics, self.server.metrics.as_ref()).await?;
        Ok(Bound {
            engine: self,
            listener,
            addr,
            metrics,
        })
    }
}

/// The server options of the settings (auth files are read here).
fn server_options(
    s: &ServeSettings,
    generated: &auth::GeneratedKey,
) -> Result<ServerOptions, EngineError> {
    let http = &s.local.http;
    Ok(ServerOptions {
        read_timeout: http.read_timeout,
        write_timeout: http.write_timeout,
        idle_timeout: http.idle_timeout,
        auth: auth::auth(s.auth.as_ref(), generated)?,
        limits: s.limits.clone(),
        tls: s.tls.as_ref().map(options::tls),
        gc: gc::gc_options(&s.gc),
        metrics: s.metrics.map(|_| ocireg_server::Metrics::new()),
        search: s.search,
        ..ServerOptions::default()
    })
}

/// An engine whose listeners are bound: its addresses are known, nothing is served yet.
pub struct Bound {
    engine: Engine,
    listener: TcpListener,
    addr: SocketAddr,
    metrics: Option<metrics::Endpoint>,
}

impl Bound {
    /// The registry's URL: `http(s)://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.engine.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The metrics endpoint's URL, `http://ADDR/metrics`, when metrics are on.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics
            .as_ref()
            .map(|m| format!("http://{}/metrics", m.addr))
    }

    /// Starts the GC and scrub schedules and the metrics endpoint, serves until `shutdown`
    /// resolves, then lets the storage's last writes land.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), EngineError> {
        let Bound {
            engine,
            listener,
            addr,
            metrics,
        } = self;
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        scrub::spawn(&engine.store, &engine.settings.scrub);
        gc::spawn(&engine.store, engine.gc.clone());
        if let Some(m) = metrics {
            m.spawn(&engine.store, wait(stopped.clone()));
        }
        let dedupe = engine.settings.local.storage.dedupe;
        let storage = engine.storage.location();
        tracing::info!(%addr, %storage, dedupe, "serving");
        let app = ocireg_server::app(engine.store.clone(), engine.server.clone());
        ocireg_server::serve(listener, app, &engine.server, wait(stopped)).await?;
        // Requests are done: let upload sessions' last writes land and checkpoint the journal
        // before the process ends (a failure loses nothing: the next start replays the journal).
        if let Err(e) = engine.store.shutdown().await {
            tracing::warn!(error = %e, "flushing storage at shutdown failed");
        }
        Ok(())
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn wait(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
