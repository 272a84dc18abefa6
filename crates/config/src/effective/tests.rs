use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::{load_str, Format};

fn doc(yaml: &str) -> Document {
    load_str(yaml, Format::Yaml).unwrap()
}

const LOCAL: &str = "registry:\n  deployment: local\n  type: distribution\n  endpoint: Reg.Test\n  port: 5123\n  namespaces: {custom: {team: team-artifacts}}\n  local:\n    data_dir: ~/d\n    config_path: ~/d/c.yml\n";

use crate::document::Document;

#[test]
fn the_listen_port_is_http_config_when_given_else_registry_port() {
    // No http_config: registry.port, for serve, the lifecycle and the clients alike.
    let d = doc(LOCAL);
    let home = Some(Path::new("/h"));
    let v = LocalView::resolve(&d.registry, home).unwrap();
    assert!(!v.http.given);
    assert_eq!(v.http.listen.host_port(), "127.0.0.1:5123");
    assert_eq!(v.probe_url(), "http://127.0.0.1:5123/v2/");
    let s = ServeSettings::resolve(&d).unwrap();
    assert_eq!(
        s.local.http.listen.socket_addr().unwrap(),
        "127.0.0.1:5123".parse().unwrap()
    );
    assert_eq!(
        ClientView::resolve(&d).unwrap().endpoint.host_port(),
        "reg.test:5123"
    );
    // With http_config: its listen_port wins over registry.port everywhere.
    let d = doc(&format!(
        "{LOCAL}    http_config: {{listen_address: 0.0.0.0, listen_port: 6001}}\n"
    ));
    let v = LocalView::resolve(&d.registry, home).unwrap();
    assert_eq!(v.http.listen.host_port(), "0.0.0.0:6001");
    assert_eq!(v.probe_url(), "http://127.0.0.1:6001/v2/");
    let s = ServeSettings::resolve(&d).unwrap();
    assert_eq!(s.local.http.listen.port, 6001);
    assert_eq!(
        ClientView::resolve(&d).unwrap().endpoint.host_port(),
        "reg.test:6001"
    );
    // A remote registry is reached on registry.port.
    let d = doc("registry: {deployment: remote, type: zot, endpoint: r.example, port: 443, tls_enabled: true, remote: {}, namespaces: {}}");
    let c = ClientView::resolve(&d).unwrap();
    assert_eq!(
        (c.endpoint.host_port(), c.endpoint.scheme()),
        ("r.example:443".into(), "https")
    );
}

#[test]
fn absent_blocks_take_the_schema_defaults() {
    let d = doc(LOCAL);
    let v = LocalView::resolve(&d.registry, Some(Path::new("/h"))).unwrap();
    assert_eq!(v.data_dir, PathBuf::from("/h/d"));
    assert_eq!(v.log_file, PathBuf::from("/h/d/registry.log"));
    assert_eq!(v.storage.root(), Some(Path::new("/h/d/storage")));
    assert_eq!(v.storage.backend.kind(), crate::StorageBackend::Filesystem);
    assert_eq!(v.http.read_timeout, Duration::from_secs(60));
    assert_eq!(v.http.idle_timeout, Duration::from_secs(120));
    assert_eq!(v.storage.gc_interval, Some(Duration::from_secs(3600)));
    assert!(v.storage.dedupe);
    let s = ServeSettings::resolve(&d).unwrap();
    assert_eq!(s.limits.max_manifest_bytes, 4_194_304);
    assert_eq!(s.limits.upload_session_ttl, Duration::from_secs(86_400));
    assert_eq!(s.gc.interval, Some(Duration::from_secs(3600)));
    assert_eq!(s.gc.grace_period, Duration::from_secs(3600));
    assert_eq!(s.gc.cron, None);
    assert_eq!(
        s.scrub,
        ScrubView {
            interval: None,
            rate_bytes_per_sec: 64 << 20
        }
    );
    assert!(s.search && s.metrics.is_none() && s.quota.is_none() && s.webhooks.is_none());
    assert!(s.auth.is_none() && s.tls.is_none() && s.notes.is_empty());
    let c = ClientView::resolve(&d).unwrap();
    assert_eq!(c.remote.timeout, Duration::from_secs(30));
    assert_eq!((c.remote.retries, c.remote.rate.as_ref()), (3, None));
    assert_eq!(c.cache_ttl, Duration::from_secs(3600));
}

