//! What a garbage collection run on shared storage would remove, decided from a storage
//! listing alone (no replica's index is the truth there; see [`crate::gc_shared`]).
//!
//! The rules are those of the in-process sweep ([`crate::gc_sweep`]): with `delete_untagged`,
//! revisions the mark did not reach; blob links no live manifest of their repository
//! references; then data objects that no surviving link or revision names and no live
//! manifest references. Anything modified after the grace period's start is kept, and so is
//! anything whose digest the caller does not let go (`eligible`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::SystemTime;

use futures_util::stream::{self, StreamExt};
use ocireg_oci::Digest;

use crate::driver::Driver;
use crate::error::Result;
use crate::gc::{GcOptions, Listing};
use crate::gc_mark::{Marks, RepoView};
use crate::paths::{self, DataLoc};

/// Tags read concurrently while building the views.
const TAG_READS: usize = 16;

/// Removals a run would make.
#[derive(Debug, Default, Clone)]
pub(crate) struct Plan {
    /// Unreachable manifest revisions: repository, digest.
    pub revisions: BTreeSet<(String, Digest)>,
    /// Unreferenced blob links: repository, digest.
    pub links: BTreeSet<(String, Digest)>,
    /// Unreferenced repository copies: (repository, digest) → size.
    pub local: HashMap<(String, Digest), u64>,
    /// Unreferenced shared data: digest → size.
    pub shared: HashMap<Digest, u64>,
    /// Unreferenced objects kept (young, or not eligible).
    pub kept: u64,
    /// Bytes of the data objects among them.
    pub kept_bytes: u64,
}

impl Plan {
    /// Every digest the plan touches.
    pub(crate) fn digests(&self) -> BTreeSet<Digest> {
        let mut out = BTreeSet::new();
        out.extend(self.revisions.iter().map(|(_, d)| d.clone()));
        out.extend(self.links.iter().map(|(_, d)| d.clone()));
        out.extend(self.local.keys().map(|(_, d)| d.clone()));
        out.extend(self.shared.keys().cloned());
        out
    }

    /// True when nothing would be removed.
    pub(crate) fn is_empty(&self) -> bool {
        self.revisions.is_empty()
            && self.links.is_empty()
            && self.local.is_empty()
            && self.shared.is_empty()
    }

    /// Only the removals `earlier` planned too.
    pub(crate) fn within(mut self, earlier: &Plan) -> Plan {
        self.revisions.retain(|k| earlier.revisions.contains(k));
        self.links.retain(|k| earlier.links.contains(k));
        self.local.retain(|k, _| earlier.local.contains_key(k));
        self.shared.retain(|k, _| earlier.shared.contains_key(k));
        self
    }
}

