//! Garbage collection settings and the background schedule of the built-in engine.
//!
//! Options: grace period `registry.local.ops_config.gc_grace_period`, untagged removal
//! `ops_config.gc_delete_untagged`, stale uploads after `limits_config.upload_session_ttl`
//! (absent blocks = schema defaults). Schedule, both may be on at once (runs never overlap):
//! - every `storage_config.gc_interval` seconds when `storage_config.gc_enabled` (defaults:
//!   on, 3600); the first run one interval after start;
//! - on `features.gc_schedule` (standard 5-field cron, server local time) when the `features`
//!   block is present with `gc_enabled`.
//!
//! Each run's summary is logged.

use std::time::Duration;

use ocireg_config::GcView;
use ocireg_store::{GcOptions, GcReport, Store};

use crate::EngineError;

/// When garbage collection runs, and with what options.
#[derive(Debug, Clone)]
pub(crate) struct GcSchedule {
    /// Fixed pause between runs (`storage_config`), if on.
    pub interval: Option<Duration>,
    /// Cron schedule (`features.gc_schedule`), if on: the text and the parsed form.
    pub cron: Option<(String, croner::Cron)>,
    /// Options of each run.
    pub opts: GcOptions,
}

/// GC options from the effective settings (a real run; the caller may set `dry_run`).
pub fn gc_options(gc: &GcView) -> GcOptions {
    GcOptions {
        dry_run: false,
        grace_period: gc.grace_period,
        delete_untagged: gc.delete_untagged,
        upload_ttl: gc.upload_ttl,
        tombstone_wait: gc.tombstone_wait,
    }
}

/// Parses a standard 5-field cron expression (minute hour day-of-month month day-of-week).
pub(crate) fn parse_cron(text: &str) -> Result<croner::Cron, EngineError> {
    let fields = text.split_whitespace().count();
    if fields != 5 {
        return Err(EngineError::Invalid(format!(
            "cron schedule {text:?} must have 5 fields (minute hour day month weekday), not {fields}"
        )));
    }
    text.parse::<croner::Cron>()
        .map_err(|e| EngineError::Invalid(format!("cron schedule {text:?}: {e}")))
}

/// The schedule from the effective settings.
pub(crate) fn schedule(gc: &GcView) -> Result<GcSchedule, EngineError> {
    let cron = match &gc.cron {
        Some(text) => {
            let parsed = parse_cron(text)
                .map_err(|e| EngineError::Invalid(format!("registry.features.gc_schedule: {e}")))?;
            Some((text.clone(), parsed))
        }
        None => None,
    };
    Ok(GcSchedule {
        interval: gc.interval,
        cron,
        opts: gc_options(gc),
    })
}

/// One line summarising a run.
pub fn summary(r: &GcReport) -> String {
    format!(
        "{} blobs ({} bytes), {} links, {} manifests, {} upload sessions removed; {} kept in grace; {} errors; {} ms",
        r.blobs.len(),
        r.bytes_freed,
        r.links.len(),
        r.manifests.len(),
        r.uploads.len(),
        r.kept_young,
        r.errors.len(),
        r.duration_ms
    )
}

async fn run_once(store: &Store, opts: &GcOptions, trigger: &str) {
    match store.gc(opts).await {
        Ok(r) => {
            tracing::info!(trigger, summary = %summary(&r), "scheduled garbage collection");
            for e in r.errors.iter().take(10) {
                tracing::warn!(error = %e, "garbage collection could not remove an object");
            }
        }
        Err(e) => tracing::error!(trigger, error = %e, "scheduled garbage collection failed"),
    }
}

/// Starts the background runs (none when both triggers are off).
pub(crate) fn spawn(store: &Store, schedule: GcSchedule) {
    let GcSchedule {
        interval,
        cron,
        opts,
    } = schedule;
    tracing::info!(
        interval_secs = interval.map(|d| d.as_secs()),
        cron = cron.as_ref().map(|(t, _)| t.as_str()),
        grace_secs = opts.grace_period.as_secs(),
        delete_untagged = opts.delete_untagged,
        "garbage collection schedule"
    );
    if let Some(every) = interval {
        let (store, opts) = (store.clone(), opts.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                run_once(&store, &opts, "interval").await;
            }
        });
    }
    if let Some((text, cron)) = cron {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                let now = chrono::Local::now();
                let next = match cron.find_next_occurrence(&now, false) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!(schedule = %text, error = %e, "no next GC time; cron schedule stopped");
                        return;
                    }
                };
                let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
                run_once(&store, &opts, "cron").await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Local, TimeZone, Timelike};

    #[test]
    fn five_field_cron_schedules_parse_and_advance() {
        let c = parse_cron("0 2 * * *").unwrap();
        let from = Local.with_ymd_and_hms(2026, 3, 10, 13, 0, 0).unwrap();
        let next = c.find_next_occurrence(&from, false).unwrap();
        assert_eq!((next.hour(), next.minute()), (2, 0));
        assert!(next > from && next - from <= chrono::Duration::hours(24));
        let every15 = parse_cron("*/15 * * * *").unwrap();
        let n = every15.find_next_occurrence(&from, false).unwrap();
        assert_eq!(n.minute(), 15);
        for bad in ["", "0 2 * *", "0 0 2 * * *", "61 * * * *", "x y z a b"] {
            assert!(parse_cron(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn options_and_schedule_follow_the_config() {
        let yaml = "registry:\n  deployment: local\n  type: distribution\n  endpoint: localhost\n  port: 5000\n  namespaces: {}\n  local:\n    data_dir: /tmp/x\n    config_path: /tmp/x/c.yml\n    storage_config: {gc_enabled: true, gc_interval: 7}\n    ops_config: {gc_grace_period: 30, gc_delete_untagged: true}\n    limits_config: {upload_session_ttl: 99}\n  features: {gc_enabled: true, gc_schedule: '*/5 * * * *'}\n";
        let doc = ocireg_config::load_str(yaml, ocireg_config::Format::Yaml).unwrap();
        let s = schedule(&GcView::resolve(&doc.registry).unwrap()).unwrap();
        assert_eq!(s.interval, Some(Duration::from_secs(7)));
        assert_eq!(s.cron.as_ref().map(|c| c.0.as_str()), Some("*/5 * * * *"));
        assert_eq!(s.opts.grace_period, Duration::from_secs(30));
        assert!(s.opts.delete_untagged && !s.opts.dry_run);
        assert_eq!(s.opts.upload_ttl, Duration::from_secs(99));
        // Defaults: interval on (3600 s), no features block = no cron, schema defaults.
        let yaml = "registry:\n  deployment: local\n  type: distribution\n  endpoint: localhost\n  port: 5000\n  namespaces: {}\n  local: {data_dir: /tmp/x, config_path: /tmp/x/c.yml}\n";
        let doc = ocireg_config::load_str(yaml, ocireg_config::Format::Yaml).unwrap();
        let s = schedule(&GcView::resolve(&doc.registry).unwrap()).unwrap();
        assert_eq!(s.interval, Some(Duration::from_secs(3600)));
        assert!(s.cron.is_none());
        assert_eq!(s.opts, GcOptions::default());
    }
}
