//! Manifest events (for webhooks): after a successful manifest push or delete, and before the
//! response is sent, the handler hands one webhook [`Event`] to the configured [`EventSink`].
//!
//! The sink answers once the event is durable, so an acknowledged push always has a durable
//! event. If the sink fails, the manifest change has already happened and is durable: the request
//! still succeeds, and the lost event is logged at error level and counted ([`lost_events`]).

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use ocireg_auth::Caller;
use ocireg_oci::{Digest, Reference, RepoName};
use ocireg_webhook::{Action, Event};

use crate::AppState;

/// Receives manifest events; `Ok` only once the event is durable.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Records one event.
    fn manifest_event(&self, ev: Event) -> BoxFuture<'_, Result<(), String>>;
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
    let manifest = (put.digest, media_type, size);
    let ev = event(Action::Push, put.repo, put.reference, put.caller, manifest);
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
    let ev = event(
        Action::Delete,
        repo,
        reference,
        caller,
        (&digest, media_type, size),
    );
    emit(st, ev).await;
}

/// The event of `action` on the manifest `reference` names in `repo`: its digest, media type
/// and size (for a tag delete: the manifest the tag pointed to).
fn event(
    action: Action,
    repo: &RepoName,
    reference: &Reference,
    caller: Option<&Caller>,
    (digest, media_type, size): (&Digest, String, u64),
) -> Event {
    let mut ev = Event::new(action, repo.as_str(), digest.to_string(), media_type, size);
    ev.tag = match reference {
        Reference::Tag(t) => Some(t.as_str().to_owned()),
        Reference::Digest(_) => None,
    };
    ev.actor = caller.and_then(Caller::user).map(str::to_owned);
    ev
}

async fn emit(st: &AppState, ev: Event) {
    let Some(sink) = &st.opts.events else {
        return;
    };
    let (repo, digest) = (ev.repository.clone(), ev.digest.clone());
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
