//! SIGHUP: re-read the config and swap the running server's auth (users, ACL, admins, token key)
//! and limits without dropping connections. An invalid new config is logged and the previous
//! settings kept. Either way the TLS certificate files are checked again. The listen address,
//! storage root and process-bound handles (metrics, webhooks, TLS, timeouts) need a restart.

use std::sync::Arc;

use ocireg_config::ServeSettings;
use ocireg_server::ServerOptions;

use crate::auth::GeneratedKey;
use crate::EngineError;

/// Reads the configuration again (on SIGHUP; it runs on a blocking thread).
pub type ReloadFn = Arc<dyn Fn() -> Result<ServeSettings, EngineError> + Send + Sync>;

/// Listens for SIGHUP for the life of the runtime (no-op off Unix). The signal handler is
/// installed before this returns, so a SIGHUP right after start is a reload, never a kill.
pub(crate) fn spawn(
    running: ServerOptions,
    reload: ReloadFn,
    generated: GeneratedKey,
) -> Result<(), EngineError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup =
            signal(SignalKind::hangup()).map_err(|e| EngineError::io("listening for SIGHUP", e))?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received: reloading the config");
                let (reload, generated) = (reload.clone(), generated.clone());
                let rebuilt =
                    tokio::task::spawn_blocking(move || rebuild(&reload, &generated)).await;
                let rebuilt = rebuilt.unwrap_or_else(|e| Err(EngineError::Invalid(e.to_string())));
                apply(&running, rebuilt);
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (running, reload, generated);
    Ok(())
}

/// The reloadable part of the new settings: whether TLS is on, auth, the request limits.
struct Reloaded {
    tls: bool,
    auth: Option<Arc<ocireg_auth::Auth>>,
    limits: ocireg_config::LimitsView,
}

fn rebuild(reload: &ReloadFn, generated: &GeneratedKey) -> Result<Reloaded, EngineError> {
    let s = reload()?;
    for note in &s.notes {
        tracing::warn!("{note}");
    }
    Ok(Reloaded {
        tls: s.tls.is_some(),
        auth: crate::auth::auth(s.auth.as_ref(), generated)?,
        limits: s.limits,
    })
}

/// The running options with the reloadable fields of `new`.
fn merged(running: &ServerOptions, new: Reloaded) -> ServerOptions {
    if new.tls != running.tls.is_some() {
        tracing::warn!("turning TLS on or off needs a restart; ignored");
    }
    ServerOptions {
        auth: new.auth,
        limits: new.limits,
        ..running.clone()
    }
}

fn apply(running: &ServerOptions, rebuilt: Result<Reloaded, EngineError>) {
    let reloader = &running.reload;
    match rebuilt {
        Ok(new) => {
            let auth = if new.auth.is_some() { "on" } else { "off" };
            reloader.reload(merged(running, new));
            tracing::info!(auth, reloads = reloader.reloads(), "config reloaded");
        }
        Err(err) => {
            tracing::error!(
                "config reload failed; keeping the previous settings: {}",
                err.chain().replace('\n', " ")
            );
            reloader.recheck_tls();
        }
    }
}
