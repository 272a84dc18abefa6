//! Manifest events (for webhooks): after a successful manifest push or delete, and before the
//! response is sent, the handler hands one [`ManifestEvent`] to the configured [`EventSink`].
//!
//! The sink answers once the event is durable, so an acknowledged push always has a durable
//! event. If the sink fails, the manifest change has already happened and is durable: the request
//! still succeeds, and the lost event is logged at error level and counted ([`lost_events`]).

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use ocireg_auth::Caller;
use ocireg_oci::{Digest, Reference, RepoName, Tag};

use crate::AppState;

/// What happened to a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestAction {
    /// A manifest was stored (by tag or by digest).
    Push,
    /// A manifest (by digest) or a tag was deleted.
    Delete,
}

/// One manifest push or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEvent {
    /// Push or delete.
    pub action: ManifestAction,
    /// The repository.
    pub repository: RepoName,
    /// The tag, when the request named one.
    pub tag: Option<Tag>,
    /// The manifest's digest (for a tag delete: the digest the tag pointed to).
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The authenticated user (`None` when auth is off or the caller is anonymous).
    pub actor: Option<String>,
}

/// Receives manifest events; `Ok` only once the event is durable.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Records one event.
    fn manifest_event(&self, ev: ManifestEvent) -> BoxFuture<'_, Result<(), String>>;
}

static LOST: AtomicU64 = AtomicU64::new(0);

/// Events the sink failed to record since the process started.
pub fn lost_events() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// What a push event needs from the manifest body, computed only when events are on.
pub(crate) fn push_details(
    st: &AppState,
    body: &[u8],
    content_type: Option<&str>,
) -> Option<(String, u64)> {
    st.opts.events.as_ref()?;
    let media_type = match ocireg_oci::parse_manifest(body, content_type) {
        Ok(parsed) => parsed.media_type,
        Err(_) => content_type.unwrap_or_default().to_owned(),
    };
    Some((media_type, body.len() as u64))
}

/// A manifest put that succeeded, as its push event names it.
pub(crate) struct Pushed<'a> {
    pub(crate) repo: &'a RepoName,
    pub(crate) reference: &'a Reference,
    pub(crate) digest: &'a Digest,
    pub(crate) caller: Option<&'a Caller>,
}

/// After a successful put (`details` from [`push_details`]).
pub(crate) async fn pushed(st: &AppState, details: Option<(String, u64)>, put: Pushed<'_>) {
    let Some((media_type, size)) = details else {
        return;
    };
    let ev = ManifestEvent {
        action: ManifestAction::Push,
        repository: put.repo.clone(),
        tag: tag_of(put.reference),
        digest: put.digest.clone(),
        media_type,
        size,
        actor: actor(put.caller),
    };
    emit(st, ev).await;
}

/// Before a delete: the manifest the reference names (only when events are on).
pub(crate) async fn before_delete(
    st: &AppState,
    repo: &RepoName,
    reference: &Reference,
) -> Option<(Digest, String, u64)> {
    st.opts.events.as_ref()?;
    let m = st.store.manifest_get(repo, reference).await.ok()?;
    Some((m.digest, m.media_type, m.body.len() as u64))
}

/// After a successful delete.
pub(crate) async fn deleted(
    st: &AppState,
    repo: &RepoName,
    reference: &Reference,
    details: Option<(Digest, String, u64)>,
    caller: Option<&Caller>,
) {
    let Some((digest, media_type, size)) = details else {
        return;
    };
    let ev = ManifestEvent {
        action: ManifestAction::Delete,
        repository: repo.clone(),
        tag: tag_of(reference),
        digest,
        media_type,
        size,
        actor: actor(caller),
    };
    emit(st, ev).await;
}

fn tag_of(reference: &Reference) -> Option<Tag> {
    match reference {
        Reference::Tag(t) => Some(t.clone()),
        Reference::Digest(_) => None,
    }
}

fn actor(caller: Option<&Caller>) -> Option<String> {
    caller.and_then(Caller::user).map(str::to_owned)
}

async fn emit(st: &AppState, ev: ManifestEvent) {
    let Some(sink) = &st.opts.events else {
        return;
    };
    let (repo, digest) = (ev.repository.to_string(), ev.digest.to_string());
    if let Err(err) = sink.manifest_event(ev).await {
        LOST.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            repository = %repo,
            %digest,
            error = %err,
            lost_events = lost_events(),
            "webhook event lost: the manifest change succeeded but its event could not be queued"
        );
    }
}
