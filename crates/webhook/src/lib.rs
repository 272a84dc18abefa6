//! Webhook notifications for the built-in registry: every manifest push and delete becomes one
//! JSON [`Event`], written to a durable on-disk queue and delivered to each configured endpoint
//! with retries and exponential backoff.
//!
//! # The queue on disk
//!
//! `dir` holds:
//!
//! - `journal/<segment>.log`: an append-only log split into numbered segments. A record is
//!   `len: u32 LE | check: first 8 bytes of SHA-256(payload) | payload`, the payload being the exact
//!   JSON body that is POSTed (so every redelivery sends identical bytes).
//! - `cursors/<key>.json`: per endpoint (key = hash of its URL), the position of the next record to
//!   deliver. Written with the store's discipline: temp file, fsync, rename, directory fsync.
//! - `lock`: an exclusive `flock` so only one [`Notifier`] uses the directory.
//!
//! Why a log and not one file per event: [`Notifier::enqueue`] returns only once its event is on
//! disk, and a single writer task appends every event waiting at that moment and then issues one
//! `fdatasync` for all of them (group commit). Under concurrent pushes this is one journal commit
//! for many events instead of two fsyncs (file + directory) per event.
//!
//! Crash safety: a record is acknowledged only after the fsync that covers it, so a crash can tear
//! only records nobody was told about. On [`Notifier::open`] every segment is scanned and cut back
//! to its last complete, checksummed record; stray files (temp files of an interrupted cursor
//! write, anything that is not `<20 digits>.log`) are ignored or removed. Each open starts a new
//! segment, so a segment that might have been torn is never appended to again.
//!
//! # Delivery
//!
//! One task per endpoint reads the journal from its own cursor, so a failing endpoint never holds
//! back the others. Within an endpoint delivery is strictly in queue order (hence in order per
//! repository): an event that fails blocks the later ones for that endpoint and is retried after
//! `retry_delay × 2^n` (n = failures so far), capped at `retry_max_delay`, until the endpoint
//! answers 2xx. Any other answer (3xx included: redirects are not followed), a connection error or
//! a timeout counts as a failure. The cursor advances after each 2xx.
//!
//! A segment is deleted once every endpoint's cursor has moved past it, i.e. an event is removed
//! once every endpoint has acknowledged it.
//!
//! Delivery is at least once: a crash between an endpoint's 2xx and the cursor write redelivers
//! that event after a restart. Every event carries a unique id (the `X-Ocireg-Event-Id` header and
//! the `event.id` field): receivers deduplicate by it.

mod cursor;
mod deliver;
mod event;
mod journal;
mod notifier;

use std::path::PathBuf;

pub use event::{
    sign, verify, Action, Envelope, Event, ATTEMPT_HEADER, EVENT_ID_HEADER, PAYLOAD_VERSION,
    SIGNATURE_HEADER,
};
pub use notifier::{Notifier, NotifierOptions, NotifierStats, Secret};
pub use url::Url;

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A file or directory of the queue could not be read or written.
    #[error("webhook queue: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another notifier (this process or another one) holds the queue directory.
    #[error("webhook queue {0} is in use by another process")]
    Locked(PathBuf),
    /// The options are unusable.
    #[error("webhook options: {0}")]
    Options(String),
    /// The notifier has been shut down (or its writer stopped).
    #[error("the webhook notifier is shut down")]
    Closed,
    /// An event could not be encoded as JSON.
    #[error("encoding a webhook event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, WebhookError>;

impl WebhookError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
