//! Artifact workflows over a [`Registry`](crate::Registry): push (naming and auto-tag per
//! `push_policy`, pack, the overwrite rule, streamed upload with a fall-back to a packed file), pull (pull policy, cache, verified
//! download, safe unpack), copy (manifests with their children, blobs mounted or streamed; to and
//! from OCI image layout directories), generic artifacts of plain files (`oras push`/`attach`),
//! tagging without copying and deleting a repository.
//! Callers pass typed requests and a [`Progress`]; they parse arguments and print.
//!
//! The file work (packing, unpacking, the cache) runs in place on the async worker through
//! `tokio::task::block_in_place`, so these functions need tokio's multi-threaded runtime.
//!
//! Failures are [`ClientError`](crate::ClientError)s; a failed step is wrapped in
//! [`ClientError::Context`](crate::ClientError::Context), so an error chain reads
//! `context: cause`.

mod copy;
mod files;
mod layout_copy;
mod manage;
mod naming;
mod progress;
mod pull;
mod push;

use std::error::Error as StdError;

use ocireg_oci::{Reference, RepoName};

pub use copy::{copy_artifact, CopyReport, CopyRequest};
pub use files::{
    describe_files, files_manifest, push_files, FilesReport, FilesRequest, FILE_LAYER_MEDIA_TYPE,
};
pub use layout_copy::{copy_from_layout, copy_to_layout, LayoutCopyReport, RegistrySide};
pub use manage::{
    delete_repository, repo_contents, tag_manifest, RepoContents, TagOutcome, TagReport, TagRequest,
};
pub use naming::{artifact_name, render_tag, sanitize_component, timestamp};
pub use progress::{Meter, NoProgress, Progress};
pub use pull::{prepare_dest, pull_artifact, Connect, PullReport, PullRequest, SetAside};
pub use push::{push_artifact, same_content, PushReport, PushRequest};

/// `host/repo:tag` or `host/repo@digest`: how a reference is named in messages.
pub fn display_reference(host: &str, repo: &RepoName, r: &Reference) -> String {
    match r {
        Reference::Tag(t) => format!("{host}/{repo}:{t}"),
        Reference::Digest(d) => format!("{host}/{repo}@{d}"),
    }
}

/// An error and its sources on one line, `a: b: c`.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
