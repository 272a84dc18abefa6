//! Settings of a running server that can be swapped without dropping connections (SIGHUP
//! reload): authentication, authorization and the per-request limits are read from the current
//! snapshot at the start of every request; the per-client counters survive a swap.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::limits::{RateLimiter, UploadSessions};
use crate::{AppState, ServerOptions};

/// Handle to a running server's swappable settings and per-client state. Cloning shares it;
/// put one in [`ServerOptions::reload`], keep a clone, and call [`Reloader::reload`]. (Swapped-in
/// options point back at their reloader, so a reloaded server's state lives until the process
/// exits; it is meant for the one long-running server of a process.)
#[derive(Clone, Default)]
pub struct Reloader {
    inner: Arc<Live>,
}

#[derive(Default)]
struct Live {
    /// The options swapped in by the last reload (`None` = the ones the app started with).
    opts: RwLock<Option<Arc<ServerOptions>>>,
    /// Bumped to make the TLS layer reload its certificate files on the next connection.
    tls_generation: Arc<AtomicU64>,
    rate: RateLimiter,
    sessions: Arc<UploadSessions>,
    reloads: AtomicU64,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("reloads", &self.inner.reloads.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Swaps in new settings: auth (users, ACL, admins, token key), manifest size, name length,
    /// upload-session and rate limits apply from the next request on; in-flight requests finish
    /// with the old ones. Connection-level settings (listen address, timeouts, request-head size,
    /// TLS) keep their start-up values whatever `opts` says (pass the running `tls`, which the
    /// handlers read to build URLs). Also forces a TLS certificate reload check.
    pub fn reload(&self, mut opts: ServerOptions) {
        let mut current = self.inner.opts.write();
        opts.reload = self.clone();
        *current = Some(Arc::new(opts));
        drop(current);
        self.inner.reloads.fetch_add(1, Ordering::Relaxed);
        self.recheck_tls();
    }

    /// Makes the TLS layer load the certificate files again on the next connection (a broken
    /// set is logged and the previous one kept).
    pub fn recheck_tls(&self) {
        self.inner.tls_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times settings were swapped in.
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }

    pub(crate) fn tls_generation(&self) -> Arc<AtomicU64> {
        self.inner.tls_generation.clone()
    }

    pub(crate) fn rate(&self) -> &RateLimiter {
        &self.inner.rate
    }

    pub(crate) fn sessions(&self) -> &Arc<UploadSessions> {
        &self.inner.sessions
    }

    fn current(&self) -> Option<Arc<ServerOptions>> {
        self.inner.opts.read().clone()
    }
}

impl AppState {
    /// This state with the options of the last reload (if any).
    pub(crate) fn current(&self) -> AppState {
        match self.opts.reload.current() {
            None => self.clone(),
            Some(opts) => {
                let mut st = self.clone();
                st.opts = opts;
                st
            }
        }
    }
}
