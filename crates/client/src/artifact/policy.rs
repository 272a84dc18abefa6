//! The three pull policies and the decision the CLI asks for before fetching a reference.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use ocireg_oci::Digest;

use super::{ArtifactError, Result};

/// `pull_policy.policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    /// Always ask the registry; the cache is not consulted for lookups but is still filled.
    Always,
    /// Use a fresh cache entry when there is one, else fetch (and fill the cache).
    #[default]
    IfNotPresent,
    /// Cache only: never contact the registry; a missing or expired entry is an error.
    Never,
}

impl PullPolicy {
    /// The policy as spelled in the configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::IfNotPresent => "if-not-present",
            PullPolicy::Never => "never",
        }
    }

    /// Whether a cached blob may be used (false only for `always`).
    pub fn uses_cache(&self) -> bool {
        !matches!(self, PullPolicy::Always)
    }

    /// What to do when a blob the manifest needs is absent from the cache (or was dropped as
    /// corrupt): `Ok(())` means fetch it; `never` answers [`ArtifactError::NotCached`].
    pub fn on_blob_miss(&self, digest: &Digest) -> Result<()> {
        match self {
            PullPolicy::Never => Err(ArtifactError::NotCached {
                what: format!("blob {digest}"),
            }),
            PullPolicy::Always | PullPolicy::IfNotPresent => Ok(()),
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PullPolicy {
    type Err = ArtifactError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "if-not-present" => Ok(PullPolicy::IfNotPresent),
            "never" => Ok(PullPolicy::Never),
            other => Err(ArtifactError::InvalidOption(format!(
                "unknown pull policy {other:?}: expected always, if-not-present or never"
            ))),
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
            Err(ArtifactError::CacheExpired {
                reference: reference.to_owned(),
                age_secs: age.as_secs(),
                ttl_secs: ttl.as_secs(),
            })
        }
        (PullPolicy::Never, RefLookup::Absent) => Err(ArtifactError::NotCached {
            what: reference.to_owned(),
        }),
    }
}
