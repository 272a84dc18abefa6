//! The search extension of `ocireg serve`: on unless `registry.zot_features` is present with
//! `search_enabled: false` (no `zot_features`, e.g. type "distribution": on).

use ocireg_config::Document;

/// True when the config leaves search on.
pub(super) fn enabled(doc: &Document) -> bool {
    doc.registry
        .zot_features
        .as_ref()
        .is_none_or(|z| z.search_enabled)
}