/// Every repository's view as storage holds it: revisions, referrers and tag targets (one read
/// per tag). A tag removed meanwhile is skipped; any other failure fails the run.
pub(crate) async fn storage_views(
    driver: &dyn Driver,
    listing: &Listing,
) -> Result<Vec<(String, RepoView)>> {
    let local: HashSet<(&str, &Digest)> = listing
        .local
        .iter()
        .map(|(repo, d, _, _)| (repo.as_str(), d))
        .collect();
    let mut views: HashMap<String, RepoView> = HashMap::new();
    for (repo, d) in listing.revisions.keys() {
        let loc = if local.contains(&(repo.as_str(), d)) {
            DataLoc::Local
        } else {
            DataLoc::Shared
        };
        let view = views.entry(repo.clone()).or_default();
        view.manifests.insert(d.clone(), (None, loc));
    }
    for (repo, subject, referrer) in &listing.referrers {
        let view = views.entry(repo.clone()).or_default();
        let set = view.referrers.entry(subject.clone()).or_default();
        set.push(referrer.clone());
    }
    for (repo, _, _) in &listing.links {
        views.entry(repo.clone()).or_default();
    }
    // Owned items: a stream over borrowed ones would make the run's future not `Send`.
    let tag_keys: Vec<(String, String)> = listing
        .tags
        .iter()
        .map(|(repo, tag)| (repo.clone(), paths::tag_link(repo, tag)))
        .collect();
    let targets: Vec<(String, Result<bytes::Bytes>)> = stream::iter(tag_keys)
        .map(|(repo, key)| async move {
            let content = driver.get_content(&key).await;
            (repo, content)
        })
        .buffer_unordered(TAG_READS)
        .collect()
        .await;
    for (repo, content) in targets {
        let content = match content {
            Ok(content) => content,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if let Some(d) = paths::parse_digest_content(&content) {
            views.entry(repo).or_default().tags.push(d);
        }
    }
    Ok(views.into_iter().collect())
}

/// The removals `listing` and `marks` call for, among the digests `eligible` lets go.
pub(crate) fn plan(
    opts: &GcOptions,
    listing: &Listing,
    marks: &Marks,
    cutoff: SystemTime,
    eligible: &dyn Fn(&Digest) -> bool,
) -> Plan {
    let mut p = Plan::default();
    if opts.delete_untagged {
        for (repo, d) in listing.revisions.keys() {
            let dead = marks
                .get(repo)
                .is_some_and(|rm| rm.complete && !rm.manifests.contains(d));
            if dead && eligible(d) {
                p.revisions.insert((repo.clone(), d.clone()));
            }
        }
    }
    for (repo, d, mtime) in &listing.links {
        let live = marks
            .get(repo)
            .is_some_and(|rm| !rm.complete || rm.blobs.contains(d));
        if live {
            continue;
        }
        if *mtime > cutoff || !eligible(d) {
            p.kept += 1;
            continue;
        }
        p.links.insert((repo.clone(), d.clone()));
    }
    // What names a digest after the removals: surviving links and revisions, and (also when
    // storage lacks the link) what live manifests reference.
    let mut named: HashSet<(&str, &Digest)> = HashSet::new();
    for (repo, d, _) in &listing.links {
        if !p.links.contains(&(repo.clone(), d.clone())) {
            named.insert((repo.as_str(), d));
        }
    }
    for (repo, d) in listing.revisions.keys() {
        if !p.revisions.contains(&(repo.clone(), d.clone())) {
            named.insert((repo.as_str(), d));
        }
    }
    for (repo, rm) in marks {
        named.extend(rm.blobs.iter().map(|d| (repo.as_str(), d)));
        named.extend(rm.manifests.iter().map(|d| (repo.as_str(), d)));
    }
    let local_copies: HashSet<(&str, &Digest)> = listing
        .local
        .iter()
        .map(|(repo, d, _, _)| (repo.as_str(), d))
        .collect();
    for (repo, d, size, mtime) in &listing.local {
        if named.contains(&(repo.as_str(), d)) {
            continue;
        }
        if *mtime > cutoff || !eligible(d) {
            p.kept += 1;
            p.kept_bytes += size;
            continue;
        }
        p.local.insert((repo.clone(), d.clone()), *size);
    }
    let needed_shared: HashSet<&Digest> = named
        .iter()
        .filter(|key| !local_copies.contains(*key))
        .map(|(_, d)| *d)
        .collect();
    for (d, size, mtime) in &listing.shared {
        if needed_shared.contains(d) {
            continue;
        }
        if *mtime > cutoff || !eligible(d) {
            p.kept += 1;
            p.kept_bytes += size;
            continue;
        }
        p.shared.insert(d.clone(), *size);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc_mark::RepoMarks;
    use crate::paths::tests::d;
    use std::time::Duration;

    #[test]
    fn data_named_by_a_surviving_link_or_a_live_manifest_stays() {
        let old = SystemTime::now() - Duration::from_secs(7200);
        let cutoff = SystemTime::now() - Duration::from_secs(3600);
        let (a, b, c, m) = (d('a'), d('b'), d('c'), d('d'));
        let listing = Listing {
            links: vec![
                ("r".into(), a.clone(), old),
                ("r".into(), b.clone(), old),
                ("q".into(), b.clone(), SystemTime::now()),
            ],
            shared: vec![
                (a.clone(), 1, old),
                (b.clone(), 2, old),
                (c.clone(), 3, old),
                (m.clone(), 4, old),
            ],
            revisions: [(("r".to_owned(), m.clone()), old)].into_iter().collect(),
            ..Listing::default()
        };
        let mut marks = Marks::new();
        let mut rm = RepoMarks {
            complete: true,
            ..RepoMarks::default()
        };
        rm.manifests.insert(m.clone());
        marks.insert("r".into(), rm);
        let everything = plan(&GcOptions::default(), &listing, &marks, cutoff, &|_| true);
        let links: Vec<_> = everything.links.iter().cloned().collect();
        assert_eq!(
            links,
            [("r".to_owned(), a.clone()), ("r".to_owned(), b.clone())]
        );
        // b is still linked (young) from q; m is a live manifest.
        let mut shared: Vec<_> = everything.shared.keys().cloned().collect();
        shared.sort();
        assert_eq!(shared, [a.clone(), c.clone()]);
        assert_eq!(everything.kept, 1);

        let only_c = plan(&GcOptions::default(), &listing, &marks, cutoff, &|x| {
            *x == c
        });
        assert!(only_c.links.is_empty());
        assert_eq!(only_c.shared.keys().collect::<Vec<_>>(), [&c]);
        assert_eq!(only_c.digests().into_iter().collect::<Vec<_>>(), [c]);
        assert!(only_c.clone().within(&Plan::default()).is_empty());
    }
}
