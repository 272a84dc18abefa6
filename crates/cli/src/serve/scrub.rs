//! Background scrub of the built-in engine: `registry.zot_features.scrub_enabled` /
//! `scrub_interval` and `registry.local.ops_config.scrub_rate_mb`. Without `zot_features`
//! (e.g. `type = "distribution"`) scrub is off. The first run starts one interval after the
//! server started, then one interval after each run ended.

use std::time::Duration;

use anyhow::{bail, Context};
use ocireg_store::{ScrubOptions, Store};

/// When and how fast the background scrub runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScrubSchedule {
    /// Pause between runs.
    pub interval: Duration,
    /// Scrub options (read rate).
    pub opts: ScrubOptions,
}

/// Parses a duration such as `24h`, `30m`, `90s`, `1h30m` or `2d` (units d, h, m, s; at least
/// one; each number a whole count).
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    if text.is_empty() {
        bail!("empty duration");
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => bail!("duration {text:?}: unknown unit {c:?} (use d, h, m, s)"),
        };
        if digits.is_empty() {
            bail!("duration {text:?}: a number must come before {c:?}");
        }
        let n: u64 = digits
            .parse()
            .with_context(|| format!("duration {text:?}: number too large"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .with_context(|| format!("duration {text:?} is too long"))?;
    }
    if !digits.is_empty() {
        bail!("duration {text:?}: the last number has no unit (use d, h, m, s)");
    }
    if total == 0 {
        bail!("duration {text:?} must be positive");
    }
    Ok(Duration::from_secs(total))
}

/// `LocalOpsConfig` with every schema default (through its parent schema, which the config
/// crate's schema table knows).
fn ops_defaults() -> anyhow::Result<ocireg_config::LocalOpsConfig> {
    let value = ocireg_config::validate_schema(
        "LocalOCIConfig",
        serde_json::json!({ "data_dir": "/", "config_path": "/", "ops_config": {} }),
    )?;
    let local: ocireg_config::LocalOCIConfig = serde_json::from_value(value)?;
    local
        .ops_config
        .context("LocalOCIConfig defaults carry no ops_config")
}

/// The read rate of scrubs from `ops_config.scrub_rate_mb` (MiB/s; schema default 64).
pub(crate) fn scrub_options(local: &ocireg_config::LocalOCIConfig) -> anyhow::Result<ScrubOptions> {
    let ops: ocireg_config::LocalOpsConfig = match &local.ops_config {
        Some(o) => o.clone(),
        None => ops_defaults()?,
    };
    let mb = u64::try_from(ops.scrub_rate_mb)
        .ok()
        .filter(|n| *n > 0)
        .context("registry.local.ops_config.scrub_rate_mb must be positive")?;
    Ok(ScrubOptions {
        rate_bytes_per_sec: mb.saturating_mul(1 << 20),
    })
}

/// The background schedule, or `None` when scrub is off.
pub(crate) fn schedule(doc: &ocireg_config::Document) -> anyhow::Result<Option<ScrubSchedule>> {
    let reg = &doc.registry;
    let Some(features) = &reg.zot_features else {
        return Ok(None);
    };
    if !features.scrub_enabled {
        return Ok(None);
    }
    let interval =
        parse_duration(&features.scrub_interval).context("registry.zot_features.scrub_interval")?;
    let local = reg
        .local
        .as_ref()
        .context("registry.local is required for a local deployment")?;
    Ok(Some(ScrubSchedule {
        interval,
        opts: scrub_options(local)?,
    }))
}

/// Starts the background scrub loop (nothing when `schedule` is `None`).
pub(super) fn spawn(store: &Store, schedule: Option<ScrubSchedule>) {
    let Some(s) = schedule else {
        return;
    };
    tracing::info!(
        interval_secs = s.interval.as_secs(),
        rate_bytes_per_sec = s.opts.rate_bytes_per_sec,
        "background scrub scheduled"
    );
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(s.interval).await;
            match store.scrub(&s.opts).await {
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

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn ops_defaults_give_the_schema_rate() {
        assert_eq!(super::ops_defaults().unwrap().scrub_rate_mb, 64);
    }

    #[test]
    fn durations() {
        let secs = |t: &str| parse_duration(t).unwrap().as_secs();
        assert_eq!(secs("24h"), 86_400);
        assert_eq!(secs("30m"), 1_800);
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("2d1s"), 172_801);
        assert_eq!(secs(" 10m "), 600);
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in [
            "",
            "h",
            "10",
            "5x",
            "1h30",
            "0s",
            "-1h",
            "1.5h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
