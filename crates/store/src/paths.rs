//! The storage layout: every key the registry reads or writes is built (and parsed) here.
//!
//! ```text
//! blobs/<alg>/<hex[0..2]>/<hex>                          blob and manifest bytes, one copy per
//!                                                        digest for the whole registry (dedupe)
//! repositories/<name>/_layers/<alg>/<hex>                blob link: "<digest>"
//! repositories/<name>/_blobs/<alg>/<hex>                 the repository's own copy of the bytes
//!                                                        (written when dedupe is off)
//! repositories/<name>/_manifests/revisions/<alg>/<hex>   manifest revision: "<digest>\n<media type>\n"
//! repositories/<name>/_manifests/tags/<tag>              tag: "<digest>"
//! repositories/<name>/_referrers/<alg>/<hex>/<ralg>/<rhex>
//!                                                        manifest <ralg:rhex> has subject <alg:hex>
//! repositories/<name>/_uploads/<id>                      upload session: the bytes so far
//!                                                        (resumable; created empty on start)
//! repositories/<name>/_uploads/<id>/state                shared storage only (replicas): the
//!                                                        session's offset, hash state and
//!                                                        claim (see uploads/shared.rs)
//! quarantine/<unix seconds>/<original key>               data scrub found corrupt (never read)
//! _gc/lease                                              shared storage only: the replica running
//!                                                        garbage collection, until when (JSON)
//! _gc/tombstones/<alg>/<hex>                             shared storage only: a digest garbage
//!                                                        collection means to remove (JSON: run,
//!                                                        state); see gc_shared.rs
//! .journal                                               filesystem driver only: write-ahead
//!                                                        journal of `put_ordered` and
//!                                                        `publish` (a dot name, never a key;
//!                                                        see driver/fs/journal.rs)
//! .lock                                                  filesystem driver only: held (flock)
//!                                                        by the process that has the root open
//! ```
//!
//! Repository name components never start with `_` (name grammar), so the first `/_` in a key
//! ends the name. Tags never contain `/` or start with `.`. Every link encodes its digests in
//! its key, so rebuilding the index at startup lists keys and reads only the tag files.
//!
//! Differences from CNCF Distribution, and why:
//! - Data and links are files named after the digest (`.../<hex>`), not `.../<hex>/data` or
//!   `.../<hex>/link`: on a filesystem a new directory per object costs a `mkdir` plus an
//!   fsync of its parent on every write; the 256 `<hex[0..2]>` fan-out directories (and the
//!   per-repository directories) are created once.
//! - One current tag file, no tag history index: a tag move is one atomic replace.
//! - An upload session is one file, not a directory with `data` and `startedat`: starting one
//!   is one file creation (a `mkdir` and a second file would cost every push), and
//!   completing it moves that file into place with nothing left to remove.
//!
//! Where data lives: a repository reads a digest from its own `_blobs/` copy when it has one,
//! else from the shared `blobs/` tree. With dedupe on, writes go to `blobs/` (one copy per
//! digest); with dedupe off, to `_blobs/` of the repository. Semantic deletes (blob unlink,
//! manifest delete) remove links only; garbage collection marks from tags, revisions,
//! referrers and layer links and sweeps unreferenced data in both places: shared data
//! referenced by no repository, and a repository's own data referenced by none of its links.
//!
//! # Crash safety and the number of fsyncs per manifest put
//!
//! On a filesystem every durable write costs journal commits, and a manifest put by tag
//! writes three objects: the manifest bytes, the revision link and the tag (plus a referrer
//! link for a manifest with a subject). Written one `put_content` after another that is four
//! sequential commits (each is temp fsync, rename, directory fsync). The only ordering that
//! matters is that the bytes are durably visible before any link names them, so the put uses
//! [`crate::Driver::put_ordered`] with two groups — `[bytes]`, `[revision, tag, referrer]`.
//! The filesystem driver without its journal runs that as three commits:
//!
//! 1. all temp files (bytes and links) written and fsynced concurrently: one journal commit
//!    (concurrent fsyncs, also those of other clients, join the same commit);
//! 2. the bytes renamed into place, their directory fsynced;
//! 3. the links renamed into place, their directories fsynced concurrently.
//!
//! With its write-ahead journal (Linux, the default) it is one: the put's files are appended
//! as one record to `.journal` and that file is `fdatasync`ed (one sync shared by concurrent
//! puts), then the files are written in group order without syncs; a periodic checkpoint
//! (`syncfs`, then the journal is emptied) makes them durable, and opening the driver after a
//! crash replays the journal.
//!
//! The bytes group is skipped when the digest's bytes already exist, and the tag when it
//! already names the digest. Fewer syncs without the journal would need relying on a specific
//! filesystem's metadata ordering (renaming the links in step 2 is safe on ext4 and XFS, whose
//! journals commit metadata in order, but not by POSIX), which this store does not do. (The
//! one filesystem-specific shortcut is in publishing a pushed blob: on ext4, XFS and btrfs a
//! file's `fdatasync` is known to make its new name durable, so the upload file's directory
//! is not synced there; see `driver/fs/journal.rs`.)
//!
//! A crash during step 3 can leave a tag or a referrer link without its revision link (the
//! put was not acknowledged, so either outcome is allowed); [`crate::Store::open`] repairs
//! that by restoring the revision (the bytes are durable) or dropping a dangling referrer
//! link. Deleting a manifest removes its tags first, then the revision, then the referrer
//! link, so a crash mid-delete leaves either a consistent untagged manifest or a dangling
//! referrer link that open removes. Blob bytes are always durable (writer fsync, or rename +
//! directory fsync) before their link is written, and the link before the put is acknowledged.

