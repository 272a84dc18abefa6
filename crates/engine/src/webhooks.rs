//! `registry.features.webhook_enabled` + `webhook_endpoints` + `registry.local.ops_config.webhook_*`
//! → the webhook [`Notifier`] (queue in `<local.data_dir>/webhooks`), adapted to the server's
//! [`EventSink`]. The notifier lives as long as the engine; a SIGHUP reload keeps it (endpoint or
//! secret changes apply at the next restart).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ocireg_config::WebhookView;
use ocireg_server::EventSink;
use ocireg_webhook::{Event, Notifier, NotifierOptions, Secret, Url};

use crate::EngineError;

const ENDPOINTS: &str = "registry.features.webhook_endpoints";
const OPS: &str = "registry.local.ops_config";

/// Adapts the notifier to the server's event hook.
#[derive(Debug)]
struct Sink(Arc<Notifier>);

impl EventSink for Sink {
    fn manifest_event(
        &self,
        event: Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.enqueue(&event).await.map_err(|e| e.to_string()) })
    }
}

/// Shuts the notifier down when the engine is dropped (queued events are already durable; the journal
/// writer finishes, delivery stops and resumes at the next start).
pub(crate) struct Webhooks(Option<Arc<Notifier>>);

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
fn options(view: Option<&WebhookView>) -> Result<Option<NotifierOptions>, EngineError> {
    let invalid = |m: String| EngineError::Invalid(m);
    let Some(view) = view else {
        return Ok(None);
    };
    let mut endpoints = Vec::with_capacity(view.endpoints.len());
    for (i, text) in view.endpoints.iter().enumerate() {
        // The value itself is not echoed: it may carry a token.
        let url = Url::parse(text)
            .map_err(|e| invalid(format!("{ENDPOINTS}[{i}] is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(format!(
                "{ENDPOINTS}[{i}] must be an http:// or https:// URL with a host"
            )));
        }
        if endpoints.contains(&url) {
            return Err(invalid(format!(
                "{ENDPOINTS}[{i}] repeats an earlier endpoint"
            )));
        }
        endpoints.push(url);
    }
    std::fs::create_dir_all(&view.dir).map_err(|e| {
        EngineError::io(
            format!(
                "creating the webhook queue directory {}",
                view.dir.display()
            ),
            e,
        )
    })?;
    let mut opts = NotifierOptions::new(view.dir.clone(), endpoints);
    opts.timeout = view.timeout;
    opts.retry_delay = view.retry_delay;
    opts.retry_max_delay = view.retry_max_delay;
    if let Some(p) = &view.secret_path {
        let mut key = std::fs::read(p).map_err(|e| {
            EngineError::io(
                format!(
                    "reading the webhook secret ({OPS}.webhook_secret_path) {}",
                    p.display()
                ),
                e,
            )
        })?;
        while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            key.pop();
        }
        if key.is_empty() {
            return Err(invalid(format!(
                "the webhook secret file {} is empty",
                p.display()
            )));
        }
        opts.secret = Some(Secret::new(key));
    }
    Ok(Some(opts))
}

/// Opens the notifier when webhooks are on: its guard and the sink the server sends events to.
pub(crate) async fn start(
    view: Option<&WebhookView>,
) -> Result<(Webhooks, Option<Arc<dyn EventSink>>), EngineError> {
    let Some(opts) = options(view)? else {
        return Ok((Webhooks(None), None));
    };
    let dir = opts.dir.clone();
    let count = opts.endpoints.len();
    let signed = opts.secret.is_some();
    let notifier = Notifier::open(opts)
        .await
        .map_err(|source| EngineError::Webhook {
            what: format!("opening the webhook queue in {}", dir.display()),
            source,
        })?;
    let notifier = Arc::new(notifier);
    let sink: Arc<dyn EventSink> = Arc::new(Sink(notifier.clone()));
    tracing::info!(endpoints = count, signed, queue = %dir.display(), "webhooks on");
    Ok((Webhooks(Some(notifier)), Some(sink)))
}
