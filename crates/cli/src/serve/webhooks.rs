//! `registry.features.webhook_enabled` + `webhook_endpoints` + `registry.local.ops_config.webhook_*`
//! → the webhook [`Notifier`] (queue in `<local.data_dir>/webhooks`), adapted to the server's
//! [`EventSink`]. The notifier lives for the whole process; a SIGHUP reload keeps it (endpoint or
//! secret changes apply at the next restart).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};
use ocireg_config::WebhookView;
use ocireg_server::{EventSink, ManifestAction, ManifestEvent};
use ocireg_webhook::{Action, Event, Notifier, NotifierOptions, Secret, Url};

use super::Settings;

const ENDPOINTS: &str = "registry.features.webhook_endpoints";
const OPS: &str = "registry.local.ops_config";

/// The running notifier's sink, so settings rebuilt by a reload keep delivering events.
static RUNNING: OnceLock<Arc<Sink>> = OnceLock::new();

/// The events sink of this process's notifier (`None` before [`start`] or with webhooks off).
pub(super) fn running_sink() -> Option<Arc<dyn EventSink>> {
    RUNNING.get().map(|s| s.clone() as Arc<dyn EventSink>)
}

/// Adapts the notifier to the server's event hook.
#[derive(Debug)]
struct Sink(Arc<Notifier>);

impl EventSink for Sink {
    fn manifest_event(
        &self,
        ev: ManifestEvent,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let action = match ev.action {
                ManifestAction::Push => Action::Push,
                ManifestAction::Delete => Action::Delete,
            };
            let mut event = Event::new(
                action,
                ev.repository.as_str(),
                ev.digest.to_string(),
                ev.media_type,
                ev.size,
            );
            event.tag = ev.tag.map(|t| t.as_str().to_owned());
            event.actor = ev.actor;
            self.0.enqueue(&event).await.map_err(|e| e.to_string())
        })
    }
}

/// Shuts the notifier down when `serve` returns (queued events are already durable; the journal
/// writer finishes, delivery stops and resumes at the next start).
pub(super) struct Webhooks(Option<Arc<Notifier>>);

impl Drop for Webhooks {
    fn drop(&mut self) {
        let Some(n) = self.0.take() else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    if tokio::time::timeout(Duration::from_secs(10), n.shutdown())
                        .await
                        .is_err()
                    {
                        tracing::warn!("webhook notifier did not stop within 10s");
                    }
                });
            });
        }
        tracing::info!(stats = ?n.stats(), "webhook notifier stopped");
    }
}

/// The notifier's options, or `None` when webhooks are off.
fn options(view: Option<&WebhookView>) -> anyhow::Result<Option<NotifierOptions>> {
    let Some(view) = view else {
        return Ok(None);
    };
    let mut endpoints = Vec::with_capacity(view.endpoints.len());
    for (i, text) in view.endpoints.iter().enumerate() {
        // The value itself is not echoed: it may carry a token.
        let url = Url::parse(text)
            .map_err(|e| anyhow::anyhow!("{ENDPOINTS}[{i}] is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            bail!("{ENDPOINTS}[{i}] must be an http:// or https:// URL with a host");
        }
        if endpoints.contains(&url) {
            bail!("{ENDPOINTS}[{i}] repeats an earlier endpoint");
        }
        endpoints.push(url);
    }
    std::fs::create_dir_all(&view.dir).with_context(|| {
        format!(
            "creating the webhook queue directory {}",
            view.dir.display()
        )
    })?;
    let mut opts = NotifierOptions::new(view.dir.clone(), endpoints);
    opts.timeout = view.timeout;
    opts.retry_delay = view.retry_delay;
    opts.retry_max_delay = view.retry_max_delay;
    if let Some(p) = &view.secret_path {
        let mut key = std::fs::read(p).with_context(|| {
            format!(
                "reading the webhook secret ({OPS}.webhook_secret_path) {}",
                p.display()
            )
        })?;
        while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            key.pop();
        }
        if key.is_empty() {
            bail!("the webhook secret file {} is empty", p.display());
        }
        opts.secret = Some(Secret::new(key));
    }
    Ok(Some(opts))
}

/// Opens the notifier when webhooks are on and hooks it into the server options.
pub(super) async fn start(mut s: Settings) -> anyhow::Result<(Settings, Webhooks)> {
    let Some(opts) = options(s.cfg.webhooks.as_ref())? else {
        return Ok((s, Webhooks(None)));
    };
    let dir = opts.dir.clone();
    let count = opts.endpoints.len();
    let signed = opts.secret.is_some();
    let notifier = Arc::new(
        Notifier::open(opts)
            .await
            .with_context(|| format!("opening the webhook queue in {}", dir.display()))?,
    );
    let sink = Arc::new(Sink(notifier.clone()));
    if RUNNING.set(sink.clone()).is_err() {
        bail!("the webhook notifier is already running");
    }
    s.server.events = Some(sink);
    tracing::info!(endpoints = count, signed, queue = %dir.display(), "webhooks on");
    Ok((s, Webhooks(Some(notifier))))
}