use ocireg_oci::{Algorithm, Digest};

/// Top-level prefix of shared blob data.
pub const BLOBS: &str = "blobs";
/// Top-level prefix of repositories.
pub const REPOSITORIES: &str = "repositories";

/// Where a repository's copy of a digest's bytes lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLoc {
    /// The shared, deduplicated `blobs/` tree.
    Shared,
    /// The repository's own `_blobs/` copy.
    Local,
}

/// `blobs/<alg>/<hex[0..2]>/<hex>`.
pub fn shared_data(digest: &Digest) -> String {
    let hex = digest.hex();
    let fan = hex.get(..2).unwrap_or(&hex);
    format!("{BLOBS}/{}/{fan}/{hex}", digest.algorithm())
}

/// `repositories/<name>`.
pub fn repo_root(repo: &str) -> String {
    format!("{REPOSITORIES}/{repo}")
}

/// `repositories/<name>/_blobs/<alg>/<hex>`.
pub fn local_data(repo: &str, digest: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{repo}/_blobs/{}/{}",
        digest.algorithm(),
        digest.hex()
    )
}

/// The data key of `digest` for `repo` at `loc`.
pub fn data(repo: &str, digest: &Digest, loc: DataLoc) -> String {
    match loc {
        DataLoc::Shared => shared_data(digest),
        DataLoc::Local => local_data(repo, digest),
    }
}

/// `repositories/<name>/_layers/<alg>/<hex>`.
pub fn layer_link(repo: &str, digest: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{repo}/_layers/{}/{}",
        digest.algorithm(),
        digest.hex()
    )
}

/// `repositories/<name>/_manifests/revisions/<alg>/<hex>`.
pub fn revision_link(repo: &str, digest: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{repo}/_manifests/revisions/{}/{}",
        digest.algorithm(),
        digest.hex()
    )
}

/// `repositories/<name>/_manifests/tags/<tag>`.
pub fn tag_link(repo: &str, tag: &str) -> String {
    format!("{REPOSITORIES}/{repo}/_manifests/tags/{tag}")
}

/// `repositories/<name>/_manifests/tags`: the prefix of the repository's tags.
pub fn tag_dir(repo: &str) -> String {
    format!("{REPOSITORIES}/{repo}/_manifests/tags")
}

/// `repositories/<name>/_referrers/<alg>/<hex>`: the prefix of the subject's referrer links.
pub fn referrers_of(repo: &str, subject: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{repo}/_referrers/{}/{}",
        subject.algorithm(),
        subject.hex()
    )
}

/// `repositories/<name>/_referrers/<alg>/<hex>/<ralg>/<rhex>`.
pub fn referrer_link(repo: &str, subject: &Digest, referrer: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{repo}/_referrers/{}/{}/{}/{}",
        subject.algorithm(),
        subject.hex(),
        referrer.algorithm(),
        referrer.hex()
    )
}

/// `repositories/<name>/_uploads/<id>`: an upload session's bytes.
pub fn upload(repo: &str, id: &str) -> String {
    format!("{REPOSITORIES}/{repo}/_uploads/{id}")
}

/// `repositories/<name>/_uploads/<id>/state`: an upload session's state on shared storage
/// (an object store, where a key may also be a prefix; never written on a filesystem). Not
/// classified by [`parse_repo_key`]: it belongs to the session and goes with it.
pub fn upload_state(repo: &str, id: &str) -> String {
    format!("{}/state", upload(repo, id))
}

/// Content of a revision link.
pub fn revision_content(digest: &Digest, media_type: &str) -> String {
    format!("{digest}\n{media_type}\n")
}

