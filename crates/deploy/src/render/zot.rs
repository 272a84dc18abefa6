//! zot (`zot serve config.json`): the JSON config.
//!
//! The port is a string, durations carry units, unknown keys are fatal to zot (so only known
//! keys are written). HTTP read/write timeouts are `http.readTimeout`/`writeTimeout` (zot
//! 2.1.17 and later); metrics are served on the registry's own port.

use ocireg_config::{
    OCIRegistryConfig, OCIRegistryFeatures, ScannerType, SigningMethod, ZotFeatures,
};
use serde_json::{Map, Value};

use super::{
    common_feature_warnings, custom_gc_schedule, go_duration, obj, path_value, scanner_name,
    signing_name, Source, Warnings,
};
use crate::settings::LocalSettings;

const ENGINE: &str = "zot";

/// The distribution-spec version zot is told it serves.
const DIST_SPEC_VERSION: &str = "1.1.1";

pub(super) fn render(src: &Source<'_>, w: &mut Warnings) -> Value {
    let (reg, s, f, z) = (src.reg, src.settings, &src.features, &src.zot);
    let mut root = Map::new();
    root.insert("distSpecVersion".into(), Value::from(DIST_SPEC_VERSION));
    root.insert("storage".into(), storage(s, f, w));
    root.insert("http".into(), http(reg, s, w));
    root.insert(
        "log".into(),
        obj([
            ("level", Value::from("info")),
            ("output", path_value(&s.view.log_file)),
        ]),
    );
    root.insert("extensions".into(), extensions(f, z, w));
    common_feature_warnings(f, ENGINE, w);
    Value::Object(root)
}

fn storage(s: &LocalSettings, f: &OCIRegistryFeatures, w: &mut Warnings) -> Value {
    let st = &s.view.storage;
    let gc = st.gc_interval.filter(|_| f.gc_enabled);
    let mut m = Map::new();
    m.insert("rootDirectory".into(), path_value(s.root_dir()));
    m.insert("dedupe".into(), Value::Bool(st.dedupe));
    m.insert("gc".into(), Value::Bool(gc.is_some()));
    if let Some(interval) = gc {
        m.insert("gcInterval".into(), Value::from(go_duration(interval)));
    }
    if custom_gc_schedule(f) {
        w.unsupported(
            "features.gc_schedule",
            ENGINE,
            "zot collects garbage every storage.gcInterval, not on a cron schedule",
        );
    }
    Value::Object(m)
}

fn http(reg: &OCIRegistryConfig, s: &LocalSettings, w: &mut Warnings) -> Value {
    let h = &s.view.http;
    let mut m = Map::new();
    m.insert("address".into(), Value::from(s.listen_host()));
    m.insert("port".into(), Value::from(s.listen_port().to_string()));
    m.insert(
        "readTimeout".into(),
        Value::from(go_duration(h.read_timeout)),
    );
    m.insert(
        "writeTimeout".into(),
        Value::from(go_duration(h.write_timeout)),
    );
    if h.idle_timeout != std::time::Duration::from_secs(120) {
        w.unsupported(
            "local.http_config.idle_timeout",
            ENGINE,
            "zot has no keep-alive idle timeout setting",
        );
    }
    if let Some(tls) = &s.view.tls {
        m.insert(
            "tls".into(),
            obj([
                ("cert", path_value(&tls.cert)),
                ("key", path_value(&tls.key)),
            ]),
        );
    }
    if let Some(auth) = &s.auth {
        m.insert("realm".into(), Value::from("ocireg"));
        m.insert(
            "auth".into(),
            obj([("htpasswd", obj([("path", path_value(&auth.htpasswd_file))]))]),
        );
        if reg.auth_token_path.is_some() {
            w.unsupported(
                "auth_token_path",
                ENGINE,
                "bearer tokens need an external token server; htpasswd is used",
            );
        }
    }
    Value::Object(m)
}

