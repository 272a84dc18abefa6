//! Rendering a registry config into zot's or Distribution's native config.
//!
//! Settings with a native equivalent are mapped; settings without one are named in a warning,
//! once each. A setting left at the seed's default value is not warned about (so the solo
//! defaults render silently); only what the user asked for and will not get is reported.

mod distribution;
mod zot;

use std::time::Duration;

use ocireg_config::{
    Deployment, OCIRegistryConfig, OCIRegistryFeatures, ScannerType, SigningMethod, ZotFeatures,
};
use serde_json::Value;

use crate::error::DeployError;
use crate::settings::{resolve, LocalSettings, NativeKind, RenderOptions};

/// A rendered native config.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rendered {
    /// Which registry reads it.
    pub kind: NativeKind,
    /// The file's text (YAML for Distribution, JSON for zot).
    pub text: String,
    /// Seed settings without a native equivalent (and other notes), once each.
    pub warnings: Vec<String>,
}

/// Renders `reg` as `kind`'s native config. Works for any deployment (a remote or disabled
/// one renders with a warning, and with the solo defaults when `local` is missing).
pub fn render(
    reg: &OCIRegistryConfig,
    kind: NativeKind,
    opts: &RenderOptions,
) -> Result<Rendered, DeployError> {
    let mut warnings = Warnings::default();
    if reg.deployment != Deployment::Local {
        warnings.push(format!(
            "registry.deployment: {:?}; rendered for reference, `ocireg up` only starts a local deployment",
            reg.deployment.as_str()
        ));
    }
    if NativeKind::from_type(reg.r#type) != Some(kind) {
        warnings.push(format!(
            "registry.type: {:?}, rendered as {kind}",
            reg.r#type.as_str()
        ));
    }
    let settings = resolve(reg, kind, opts, &mut warnings.0)?;
    render_settings(reg, &settings, warnings)
}

/// Renders with already-resolved settings; `warnings` holds what resolving found.
pub(crate) fn render_settings(
    reg: &OCIRegistryConfig,
    s: &LocalSettings,
    mut warnings: Warnings,
) -> Result<Rendered, DeployError> {
    if reg.harbor_config.is_some() {
        warnings.push(format!(
            "registry.harbor_config: Harbor project settings have no {} equivalent; ignored",
            s.kind
        ));
    }
    let source = Source {
        reg,
        settings: s,
        features: reg.features_or_default()?,
        zot: reg.zot_features_or_default()?,
    };
    let text = match s.kind {
        NativeKind::Distribution => {
            let value = distribution::render(&source, &mut warnings);
            let yaml = serde_saphyr::to_string(&value).map_err(|e| DeployError::Render {
                kind: "Distribution",
                message: e.to_string(),
            })?;
            format!("# Distribution (registry 2.8) config rendered by ocireg; edits are overwritten by `ocireg up`.\n{yaml}")
        }
        NativeKind::Zot => {
            let value = zot::render(&source, &mut warnings);
            let mut json =
                serde_json::to_string_pretty(&value).map_err(|e| DeployError::Render {
                    kind: "zot",
                    message: e.to_string(),
                })?;
            json.push('\n');
            json
        }
    };
    Ok(Rendered {
        kind: s.kind,
        text,
        warnings: warnings.0,
    })
}

/// What a renderer reads: the registry section, its resolved local settings, and its feature
/// blocks with the schema's defaults filled in.
pub(crate) struct Source<'a> {
    reg: &'a OCIRegistryConfig,
    settings: &'a LocalSettings,
    features: OCIRegistryFeatures,
    zot: ZotFeatures,
}

/// Warnings, each kept once.
#[derive(Debug, Default)]
pub(crate) struct Warnings(pub(crate) Vec<String>);

impl Warnings {
    /// Adds a warning unless the same text is already there.
    pub(crate) fn push(&mut self, message: String) {
        if !self.0.contains(&message) {
            self.0.push(message);
        }
    }

    /// Warns that `field` has no `engine` equivalent.
    pub(crate) fn unsupported(&mut self, field: &str, engine: &str, why: &str) {
        self.push(format!(
            "registry.{field}: no {engine} equivalent ({why}); ignored"
        ));
    }
}

/// Feature warnings shared by both registries (neither has a native equivalent).
fn common_feature_warnings(f: &OCIRegistryFeatures, engine: &str, w: &mut Warnings) {
    if f.replication_enabled
        || f.replication_targets
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        w.unsupported(
            "features.replication_enabled",
            engine,
            "push replication is a Harbor feature",
        );
    }
    if f.quota_enabled || f.quota_config.is_some() {
        w.unsupported(
            "features.quota_enabled",
            engine,
            "no storage or artifact quotas",
        );
    }
}

/// The seed's default GC schedule.
const DEFAULT_GC_SCHEDULE: &str = "0 2 * * *";

/// Is the GC schedule something other than the seed's default?
fn custom_gc_schedule(f: &OCIRegistryFeatures) -> bool {
    f.gc_enabled && f.gc_schedule != DEFAULT_GC_SCHEDULE
}

/// The scanner name, for messages.
fn scanner_name(s: Option<ScannerType>) -> &'static str {
    s.map_or("unset", ScannerType::as_str)
}

/// The signing method name, for messages.
fn signing_name(s: Option<SigningMethod>) -> &'static str {
    s.map_or("unset", SigningMethod::as_str)
}

/// A duration in whole seconds as a Go duration string with a unit (`3600 s` → `"1h"`,
/// `90 s` → `"90s"`); Distribution and zot read a bare number as nanoseconds.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        "0s".to_string()
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A JSON object from key/value pairs, in order.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A path as a JSON string.
pub(crate) fn path_value(p: &std::path::Path) -> Value {
    Value::from(p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn durations_carry_units() {
        let go = |s| go_duration(Duration::from_secs(s));
        assert_eq!(go(3600), "1h");
        assert_eq!(go(1800), "30m");
        assert_eq!(go(90), "90s");
        assert_eq!(go(86400), "24h");
        assert_eq!(go(0), "0s");
    }
}