/// Top-level prefix of quarantined data (objects scrub found corrupt); never read again.
pub const QUARANTINE: &str = "quarantine";

/// `quarantine/<unix seconds>/<original key>`: where scrub moves a corrupt data object. Keys
/// under it are outside `blobs/` and `repositories/`, so nothing serves, indexes or
/// garbage-collects them; an operator inspects and removes them by hand.
pub fn quarantine(key: &str, unix_secs: u64) -> String {
    format!("{QUARANTINE}/{unix_secs}/{key}")
}

/// Top-level prefix of garbage collection's coordination objects on shared storage (replicas
/// on one bucket). Never listed by the index, quota or scrub, which walk only `blobs/` and
/// `repositories/`.
pub const GC: &str = "_gc";

/// `_gc/lease`: which replica runs garbage collection, and until when.
pub fn gc_lease() -> String {
    format!("{GC}/lease")
}

/// Prefix of the tombstones: `_gc/tombstones`.
pub fn gc_tombstones() -> String {
    format!("{GC}/tombstones")
}

/// `_gc/tombstones/<alg>/<hex>`: garbage collection means to remove what names `digest`.
pub fn gc_tombstone(digest: &Digest) -> String {
    format!(
        "{}/{}/{}",
        gc_tombstones(),
        digest.algorithm(),
        digest.hex()
    )
}

/// Parses a tombstone key into its digest.
pub fn parse_gc_tombstone(key: &str) -> Option<Digest> {
    let rest = key.strip_prefix(&gc_tombstones())?.strip_prefix('/')?;
    let (alg, hex) = rest.split_once('/')?;
    if hex.contains('/') {
        return None;
    }
    digest_of(alg, hex)
}

/// Parses a shared data key `blobs/<alg>/<hex[0..2]>/<hex>` into its digest.
pub fn parse_shared_data(key: &str) -> Option<Digest> {
    let rest = key.strip_prefix(BLOBS)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [alg, fan, hex] if hex.get(..2) == Some(*fan) => digest_of(alg, hex),
        _ => None,
    }
}

/// Parses a revision link's content into (digest, media type).
pub fn parse_revision_content(content: &[u8]) -> Option<(Digest, String)> {
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines();
    let digest = lines.next()?.trim().parse().ok()?;
    let media_type = lines.next().unwrap_or("").trim().to_owned();
    Some((digest, media_type))
}

/// Parses a link holding a single digest.
pub fn parse_digest_content(content: &[u8]) -> Option<Digest> {
    std::str::from_utf8(content).ok()?.trim().parse().ok()
}

/// What a key under `repositories/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoKey {
    /// A blob link.
    Layer {
        /// Repository name.
        repo: String,
        /// Linked digest.
        digest: Digest,
    },
    /// The repository's own copy of a digest's bytes.
    LocalData {
        /// Repository name.
        repo: String,
        /// The bytes' digest.
        digest: Digest,
    },
    /// A manifest revision link.
    Revision {
        /// Repository name.
        repo: String,
        /// Manifest digest.
        digest: Digest,
    },
    /// A tag.
    Tag {
        /// Repository name.
        repo: String,
        /// Tag name.
        tag: String,
    },
    /// A referrer link.
    Referrer {
        /// Repository name.
        repo: String,
        /// The subject digest.
        subject: Digest,
        /// The referring manifest.
        referrer: Digest,
    },
    /// An upload session's bytes.
    Upload {
        /// Repository name.
        repo: String,
        /// Session id.
        id: String,
    },
}

fn digest_of(alg: &str, hex: &str) -> Option<Digest> {
    let alg: Algorithm = alg.parse().ok()?;
    Digest::from_parts(alg, hex).ok()
}

