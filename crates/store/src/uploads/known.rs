//! On shared storage: the sessions this process has seen, so that what it counts for them
//! (the watchers' per-client counts, the quota ledger's reservations) is given back when they
//! end on another replica.
//!
//! A session started here may be completed or cancelled through another replica, which then
//! tells only its own watchers. So every [`SWEEP`] a task looks at the sessions this process
//! saw but has not touched for a [`SWEEP`], and ends (locally) those whose state is gone from
//! storage: a session that ended elsewhere stops counting here within two sweeps (about a
//! minute). A session that is still open elsewhere keeps counting here until it ends or the
//! server's session TTL forgets it (the server's own expiry), so per-client caps and quota
//! reservations are per replica: across N replicas a client can hold up to N times its cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::Store;

/// How often, and after how long untouched, sessions are checked against storage.
const SWEEP: Duration = Duration::from_secs(30);

/// Sessions checked per sweep at most (one small request each).
const SWEEP_BATCH: usize = 1024;

/// Sessions this process has seen on shared storage: data key → (state key, last touched).
#[derive(Debug, Default)]
pub(crate) struct Known {
    map: parking_lot::Mutex<HashMap<String, (String, Instant)>>,
    sweeping: AtomicBool,
}

impl Known {
    pub(super) fn touch(&self, data: &str, state: &str) {
        self.map
            .lock()
            .insert(data.to_owned(), (state.to_owned(), Instant::now()));
    }

    pub(super) fn remove(&self, data: &str) {
        self.map.lock().remove(data);
    }

    pub(super) fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Sessions untouched since `before`, at most [`SWEEP_BATCH`], least recently touched
    /// first: (data key, state key).
    fn untouched(&self, before: Instant) -> Vec<(String, String)> {
        let map = self.map.lock();
        let mut idle: Vec<(&String, &(String, Instant))> =
            map.iter().filter(|(_, (_, at))| *at <= before).collect();
        idle.sort_by_key(|(_, (_, at))| *at);
        idle.into_iter()
            .take(SWEEP_BATCH)
            .map(|(data, (state, _))| (data.clone(), state.clone()))
            .collect()
    }
}

impl Store {
    /// Starts the sweep task (once per store); it stops when the store is dropped.
    pub(super) fn start_sweeping(&self) {
        let known = &self.inner.sessions.known;
        if known.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let store = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP).await;
                let Some(inner) = store.upgrade() else {
                    return;
                };
                Store { inner }.recheck_uploads(SWEEP).await;
            }
        });
    }

    /// On shared storage: ends, in this process, the upload sessions it has not touched for
    /// `idle` that are gone from storage (completed or cancelled through another replica), so
    /// they stop counting for the [`UploadWatch`]ers and the quota. The store does this by
    /// itself every 30 seconds; nothing to do on unshared storage.
    ///
    /// [`UploadWatch`]: super::UploadWatch
    pub async fn recheck_uploads(&self, idle: Duration) {
        let Some(before) = Instant::now().checked_sub(idle) else {
            return;
        };
        for (data, state) in self.inner.sessions.known.untouched(before) {
            match self.inner.driver.stat(&state).await {
                Err(e) if e.is_not_found() => self.forget_session(&data, false),
                Err(e) => {
                    tracing::debug!(key = %state, error = %e, "checking an upload session failed");
                    return;
                }
                Ok(_) => {}
            }
        }
    }
}
