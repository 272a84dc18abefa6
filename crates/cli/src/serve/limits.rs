//! The effective `registry.local.limits_config` → the server's [`ocireg_server::Limits`].

use ocireg_config::LimitsView;
use ocireg_server::Limits;

/// The request, name, session and rate limits.
pub(super) fn limits(c: &LimitsView) -> Limits {
    Limits {
        max_header_bytes: c.max_header_bytes,
        max_name_length: c.max_name_length,
        max_upload_sessions_per_client: c.max_upload_sessions_per_client,
        upload_session_ttl: c.upload_session_ttl,
        rate_limit_rps: c.rate_limit_rps,
        rate_limit_burst: c.rate_limit_burst,
    }
}
