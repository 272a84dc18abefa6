//! `ocireg serve`: the built-in engine in the foreground, settings from `registry.local`.

mod auth;
pub(crate) mod gc;
mod limits;
mod metrics;
mod quota;
mod reload;
pub(crate) mod scrub;
mod webhooks;

use anyhow::{bail, Context};
use ocireg_config::ServeSettings;
use ocireg_server::ServerOptions;
use ocireg_store::{Store, StoreOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Flags of `ocireg serve`; each overrides the config file.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:5000 (port 0 = any free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Storage root directory (default: storage_config.rootdirectory, else <data_dir>/storage).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

/// What `serve` needs, resolved from the config document and the flags.
struct Settings {
    /// The effective settings of the config.
    cfg: ServeSettings,
    listen: SocketAddr,
    root: PathBuf,
    server: ServerOptions,
    /// The `--config` path, to read again on SIGHUP.
    config: Option<PathBuf>,
}

/// The address `serve` listens on: `--listen`, else the config's resolved listen address.
pub(crate) fn listen_address(
    flag: Option<SocketAddr>,
    cfg: &ServeSettings,
) -> anyhow::Result<SocketAddr> {
    match flag {
        Some(addr) => Ok(addr),
        None => Ok(cfg.local.http.listen.socket_addr()?),
    }
}

fn settings(args: &ServeArgs, config: Option<&Path>) -> anyhow::Result<Settings> {
    let doc = match crate::config_cmd::load_document(config) {
        Ok(doc) => doc,
        Err(err) => bail!("invalid config:\n{err}"),
    };
    let cfg = ServeSettings::resolve(&doc)?;
    for note in &cfg.notes {
        tracing::warn!("{note}");
    }
    let listen = listen_address(args.listen, &cfg)?;
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| cfg.local.storage.root.clone());
    let http = &cfg.local.http;
    let server = ServerOptions {
        read_timeout: http.read_timeout,
        write_timeout: http.write_timeout,
        idle_timeout: http.idle_timeout,
        auth: auth::auth(cfg.auth.as_ref())?,
        limits: limits::limits(&cfg.limits),
        max_manifest_bytes: cfg.limits.max_manifest_bytes,
        tls: cfg.tls.as_ref().map(|t| ocireg_server::TlsOptions {
            cert_path: t.cert.clone(),
            key_path: t.key.clone(),
            client_ca_path: t.client_ca.clone(),
        }),
        events: webhooks::running_sink(),
        gc: gc::gc_options(&cfg.gc),
        metrics: cfg.metrics.map(|_| ocireg_server::Metrics::new()),
        search: cfg.search,
        ..ServerOptions::default()
    };
    Ok(Settings {
        cfg,
        config: config.map(Path::to_path_buf),
        listen,
        root,
        server,
    })
}

pub fn run(args: ServeArgs, config: Option<&Path>) -> anyhow::Result<i32> {
    let s = settings(&args, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(s))?;
    Ok(0)
}

async fn serve(s: Settings) -> anyhow::Result<()> {
    // A descriptor per connection and per upload session kept open (up to 256): the common soft
    // limit of 1,024 would be the first thing to give under load.
    match ocireg_sys::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::debug!(error = %e, "open files limit not raised"),
    }
    std::fs::create_dir_all(&s.root)
        .with_context(|| format!("creating storage root {}", s.root.display()))?;
    let store = Store::open_filesystem(
        &s.root,
        StoreOptions {
            dedupe: s.cfg.local.storage.dedupe,
            quota: quota::store_quota(s.cfg.quota.as_ref()),
        },
    )
    .await
    .with_context(|| format!("opening storage at {}", s.root.display()))?;
    scrub::spawn(&store, &s.cfg.scrub);
    gc::spawn(&store, gc::schedule(&s.cfg.gc)?);
    let (s, _webhooks) = webhooks::start(s).await?;
    reload::spawn(&s);
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .with_context(|| format!("listening on {}", s.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut out = std::io::stdout().lock();
        let scheme = if s.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        writeln!(out, "listening on {scheme}://{addr}").context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    }
    metrics::start(&s, &store).await?;
    tracing::info!(%addr, root = %s.root.display(), dedupe = s.cfg.local.storage.dedupe, "serving");
    let app = ocireg_server::app(store.clone(), s.server.clone());
    ocireg_server::serve(listener, app, &s.server, shutdown_signal()).await?;
    // Requests are done: let upload sessions' last writes land and checkpoint the journal
    // before the process ends (a failure loses nothing: the next start replays the journal).
    if let Err(e) = store.shutdown().await {
        tracing::warn!(error = %e, "flushing storage at shutdown failed");
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
