//! Artifact workflows over a [`Registry`](crate::Registry): push (naming and auto-tag per
//! `push_policy`, pack, the overwrite rule, streamed upload with a fall-back to a packed file), pull (pull policy, cache, verified
//! download, safe unpack) and copy (manifests with their children, blobs mounted or streamed).
//! Callers pass typed requests and a [`Progress`]; they parse arguments and print.
//!
//! The file work (packing, unpacking, the cache) runs in place on the async worker through
//! `tokio::task::block_in_place`, so these functions need tokio's multi-threaded runtime.

mod copy;
mod naming;
mod progress;
mod pull;
mod push;

use std::error::Error as StdError;

use ocireg_oci::{Digest, Reference, RepoName};

use crate::artifact::ArtifactError;
use crate::error::ClientError;

pub use copy::{copy_artifact, CopyReport, CopyRequest};
pub use naming::{artifact_name, render_tag, sanitize_component, timestamp};
pub use progress::{Meter, NoProgress, Progress};
pub use pull::{prepare_dest, pull_artifact, Connect, PullReport, PullRequest};
pub use push::{push_artifact, same_content, PushReport, PushRequest};

/// A boxed error from the caller (connecting to a registry).
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a workflow failed. Variants with a context show it and keep the cause as their source,
/// so an error chain reads `context: cause`.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A registry request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A registry request failed while doing `context`.
    #[error("{context}")]
    ClientAt {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: ClientError,
    },
    /// Packing, unpacking or the cache failed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// Packing, unpacking or the cache failed while doing `context`.
    #[error("{context}")]
    ArtifactAt {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: ArtifactError,
    },
    /// The tag holds different content and `push_policy.allow_overwrite` is false.
    #[error("{shown} already points to {existing} with different content and push_policy.allow_overwrite is false; push under another tag, or set allow_overwrite = true")]
    TagInUse {
        /// The destination, `host/repo:tag`.
        shown: String,
        /// What the tag points to.
        existing: Digest,
    },
    /// The caller could not provide a registry client.
    #[error(transparent)]
    Connect(BoxError),
    /// What the registry served (or the packer produced) does not fit the workflow.
    #[error("{0}")]
    Invalid(String),
    /// A local file operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A background task (packing, unpacking, a download) did not run to its end.
    #[error("{context}")]
    Task {
        /// Which task.
        context: String,
        /// Why it ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl WorkflowError {
    fn client(context: impl Into<String>, source: ClientError) -> WorkflowError {
        WorkflowError::ClientAt {
            context: context.into(),
            source,
        }
    }

    fn io(context: impl Into<String>, source: std::io::Error) -> WorkflowError {
        WorkflowError::Io {
            context: context.into(),
            source,
        }
    }

    fn task(context: &str, source: tokio::task::JoinError) -> WorkflowError {
        WorkflowError::Task {
            context: context.to_owned(),
            source,
        }
    }
}

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
