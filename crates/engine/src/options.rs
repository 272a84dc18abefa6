//! Effective settings → the option structs of the store and the server (files are read by the
//! callers; these are plain conversions).

use ocireg_config::{QuotaView, ServeSettings, ServeTls};
use ocireg_server::TlsOptions;
use ocireg_store::{NamespaceLimit, QuotaOptions, SpaceReserve, StoreOptions};

/// The server's TLS options.
pub(crate) fn tls(t: &ServeTls) -> TlsOptions {
    TlsOptions {
        cert_path: t.cert.clone(),
        key_path: t.key.clone(),
        client_ca_path: t.client_ca.clone(),
    }
}

/// The store's quota, or `None` when quotas are off.
fn quota(view: Option<&QuotaView>) -> Option<QuotaOptions> {
    let q = view?;
    Some(QuotaOptions {
        storage_limit_bytes: Some(q.storage_limit_bytes),
        artifact_limit: Some(q.artifact_limit),
        namespaces: q
            .namespaces
            .iter()
            .map(|(ns, l)| {
                let limit = NamespaceLimit {
                    storage_limit_bytes: Some(l.storage_limit_bytes),
                    artifact_limit: Some(l.artifact_limit),
                };
                (ns.clone(), limit)
            })
            .collect(),
    })
}

/// The store's options: dedupe and quotas.
pub(crate) fn store(s: &ServeSettings) -> StoreOptions {
    StoreOptions {
        dedupe: s.local.storage.dedupe,
        quota: quota(s.quota.as_ref()),
        space_reserve: s
            .limits
            .min_free_space
            .map_or(SpaceReserve::Default, SpaceReserve::Bytes),
        // A quarter of the tombstone wait leaves the rest for the longest request.
        no_gc_seen_ttl: (s.gc.tombstone_wait / 4).min(std::time::Duration::from_secs(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_map_to_bytes_per_namespace() {
        let yaml = "registry:\n  deployment: local\n  type: zot\n  endpoint: localhost\n  namespaces: {custom: {team: team-artifacts}}\n  local: {data_dir: /srv/reg, config_path: /srv/reg/c.yml}\n  features: {quota_enabled: true, quota_config: {storage_limit_gb: 2, artifact_limit: 7, namespace_quotas: {extensions: {storage_limit_gb: 1, artifact_limit: 3}, team: {}}}}\n";
        let doc = ocireg_config::load_str(yaml, ocireg_config::Format::Yaml).unwrap();
        let s = ServeSettings::resolve(&doc).unwrap();
        let q = store(&s).quota.unwrap();
        assert_eq!(q.storage_limit_bytes, Some(2 << 30));
        assert_eq!(q.artifact_limit, Some(7));
        let names: Vec<&str> = q.namespaces.keys().map(String::as_str).collect();
        assert_eq!(names, ["provisioning-extensions", "team-artifacts"]);
        let ext = &q.namespaces["provisioning-extensions"];
        assert_eq!(ext.storage_limit_bytes, Some(1 << 30));
        assert_eq!(ext.artifact_limit, Some(3));
        assert_eq!(
            q.namespaces["team-artifacts"].storage_limit_bytes,
            Some(50 << 30)
        );
    }
}
