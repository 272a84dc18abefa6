//! Every example config: the address `serve` listens on, the one `up` / `status` probe, the
//! one `gc` / `scrub` call and the one the client commands use agree.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ocireg_config::{ClientView, Deployment, Document, Format, ServeSettings};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| Format::from_path(p).is_some())
        .collect();
    files.sort();
    files
}

/// `host:port` of a URL.
fn authority(url: &reqwest::Url) -> SocketAddr {
    let host = url.host_str().unwrap().trim_matches(['[', ']']);
    SocketAddr::new(host.parse().unwrap(), url.port().unwrap())
}

/// The address `serve` binds, reached from this machine (wildcards on loopback).
fn reached(addr: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        other => other,
    };
    SocketAddr::new(ip, addr.port())
}

fn check_local(name: &str, doc: &Document) {
    let settings = ServeSettings::resolve(doc).unwrap_or_else(|e| panic!("{name}: serve: {e}"));
    let serve = ocireg_engine::listen_address(&settings, None).unwrap();
    let plan = crate::lifecycle_cmd::plan(doc).unwrap_or_else(|e| panic!("{name}: up: {e}"));
    let probe = authority(&reqwest::Url::parse(&plan.settings.probe_url).unwrap());
    assert_eq!(
        plan.settings.listen_port(),
        serve.port(),
        "{name}: up listens elsewhere"
    );
    assert_eq!(reached(serve), probe, "{name}: status probes elsewhere");
    for op in ["gc", "scrub"] {
        let url = crate::admin_call::extension_url(doc, op, &[]).unwrap();
        assert_eq!(authority(&url), probe, "{name}: {op} calls elsewhere");
    }
    let client = ClientView::resolve(doc).unwrap();
    assert_eq!(
        client.endpoint.port,
        serve.port(),
        "{name}: clients connect elsewhere"
    );
}

#[test]
fn serve_up_status_gc_and_scrub_agree_on_the_address_of_every_example() {
    let files = examples();
    let mut local = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let doc = ocireg_config::load_path(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        if doc.registry.deployment == Deployment::Local {
            check_local(&name, &doc);
            local += 1;
        } else {
            // Nothing local to reach: every command refuses alike.
            assert!(ServeSettings::resolve(&doc).is_err(), "{name}");
            assert!(crate::lifecycle_cmd::plan(&doc).is_err(), "{name}");
            assert!(
                crate::admin_call::extension_url(&doc, "gc", &[]).is_err(),
                "{name}"
            );
        }
    }
    assert!(local >= 4, "only {local} local examples in {files:?}");
}

#[test]
fn a_registry_port_without_http_config_is_the_listen_port_everywhere() {
    let yaml = "registry:\n  deployment: local\n  type: distribution\n  endpoint: localhost\n  port: 5123\n  namespaces: {}\n  local: {data_dir: /tmp/ocireg-addr, config_path: /tmp/ocireg-addr/c.yml}\n";
    let doc = ocireg_config::load_str(yaml, Format::Yaml).unwrap();
    check_local("registry.port 5123", &doc);
    let settings = ServeSettings::resolve(&doc).unwrap();
    assert_eq!(
        ocireg_engine::listen_address(&settings, None).unwrap(),
        "127.0.0.1:5123".parse().unwrap()
    );
}
