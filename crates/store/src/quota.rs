//! Storage usage and quotas.
//!
//! Usage is derived from the in-memory index plus a table of physical object sizes
//! ([`facts`]), so it follows every push and delete without a storage walk:
//! - a namespace (a repository's first path component) uses the sizes of the distinct blob and
//!   manifest digests linked in its repositories, each digest counted once per namespace;
//! - `total_bytes` is the physical bytes of the data those links reference: a shared
//!   (deduplicated) object once for the whole registry, each per-repository copy (dedupe off)
//!   once per copy. Data no repository references any more (waiting for garbage collection)
//!   and quarantined objects are not counted;
//! - artifacts are manifest revisions, except manifests that are children of an image index
//!   in the same repository (they count with their index).

mod check;
mod facts;
mod ledger;
mod push;

use std::collections::{BTreeMap, HashMap, HashSet};

use ocireg_oci::Digest;
use serde::{Deserialize, Serialize};

use crate::paths::DataLoc;
use crate::store::Store;

pub(crate) use facts::{scan, Facts};
pub(crate) use push::RevisionFacts;

/// Storage and artifact limits (from `registry.features.quota_config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaOptions {
    /// Limit of the registry's physical bytes ([`Usage::total_bytes`]).
    pub storage_limit_bytes: Option<u64>,
    /// Limit of the registry's artifacts ([`Usage::artifacts`]).
    pub artifact_limit: Option<u64>,
    /// Limits of single namespaces, by namespace name.
    pub namespaces: BTreeMap<String, NamespaceLimit>,
}

/// Limits of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceLimit {
    /// Limit of [`NamespaceUsage::bytes`].
    pub storage_limit_bytes: Option<u64>,
    /// Limit of [`NamespaceUsage::artifacts`].
    pub artifact_limit: Option<u64>,
}

/// What the registry stores (see the module docs for how it is counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Physical bytes of referenced data (shared data once, per-repository copies per copy).
    pub total_bytes: u64,
    /// Artifacts in all repositories.
    pub artifacts: u64,
    /// Per namespace (first path component of the repository name).
    pub namespaces: BTreeMap<String, NamespaceUsage>,
}

/// What one namespace stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceUsage {
    /// Sizes of the distinct blob and manifest digests linked in its repositories.
    pub bytes: u64,
    /// Manifest revisions, index children excepted.
    pub artifacts: u64,
}

/// The namespace of a repository: its first path component.
pub fn namespace_of(repo: &str) -> &str {
    repo.split_once('/').map_or(repo, |(ns, _)| ns)
}

/// Quota bookkeeping shared by the store's clones.
#[derive(Debug, Default)]
pub(crate) struct QuotaState {
    /// Physical sizes and index children.
    pub facts: parking_lot::RwLock<Facts>,
    /// Reservations of bytes and artifacts on their way in.
    pub ledger: ledger::Ledger,
}

impl QuotaState {
    /// State over facts scanned at open.
    pub(crate) fn new(facts: Facts) -> QuotaState {
        QuotaState {
            facts: parking_lot::RwLock::new(facts),
            ledger: ledger::Ledger::default(),
        }
    }
}

impl Store {
    /// Current usage, from the index and the size table (no storage access).
    pub fn usage(&self) -> Usage {
        // Lock order: facts, then index (writers never hold both).
        let facts = self.inner.quota.facts.read();
        self.inner.index.read_all(|repos| {
            let mut usage = Usage::default();
            let mut shared_seen: HashSet<&Digest> = HashSet::new();
            let mut ns_seen: HashMap<&str, HashSet<&Digest>> = HashMap::new();
            for (name, r) in repos {
                let ns = namespace_of(name);
                let seen = ns_seen.entry(ns).or_default();
                let nsu = usage.namespaces.entry(ns.to_owned()).or_default();

                let children: HashSet<&Digest> = r
                    .manifests
                    .keys()
                    .flat_map(|m| facts.children(m))
                    .filter(|c| r.manifests.contains_key(*c))
                    .collect();
                let artifacts = (r.manifests.len() - children.len()) as u64;
                nsu.artifacts += artifacts;
                usage.artifacts += artifacts;

                let blobs = r.blobs.iter().map(|(d, size)| (d, *size));
                let manifests = r
                    .manifests
                    .iter()
                    .map(|(d, meta)| (d, meta.as_ref().map(|m| m.size)));
                let mut local_seen: HashSet<&Digest> = HashSet::new();
                for (digest, known) in blobs.chain(manifests) {
                    let loc = r.loc(digest);
                    let Some(size) = facts.physical(name, digest, loc).or(known) else {
                        continue;
                    };
                    if seen.insert(digest) {
                        nsu.bytes += size;
                    }
                    let first = match loc {
                        DataLoc::Shared => shared_seen.insert(digest),
                        DataLoc::Local => local_seen.insert(digest),
                    };
                    if first {
                        usage.total_bytes += size;
                    }
                }
            }
            usage
        })
    }

    /// The configured quota, if any.
    pub fn quota(&self) -> Option<&QuotaOptions> {
        self.inner.opts.quota.as_ref()
    }
}
