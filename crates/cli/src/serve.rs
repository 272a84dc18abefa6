//! `ocireg serve`: the built-in engine in the foreground, settings from `registry.local`. This
//! file parses the flags, loads the config, hands the effective settings to `ocireg-engine` and
//! prints where it listens.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ocireg_config::ServeSettings;
use ocireg_engine::{Engine, EngineError, EngineOptions};

/// Flags of `ocireg serve`; each overrides the config file.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:5000 (port 0 = any free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Storage root directory (default: storage_config.rootdirectory, else <data_dir>/storage;
    /// filesystem backend only).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

/// The effective settings of the config at `config` (the lookup order when `None`).
fn load_settings(config: Option<&Path>) -> anyhow::Result<ServeSettings> {
    let doc = crate::config_cmd::load_valid_document(config)?;
    Ok(ServeSettings::resolve(&doc)?)
}

/// Re-reads the config for a SIGHUP reload.
fn reloader(config: Option<PathBuf>) -> ocireg_engine::ReloadFn {
    Arc::new(move || {
        let doc = crate::config_cmd::load_document(config.as_deref())?;
        Ok(ServeSettings::resolve(&doc)?)
    })
}

pub fn run(args: ServeArgs, config: Option<&Path>) -> anyhow::Result<i32> {
    let settings = load_settings(config)?;
    let opts = EngineOptions {
        listen: args.listen,
        root: args.root,
        reload: Some(reloader(config.map(Path::to_path_buf))),
        settings,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(opts))?;
    Ok(0)
}

async fn serve(opts: EngineOptions) -> anyhow::Result<()> {
    let bound = Engine::build(opts).await.map_err(error)?;
    // Record the engine in a storage root directory, so `ocireg up` does not start another
    // one over it. A bucket has no such marker: only `ocireg serve` processes serve one.
    if let Some(root) = bound.storage_root() {
        claim_root(root);
    }
    let bound = bound.bind().await.map_err(error)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", bound.url()).context("writing to stdout")?;
        if let Some(url) = bound.metrics_url() {
            writeln!(out, "metrics on {url}").context("writing to stdout")?;
        }
        out.flush().context("writing to stdout")?;
    }
    bound
        .run(ocireg_engine::shutdown_signal())
        .await
        .map_err(error)
}

/// Records the built-in engine as the writer of `root`, warning when another engine wrote it.
fn claim_root(root: &Path) {
    let version = format!("ocireg {}", env!("CARGO_PKG_VERSION"));
    match ocireg_deploy::claim_for_builtin(root, &version) {
        Ok(None) => {}
        Ok(Some(other)) => tracing::warn!(
            root = %root.display(),
            "this storage root was written by {}; serving it with the built-in engine",
            other.describe()
        ),
        Err(e) => tracing::warn!(error = %e, "cannot record the engine in the storage root"),
    }
}

/// The engine's error with its causes, for `error: ...`.
fn error(e: EngineError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.chain())
}