#[test]
fn solo_defaults_without_a_local_block() {
    let d =
        doc("registry: {deployment: remote, type: zot, endpoint: r, remote: {}, namespaces: {}}");
    let v = LocalView::resolve(&d.registry, Some(Path::new("/h"))).unwrap();
    assert!(!v.given);
    assert_eq!(
        v.config_path,
        PathBuf::from("/h/.provisioning/oci-registry/config.json")
    );
    let err = ServeSettings::resolve(&d).unwrap_err().to_string();
    assert!(err.starts_with("registry.deployment: "), "{err}");
}

#[test]
fn serve_settings_follow_every_block() {
    let d = doc(&format!(
        "{LOCAL}    storage_config: {{gc_enabled: true, gc_interval: 7}}\n    ops_config: {{gc_grace_period: 30, gc_delete_untagged: true, scrub_rate_mb: 2, metrics_listen_address: localhost}}\n    limits_config: {{upload_session_ttl: 99}}\n  features: {{gc_enabled: true, gc_schedule: '*/5 * * * *', quota_enabled: true, quota_config: {{storage_limit_gb: 2, namespace_quotas: {{team: {{artifact_limit: 5}}, scratch: {{}}}}}}}}\n"
    ));
    let s = ServeSettings::resolve(&d).unwrap();
    assert_eq!(s.gc.interval, Some(Duration::from_secs(7)));
    assert_eq!(s.gc.cron.as_deref(), Some("*/5 * * * *"));
    assert_eq!(s.gc.grace_period, Duration::from_secs(30));
    assert!(s.gc.delete_untagged);
    assert_eq!(s.gc.upload_ttl, Duration::from_secs(99));
    assert_eq!(s.scrub.rate_bytes_per_sec, 2 << 20);
    let q = s.quota.unwrap();
    assert_eq!((q.storage_limit_bytes, q.artifact_limit), (2 << 30, 10_000));
    assert_eq!(q.namespaces["team-artifacts"].artifact_limit, 5);
    assert_eq!(q.namespaces["scratch"].storage_limit_bytes, 50 << 30);
}

#[test]
fn zot_features_drive_scrub_metrics_and_search() {
    let d = doc("registry:\n  deployment: local\n  type: zot\n  endpoint: localhost\n  namespaces: {}\n  local: {data_dir: /d, config_path: /d/c.json}\n  zot_features: {scrub_interval: 1h30m, metrics_port: 0, search_enabled: false}\n");
    let s = ServeSettings::resolve(&d).unwrap();
    assert_eq!(s.scrub.interval, Some(Duration::from_secs(5400)));
    assert_eq!(s.metrics, Some("127.0.0.1:0".parse().unwrap()));
    assert!(!s.search);
}

#[test]
fn access_rules_resolve_namespace_keys() {
    let d = doc(&format!(
        "{}  auth_required: true\n  username: admin\n  local:\n    data_dir: /d\n    config_path: /d/c.yml\n    auth_config:\n      access:\n        - {{namespaces: [team, extensions], read: ['*']}}\n",
        LOCAL.split("  local:").next().unwrap()
    ));
    let auth = ServeSettings::resolve(&d).unwrap().auth.unwrap();
    let rules = &auth.multi_user.unwrap().rules;
    assert_eq!(
        rules[0].patterns,
        ["team-artifacts/**", "provisioning-extensions/**"]
    );
    assert_eq!(auth.max_failed_logins, 10);
    let bad = doc(&format!(
        "{}  auth_required: true\n  username: admin\n  local:\n    data_dir: /d\n    config_path: /d/c.yml\n    auth_config:\n      access:\n        - {{namespaces: [nope], read: ['*']}}\n",
        LOCAL.split("  local:").next().unwrap()
    ));
    let err = ServeSettings::resolve(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "registry.local.auth_config.access[0].namespaces: unknown namespace \"nope\" (not a key of registry.namespaces)"
    );
}

#[test]
fn namespaces_resolve_by_key() {
    let d = doc(LOCAL);
    let ns = &d.registry.namespaces;
    assert_eq!(ns.get("extensions"), Some("provisioning-extensions"));
    assert_eq!(ns.get("test_images"), Some("provisioning-test"));
    assert_eq!(ns.get("team"), Some("team-artifacts"));
    assert_eq!(ns.get("other"), None);
}

