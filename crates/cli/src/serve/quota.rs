//! The effective quota settings (`registry.features.quota_enabled` + `quota_config`; limits in
//! GB are GiB, namespace keys resolved) → the store's [`QuotaOptions`].

use ocireg_config::QuotaView;
use ocireg_store::{NamespaceLimit, QuotaOptions};

/// The store's quota, or `None` when quotas are off.
pub(super) fn store_quota(view: Option<&QuotaView>) -> Option<QuotaOptions> {
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