fn extensions(f: &OCIRegistryFeatures, z: &ZotFeatures, w: &mut Warnings) -> Value {
    let mut ext = Map::new();
    let mut search = Map::new();
    search.insert("enable".into(), Value::Bool(z.search_enabled));
    if f.vulnerability_scanning {
        match f.scanner_type {
            Some(ScannerType::Trivy) if z.search_enabled => {
                search.insert("cve".into(), obj([("updateInterval", Value::from("2h"))]));
            }
            Some(ScannerType::Trivy) => w.push(
                "registry.features.vulnerability_scanning: zot scans through the search extension; zot_features.search_enabled is false, so scanning is off".into(),
            ),
            other => w.unsupported(
                "features.scanner_type",
                ENGINE,
                &format!("zot scans with trivy, not {}", scanner_name(other)),
            ),
        }
    }
    ext.insert("search".into(), Value::Object(search));
    ext.insert(
        "metrics".into(),
        obj([
            ("enable", Value::Bool(z.metrics_enabled)),
            ("prometheus", obj([("path", Value::from("/metrics"))])),
        ]),
    );
    if z.metrics_enabled && z.metrics_port != 9090 {
        w.unsupported(
            "zot_features.metrics_port",
            ENGINE,
            "zot serves /metrics on the registry port",
        );
    }
    if let Some(sync) = sync(z, w) {
        ext.insert("sync".into(), sync);
    }
    ext.insert(
        "scrub".into(),
        obj([
            ("enable", Value::Bool(z.scrub_enabled)),
            ("interval", Value::from(z.scrub_interval.as_str())),
        ]),
    );
    if f.image_signing {
        let (cosign, notation) = match f.signing_method {
            Some(SigningMethod::Cosign) => (true, false),
            Some(SigningMethod::Notary) => (false, true),
            None => {
                w.push(format!(
                    "registry.features.image_signing: signing_method {}; zot trust left off",
                    signing_name(None)
                ));
                (false, false)
            }
        };
        if cosign || notation {
            ext.insert(
                "trust".into(),
                obj([
                    ("enable", Value::Bool(true)),
                    ("cosign", Value::Bool(cosign)),
                    ("notation", Value::Bool(notation)),
                ]),
            );
        }
    }
    if let Some(events) = events(f, w) {
        ext.insert("events".into(), events);
    }
    Value::Object(ext)
}

/// `sync_registries` as on-demand (pull-through) upstreams.
fn sync(z: &ZotFeatures, w: &mut Warnings) -> Option<Value> {
    if !z.sync_enabled {
        return None;
    }
    let urls = z.sync_registries.as_deref().unwrap_or_default();
    if urls.is_empty() {
        w.push("registry.zot_features.sync_enabled: no sync_registries; sync left off".into());
        return None;
    }
    let registries = urls
        .iter()
        .map(|url| {
            obj([
                ("urls", Value::Array(vec![Value::from(url.as_str())])),
                ("onDemand", Value::Bool(true)),
                ("tlsVerify", Value::Bool(true)),
            ])
        })
        .collect();
    Some(obj([
        ("enable", Value::Bool(true)),
        ("registries", Value::Array(registries)),
    ]))
}

/// Webhook endpoints as HTTP sinks of zot's events extension.
fn events(f: &OCIRegistryFeatures, w: &mut Warnings) -> Option<Value> {
    if !f.webhook_enabled {
        return None;
    }
    let urls = f.webhook_endpoints.as_deref().unwrap_or_default();
    if urls.is_empty() {
        w.push(
            "registry.features.webhook_enabled: no webhook_endpoints; no events configured".into(),
        );
        return None;
    }
    let sinks = urls
        .iter()
        .map(|url| {
            obj([
                ("type", Value::from("http")),
                ("address", Value::from(url.as_str())),
                ("timeout", Value::from("5s")),
            ])
        })
        .collect();
    Some(obj([
        ("enable", Value::Bool(true)),
        ("sinks", Value::Array(sinks)),
    ]))
}