#[test]
fn converters_name_the_field() {
    assert_eq!(
        port(70_000, "a.b").unwrap_err().to_string(),
        "a.b: 70000 is out of range"
    );
    assert_eq!(
        positive_seconds(0, "x").unwrap_err().to_string(),
        "x: must be a positive number of seconds"
    );
    assert_eq!(seconds(0, "x").unwrap(), Duration::ZERO);
    assert!(seconds(-1, "x").is_err());
    assert_eq!(positive::<u32>(3, "x").unwrap(), 3);
    assert!(positive::<u32>(0, "x").is_err());
}

#[test]
fn durations() {
    let secs = |t: &str| parse_duration(t, "f").unwrap().as_secs();
    assert_eq!(secs("24h"), 86_400);
    assert_eq!(secs("30m"), 1_800);
    assert_eq!(secs("90s"), 90);
    assert_eq!(secs("1h30m"), 5_400);
    assert_eq!(secs("2d1s"), 172_801);
    assert_eq!(secs(" 10m "), 600);
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
        let err = parse_duration(bad, "f").unwrap_err().to_string();
        assert!(err.starts_with("f: "), "{bad:?}: {err}");
    }
}

#[test]
fn quota_is_off_unless_enabled_and_defaults_when_enabled_alone() {
    let with = |features: &str| {
        ServeSettings::resolve(&doc(&format!("{LOCAL}  features: {features}\n")))
            .unwrap()
            .quota
    };
    assert_eq!(with("{}"), None);
    assert_eq!(with("{quota_config: {storage_limit_gb: 3}}"), None);
    let q = with("{quota_enabled: true}").unwrap();
    assert_eq!(
        (q.storage_limit_bytes, q.artifact_limit),
        (100 << 30, 10_000)
    );
    assert!(q.namespaces.is_empty());
    let s = ServeSettings::resolve(&doc(&format!(
        "{LOCAL}  features: {{quota_config: {{storage_limit_gb: 3}}}}\n"
    )))
    .unwrap();
    assert_eq!(
        s.notes,
        ["registry.features.quota_config is ignored: registry.features.quota_enabled is false"]
    );
}

#[test]
fn object_storage_backends_resolve_with_their_defaults() {
    let with = |storage: &str| {
        ServeSettings::resolve(&doc(&format!("{LOCAL}    storage_config: {storage}\n"))).unwrap()
    };
    // An endpoint (MinIO, moto): region us-east-1 and path-style, as Distribution's
    // regionendpoint setups; a trailing slash of prefix and endpoint is dropped.
    let s = with("{backend: s3, s3: {bucket: reg, endpoint: 'http://127.0.0.1:9000/', prefix: team/, allow_http: true}}");
    assert_eq!(
        s.storage(),
        &StorageBackendView::S3 {
            bucket: "reg".into(),
            region: Some(DEFAULT_S3_REGION.into()),
            endpoint: Some("http://127.0.0.1:9000".into()),
            prefix: "team".into(),
            path_style: true,
            allow_http: true,
        }
    );
    assert_eq!(s.local.storage.root(), None);
    assert!(s.storage().is_object_store());
    assert_eq!(
        s.storage().location(),
        "s3://reg/team at http://127.0.0.1:9000"
    );
    // AWS: no region (the environment's), virtual-hosted; explicit values win.
    let s = with("{backend: s3, s3: {bucket: reg}}");
    assert!(matches!(
        s.storage(),
        StorageBackendView::S3 { region: None, endpoint: None, path_style: false, allow_http: false, prefix, .. } if prefix.is_empty()
    ));
    let s = with("{backend: s3, s3: {bucket: reg, region: eu-west-1, endpoint: 'https://s3.example', path_style: false}}");
    assert!(matches!(
        s.storage(),
        StorageBackendView::S3 { region: Some(r), path_style: false, .. } if r == "eu-west-1"
    ));
    let s = with("{backend: azure, azure: {account: devstoreaccount1, container: reg, endpoint: 'http://127.0.0.1:10000/devstoreaccount1'}}");
    assert_eq!(
        s.storage(),
        &StorageBackendView::Azure {
            account: "devstoreaccount1".into(),
            container: "reg".into(),
            endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
            prefix: String::new(),
        }
    );
    assert_eq!(
        s.storage().location(),
        "azure://devstoreaccount1/reg at http://127.0.0.1:10000/devstoreaccount1"
    );
    // GC and dedupe settings do not depend on the backend.
    assert_eq!(s.gc.interval, Some(Duration::from_secs(3600)));
    assert!(s.local.storage.dedupe);
}
