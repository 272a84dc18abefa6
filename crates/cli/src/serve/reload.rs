//! SIGHUP: re-read the config file and swap the running server's auth (users, ACL, admins,
//! token key) and limits without dropping connections. An invalid new config is logged and the
//! previous settings kept. Either way the TLS certificate files are checked again.

use std::path::PathBuf;

use ocireg_server::ServerOptions;

use super::{ServeArgs, Settings};

/// Listens for SIGHUP for the life of the process (no-op off Unix).
pub(super) fn spawn(s: &Settings) {
    // The options the server runs with; a reload swaps in their reloadable fields only, so
    // process-bound handles (metrics, event sinks, TLS, timeouts) stay as they are.
    let running = s.server.clone();
    let config = s.config.clone();
    // The resolved address and root: they cannot change without a restart, and passing them
    // keeps the reload from failing on fields it does not apply.
    let listen = s.listen;
    let root = s.root.clone();
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(sig) => sig,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP; config reload disabled");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the config");
            let (config, root) = (config.clone(), root.clone());
            let rebuilt = tokio::task::spawn_blocking(move || rebuild(listen, root, config)).await;
            let rebuilt = rebuilt.unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
            apply(&running, rebuilt);
        }
    });
    #[cfg(not(unix))]
    let _ = (running, config, listen, root);
}

fn rebuild(
    listen: std::net::SocketAddr,
    root: PathBuf,
    config: Option<PathBuf>,
) -> anyhow::Result<Settings> {
    let args = ServeArgs {
        listen: Some(listen),
        root: Some(root),
    };
    super::settings(&args, config.as_deref())
}

/// The running options with the reloadable fields of `new`: auth and the request limits.
fn merged(running: &ServerOptions, new: ServerOptions) -> ServerOptions {
    if new.tls.is_some() != running.tls.is_some() {
        tracing::warn!("turning TLS on or off needs a restart; ignored");
    }
    ServerOptions {
        auth: new.auth,
        limits: new.limits,
        max_manifest_bytes: new.max_manifest_bytes,
        ..running.clone()
    }
}

fn apply(running: &ServerOptions, rebuilt: anyhow::Result<Settings>) {
    let reloader = &running.reload;
    match rebuilt {
        Ok(new) => {
            let auth = if new.server.auth.is_some() {
                "on"
            } else {
                "off"
            };
            reloader.reload(merged(running, new.server));
            tracing::info!(auth, reloads = reloader.reloads(), "config reloaded");
        }
        Err(err) => {
            tracing::error!(
                "config reload failed; keeping the previous settings: {}",
                format!("{err:#}").replace('\n', " ")
            );
            reloader.recheck_tls();
        }
    }
}
