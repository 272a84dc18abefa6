//! `ocireg serve`: the built-in engine in the foreground, settings from `registry.local`.

mod auth;
pub(crate) mod gc;
mod limits;
mod metrics;
mod quota;
mod reload;
pub(crate) mod scrub;
mod search;
mod webhooks;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ocireg_config::{Deployment, RegistryType, StorageBackend};
use ocireg_server::ServerOptions;
use ocireg_store::{Store, StoreOptions};

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
    /// The whole validated document (feature modules read their sections from it).
    #[allow(dead_code)]
    doc: ocireg_config::Document,
    listen: SocketAddr,
    root: PathBuf,
    dedupe: bool,
    server: ServerOptions,
    /// The `--config` path, to read again on SIGHUP.
    config: Option<PathBuf>,
}

fn settings(args: &ServeArgs, config: Option<&Path>) -> anyhow::Result<Settings> {
    let doc = match crate::config_cmd::load_document(config) {
        Ok(doc) => doc,
        Err(err) => bail!("invalid config:\n{err}"),
    };
    let reg = &doc.registry;
    if reg.deployment != Deployment::Local {
        bail!(
            "`ocireg serve` runs the built-in registry of a local deployment, but registry.deployment is {:?}",
            reg.deployment.as_str()
        );
    }
    if matches!(reg.r#type, RegistryType::Harbor | RegistryType::Artifactory) {
        bail!(
            "registry.type {:?} is remote-only; a local deployment is \"distribution\" or \"zot\"",
            reg.r#type.as_str()
        );
    }
    let local = reg
        .local
        .as_ref()
        .context("registry.local is required for a local deployment")?;
    let http = match &local.http_config {
        Some(h) => h.clone(),
        None => schema_defaults("LocalHTTPConfig")?,
    };
    let storage = match &local.storage_config {
        Some(s) => s.clone(),
        None => schema_defaults("LocalStorageConfig")?,
    };
    if storage.backend != StorageBackend::Filesystem {
        bail!(
            "registry.local.storage_config.backend {:?} is not supported by the built-in engine yet; use \"filesystem\"",
            storage.backend.as_str()
        );
    }
    let listen = match args.listen {
        Some(addr) => addr,
        None => {
            let port = u16::try_from(http.listen_port)
                .context("registry.local.http_config.listen_port out of range")?;
            let host = http.listen_address.as_str();
            let ip: std::net::IpAddr = if host == "localhost" {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                host.parse().with_context(|| {
                    format!(
                        "registry.local.http_config.listen_address {host:?} is not an IP address"
                    )
                })?
            };
            SocketAddr::new(ip, port)
        }
    };
    let root = match (&args.root, &storage.rootdirectory) {
        (Some(root), _) => root.clone(),
        (None, Some(dir)) => ocireg_config::expand_home(dir),
        (None, None) => ocireg_config::expand_home(&local.data_dir).join("storage"),
    };
    let secs = |v: i64, what: &str| -> anyhow::Result<Duration> {
        u64::try_from(v)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .with_context(|| {
                format!("registry.local.http_config.{what} must be a positive number of seconds")
            })
    };
    Ok(Settings {
        doc: doc.clone(),
        config: config.map(Path::to_path_buf),
        listen,
        root,
        dedupe: storage.dedupe_enabled,
        server: ServerOptions {
            read_timeout: secs(http.read_timeout, "read_timeout")?,
            write_timeout: secs(http.write_timeout, "write_timeout")?,
            idle_timeout: secs(http.idle_timeout, "idle_timeout")?,
            auth: auth::auth(reg, local)?,
            limits: limits::limits(local)?,
            max_manifest_bytes: limits::max_manifest_bytes(local)?,
            tls: tls_options(reg)?,
            events: webhooks::running_sink(),
            gc: gc::gc_options(&doc)?,
            metrics: metrics::handle(&doc),
            search: search::enabled(&doc),
            ..ServerOptions::default()
        },
    })
}

/// `registry.tls_enabled` with `tls_cert_path` / `tls_key_path` (and `ca_cert_path` for client
/// certificates) → the server's TLS options.
fn tls_options(
    reg: &ocireg_config::OCIRegistryConfig,
) -> anyhow::Result<Option<ocireg_server::TlsOptions>> {
    if !reg.tls_enabled {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&reg.tls_cert_path, &reg.tls_key_path) else {
        bail!("registry.tls_enabled needs registry.tls_cert_path and registry.tls_key_path");
    };
    Ok(Some(ocireg_server::TlsOptions {
        cert_path: ocireg_config::expand_home(cert),
        key_path: ocireg_config::expand_home(key),
        client_ca_path: reg.ca_cert_path.as_deref().map(ocireg_config::expand_home),
    }))
}

/// An instance of a schema with every default (the schema's `{}` instance).
fn schema_defaults<T: serde::de::DeserializeOwned>(name: &str) -> anyhow::Result<T> {
    let value = ocireg_config::validate_schema(name, serde_json::json!({}))?;
    Ok(serde_json::from_value(value)?)
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
            dedupe: s.dedupe,
            quota: quota::store_quota(&s.doc.registry)?,
        },
    )
    .await
    .with_context(|| format!("opening storage at {}", s.root.display()))?;
    scrub::spawn(&store, scrub::schedule(&s.doc)?);
    gc::spawn(&store, gc::schedule(&s.doc)?);
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
    tracing::info!(%addr, root = %s.root.display(), dedupe = s.dedupe, "serving");
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
