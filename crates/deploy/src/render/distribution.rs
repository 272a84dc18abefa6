//! CNCF Distribution 2.8 (`registry serve config.yml`): the YAML config.
//!
//! Durations are written with units (a bare number is nanoseconds). 2.8's `http` section has no
//! read, write or idle timeout (only `draintimeout`, used for a graceful SIGTERM); GC is offline
//! (`registry garbage-collect`); dedupe is inherent (content-addressed blobs); one auth provider.

use std::time::Duration;

use ocireg_config::{OCIRegistryConfig, OCIRegistryFeatures, ZotFeatures};
use serde_json::{Map, Value};

use super::{common_feature_warnings, custom_gc_schedule, obj, path_value, Source, Warnings};
use crate::settings::{host_port, LocalSettings};

const ENGINE: &str = "Distribution";

/// How long Distribution lets connections drain after SIGTERM; below `down`'s wait.
pub(crate) const DRAIN_TIMEOUT: &str = "10s";

/// The seed's default interval GC pause.
const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3600);

/// The realm of the Basic auth challenge.
const REALM: &str = "ocireg";

pub(super) fn render(src: &Source<'_>, w: &mut Warnings) -> Value {
    let (reg, s, f, z) = (src.reg, src.settings, &src.features, &src.zot);
    let mut root = Map::new();
    root.insert("version".into(), Value::from("0.1"));
    root.insert(
        "log".into(),
        obj([
            ("level", Value::from("info")),
            ("formatter", Value::from("text")),
            ("fields", obj([("service", Value::from("registry"))])),
        ]),
    );
    root.insert("storage".into(), storage(s, f, w));
    root.insert("http".into(), http(s, reg, z, w));
    if let Some(auth) = &s.auth {
        root.insert(
            "auth".into(),
            obj([(
                "htpasswd",
                obj([
                    ("realm", Value::from(REALM)),
                    ("path", path_value(&auth.htpasswd_file)),
                ]),
            )]),
        );
        if reg.auth_token_path.is_some() {
            w.unsupported(
                "auth_token_path",
                ENGINE,
                "one auth provider, htpasswd; bearer tokens need a token server",
            );
        }
    }
    if let Some(n) = notifications(f) {
        root.insert("notifications".into(), n);
    }
    feature_warnings(f, z, reg, w);
    Value::Object(root)
}

fn storage(s: &LocalSettings, f: &OCIRegistryFeatures, w: &mut Warnings) -> Value {
    let st = &s.view.storage;
    if !st.dedupe {
        w.unsupported(
            "local.storage_config.dedupe_enabled",
            ENGINE,
            "blobs are content-addressed, so Distribution always deduplicates",
        );
    }
    if st.gc_interval.is_some_and(|i| i != DEFAULT_GC_INTERVAL) {
        w.unsupported(
            "local.storage_config.gc_interval",
            ENGINE,
            "garbage collection is offline: `registry garbage-collect` while stopped or read-only",
        );
    }
    if custom_gc_schedule(f) {
        w.unsupported(
            "features.gc_schedule",
            ENGINE,
            "garbage collection is offline: `registry garbage-collect` while stopped or read-only",
        );
    }
    obj([
        (
            "filesystem",
            obj([("rootdirectory", path_value(s.root_dir()))]),
        ),
        ("delete", obj([("enabled", Value::Bool(true))])),
        ("cache", obj([("blobdescriptor", Value::from("inmemory"))])),
    ])
}

fn http(s: &LocalSettings, reg: &OCIRegistryConfig, z: &ZotFeatures, w: &mut Warnings) -> Value {
    let h = &s.view.http;
    for (field, value, default) in [
        ("read_timeout", h.read_timeout, 60),
        ("write_timeout", h.write_timeout, 60),
        ("idle_timeout", h.idle_timeout, 120),
    ] {
        if value != Duration::from_secs(default) {
            w.unsupported(
                &format!("local.http_config.{field}"),
                ENGINE,
                "registry 2.8 has no per-connection HTTP timeouts",
            );
        }
    }
    let mut http = Map::new();
    http.insert("addr".into(), Value::from(s.listen_addr()));
    http.insert("draintimeout".into(), Value::from(DRAIN_TIMEOUT));
    http.insert(
        "headers".into(),
        obj([(
            "X-Content-Type-Options",
            Value::Array(vec![Value::from("nosniff")]),
        )]),
    );
    if let Some(tls) = &s.view.tls {
        http.insert(
            "tls".into(),
            obj([
                ("certificate", path_value(&tls.cert)),
                ("key", path_value(&tls.key)),
            ]),
        );
    }
    // zot's metrics map onto Distribution's debug server (Prometheus on its own port).
    if reg.zot_features.is_some() && z.metrics_enabled {
        http.insert(
            "debug".into(),
            obj([
                (
                    "addr",
                    Value::from(host_port(s.listen_host(), s.view.metrics_port)),
                ),
                (
                    "prometheus",
                    obj([
                        ("enabled", Value::Bool(true)),
                        ("path", Value::from("/metrics")),
                    ]),
                ),
            ]),
        );
    }
    Value::Object(http)
}

/// Webhook endpoints as Distribution notification endpoints.
fn notifications(f: &OCIRegistryFeatures) -> Option<Value> {
    let urls = f.webhook_endpoints.as_ref().filter(|u| !u.is_empty())?;
    if !f.webhook_enabled {
        return None;
    }
    let endpoints = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            obj([
                ("name", Value::from(format!("webhook-{}", i + 1))),
                ("url", Value::from(url.as_str())),
                ("timeout", Value::from("5s")),
                ("threshold", Value::from(5)),
                ("backoff", Value::from("10s")),
            ])
        })
        .collect();
    Some(obj([("endpoints", Value::Array(endpoints))]))
}

fn feature_warnings(
    f: &OCIRegistryFeatures,
    z: &ZotFeatures,
    reg: &OCIRegistryConfig,
    w: &mut Warnings,
) {
    if f.vulnerability_scanning {
        w.unsupported(
            "features.vulnerability_scanning",
            ENGINE,
            "no built-in scanner",
        );
    }
    if f.image_signing {
        w.unsupported(
            "features.image_signing",
            ENGINE,
            "signatures are stored as artifacts but not verified",
        );
    }
    if f.webhook_enabled && f.webhook_endpoints.as_ref().is_none_or(Vec::is_empty) {
        w.push(
            "registry.features.webhook_enabled: no webhook_endpoints; no notifications configured"
                .into(),
        );
    }
    common_feature_warnings(f, ENGINE, w);
    if reg.zot_features.is_some() {
        if z.sync_enabled {
            w.unsupported(
                "zot_features.sync_enabled",
                ENGINE,
                "Distribution's proxy mode is a read-only pull-through cache of one upstream",
            );
        }
        if z.scrub_interval != "24h" && z.scrub_enabled {
            w.unsupported("zot_features.scrub_interval", ENGINE, "no background scrub");
        }
    }
}