/// Classifies a key under `repositories/`; `None` for anything not in the layout.
pub fn parse_repo_key(key: &str) -> Option<RepoKey> {
    let rest = key.strip_prefix(REPOSITORIES)?.strip_prefix('/')?;
    let split = rest.find("/_")?;
    let (repo, tail) = (rest[..split].to_owned(), &rest[split + 1..]);
    let parts: Vec<&str> = tail.split('/').collect();
    match parts.as_slice() {
        ["_layers", alg, hex] => Some(RepoKey::Layer {
            repo,
            digest: digest_of(alg, hex)?,
        }),
        ["_blobs", alg, hex] => Some(RepoKey::LocalData {
            repo,
            digest: digest_of(alg, hex)?,
        }),
        ["_manifests", "revisions", alg, hex] => Some(RepoKey::Revision {
            repo,
            digest: digest_of(alg, hex)?,
        }),
        ["_manifests", "tags", tag] => Some(RepoKey::Tag {
            repo,
            tag: (*tag).to_owned(),
        }),
        ["_referrers", salg, shex, ralg, rhex] => Some(RepoKey::Referrer {
            repo,
            subject: digest_of(salg, shex)?,
            referrer: digest_of(ralg, rhex)?,
        }),
        ["_uploads", id] => Some(RepoKey::Upload {
            repo,
            id: (*id).to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A digest whose hex is `c` 64 times (tests of this crate).
    pub(crate) fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn keys_round_trip_through_the_parser() {
        let (a, b) = (d('a'), d('b'));
        let repo = "team/app";
        let cases = [
            (
                layer_link(repo, &a),
                RepoKey::Layer {
                    repo: repo.into(),
                    digest: a.clone(),
                },
            ),
            (
                local_data(repo, &a),
                RepoKey::LocalData {
                    repo: repo.into(),
                    digest: a.clone(),
                },
            ),
            (
                revision_link(repo, &b),
                RepoKey::Revision {
                    repo: repo.into(),
                    digest: b.clone(),
                },
            ),
            (
                tag_link(repo, "v1.0"),
                RepoKey::Tag {
                    repo: repo.into(),
                    tag: "v1.0".into(),
                },
            ),
            (
                referrer_link(repo, &a, &b),
                RepoKey::Referrer {
                    repo: repo.into(),
                    subject: a.clone(),
                    referrer: b.clone(),
                },
            ),
            (
                upload(repo, "0123"),
                RepoKey::Upload {
                    repo: repo.into(),
                    id: "0123".into(),
                },
            ),
        ];
        for (key, expected) in cases {
            assert_eq!(parse_repo_key(&key), Some(expected), "{key}");
        }
        assert_eq!(
            shared_data(&a),
            format!("blobs/sha256/aa/{}", "a".repeat(64))
        );
        assert_eq!(parse_repo_key("repositories/x/_layers/md5/abc"), None);
        assert_eq!(parse_repo_key("repositories/x/other"), None);
        assert_eq!(
            parse_repo_key(&format!("{}/startedat", upload(repo, "0123"))),
            None
        );
        assert_eq!(
            upload_state(repo, "0123"),
            format!("{}/state", upload(repo, "0123"))
        );
        assert_eq!(parse_repo_key(&upload_state(repo, "0123")), None);
        assert_eq!(parse_repo_key("blobs/sha256/aa/x"), None);
        let tags = format!("{}/", tag_dir(repo));
        assert_eq!(tag_link(repo, "v1").strip_prefix(&tags), Some("v1"));
        let of_a = format!("{}/", referrers_of(repo, &a));
        assert!(referrer_link(repo, &a, &b).starts_with(&of_a));
        assert!(!referrer_link(repo, &b, &a).starts_with(&of_a));
    }

    #[test]
    fn shared_data_keys_parse_and_quarantine_keys_stay_outside() {
        let a = d('a');
        assert_eq!(parse_shared_data(&shared_data(&a)), Some(a.clone()));
        assert_eq!(parse_shared_data("blobs/sha256/bb/aaaa"), None);
        assert_eq!(parse_shared_data("blobs/sha256/aa"), None);
        let q = quarantine(&shared_data(&a), 17);
        assert_eq!(q, format!("quarantine/17/{}", shared_data(&a)));
        assert_eq!(parse_shared_data(&q), None);
        assert_eq!(parse_repo_key(&quarantine(&local_data("r", &a), 1)), None);
    }

    #[test]
    fn tombstone_keys_round_trip_and_stay_outside_the_registry() {
        let a = d('a');
        let key = gc_tombstone(&a);
        assert_eq!(key, format!("_gc/tombstones/sha256/{}", "a".repeat(64)));
        assert_eq!(parse_gc_tombstone(&key), Some(a.clone()));
        assert_eq!(parse_gc_tombstone(&format!("{key}/x")), None);
        assert_eq!(parse_gc_tombstone(&gc_lease()), None);
        assert_eq!(parse_repo_key(&key), None);
        assert_eq!(parse_shared_data(&key), None);
        assert!(crate::driver::validate_key(&key).is_ok());
        assert!(crate::driver::validate_key(&gc_lease()).is_ok());
    }

    #[test]
    fn revision_content_round_trips() {
        let a = d('c');
        let text = revision_content(&a, "application/vnd.oci.image.index.v1+json");
        assert_eq!(
            parse_revision_content(text.as_bytes()),
            Some((a, "application/vnd.oci.image.index.v1+json".to_owned()))
        );
        assert_eq!(parse_revision_content(b"garbage"), None);
    }
}
