//! The three pull policies and the decision the CLI asks for before fetching a reference.

use std::time::{Duration, SystemTime};

use ocireg_oci::Digest;

use super::{ClientError, Result};

/// `pull_policy.policy`: the configuration's own type, so that one enum names the three
/// policies everywhere (`always`, `if-not-present`, `never`).
pub use ocireg_config::PullPolicy;

/// What each pull policy means for the cache.
pub trait PullPolicyExt {
    /// Whether a cached blob may be used (false only for `always`, which asks the registry
    /// every time but still fills the cache).
    fn uses_cache(&self) -> bool;

    /// What to do when a blob the manifest needs is absent from the cache (or was dropped as
    /// corrupt): `Ok(())` means fetch it; `never` answers [`ClientError::NotCached`].
    fn on_blob_miss(&self, digest: &Digest) -> Result<()>;
}

impl PullPolicyExt for PullPolicy {
    fn uses_cache(&self) -> bool {
        !matches!(self, PullPolicy::Always)
    }

    fn on_blob_miss(&self, digest: &Digest) -> Result<()> {
        match self {
            PullPolicy::Never => Err(ClientError::NotCached {
                what: format!("blob {digest}"),
            }),
            PullPolicy::Always | PullPolicy::IfNotPresent => Ok(()),
        }
    }
}

/// What the cache knows about a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefLookup {
    /// A manifest digest younger than the TTL (or a digest reference whose manifest is cached).
    Fresh(Digest),
    /// A manifest digest older than the TTL.
    Expired {
        /// The cached manifest digest.
        digest: Digest,
        /// How old the entry is.
        age: Duration,
        /// The TTL it exceeded.
        ttl: Duration,
        /// When it was fetched.
        fetched_at: SystemTime,
    },
    /// Nothing cached.
    Absent,
}

/// What to do for a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullDecision {
    /// Serve the manifest with this digest (and its blobs) from the cache.
    UseCache(Digest),
    /// Ask the registry, then store what comes back.
    Fetch,
}

/// Applies `policy` to a cache `lookup` for `reference` (used in error messages).
///
/// | policy | fresh | expired | absent |
/// | --- | --- | --- | --- |
/// | `always` | fetch | fetch | fetch |
/// | `if-not-present` | use cache | fetch | fetch |
/// | `never` | use cache | error (expired) | error (not cached) |
pub fn decide(policy: PullPolicy, lookup: &RefLookup, reference: &str) -> Result<PullDecision> {
    match (policy, lookup) {
        (PullPolicy::Always, _) => Ok(PullDecision::Fetch),
        (_, RefLookup::Fresh(d)) => Ok(PullDecision::UseCache(d.clone())),
        (PullPolicy::IfNotPresent, _) => Ok(PullDecision::Fetch),
        (PullPolicy::Never, RefLookup::Expired { age, ttl, .. }) => {
            Err(ClientError::CacheExpired {
                reference: reference.to_owned(),
                age_secs: age.as_secs(),
                ttl_secs: ttl.as_secs(),
            })
        }
        (PullPolicy::Never, RefLookup::Absent) => Err(ClientError::NotCached {
            what: reference.to_owned(),
        }),
    }
}
