//! Background scrub of the built-in engine: `registry.zot_features.scrub_enabled` /
//! `scrub_interval` and `registry.local.ops_config.scrub_rate_mb`. Without `zot_features`
//! (e.g. `type = "distribution"`) scrub is off. The first run starts one interval after the
//! server started, then one interval after each run ended.

use ocireg_config::ScrubView;
use ocireg_store::{ScrubOptions, Store};

/// Scrub options (read rate) from the effective settings.
pub fn scrub_options(view: &ScrubView) -> ScrubOptions {
    ScrubOptions {
        rate_bytes_per_sec: view.rate_bytes_per_sec,
    }
}

/// Starts the background scrub loop (nothing when scrub is off).
pub(crate) fn spawn(store: &Store, view: &ScrubView) {
    let Some(interval) = view.interval else {
        return;
    };
    let opts = scrub_options(view);
    tracing::info!(
        interval_secs = interval.as_secs(),
        rate_bytes_per_sec = opts.rate_bytes_per_sec,
        "background scrub scheduled"
    );
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            match store.scrub(&opts).await {
                Ok(report) if !report.findings.is_empty() => tracing::warn!(
                    findings = report.findings.len(),
                    "background scrub quarantined corrupt objects"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "background scrub failed"),
            }
        }
    });
}
