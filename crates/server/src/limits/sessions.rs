//! Open upload sessions per client. The store tells this table when a session opens (with the
//! client that started it), is used, and ends — completed, cancelled, discarded, purged by
//! garbage collection or gone from storage — so it never guesses from responses. A session
//! also stops counting against its client once untouched for the session TTL; the table stays
//! bounded by that expiry and a hard cap.
//!
//! A session start first reserves a slot for its client, so parallel starts cannot pass the
//! cap together; the slot is given back when the request is answered. A session opened while
//! its client holds a reservation takes that reservation over (counts are per client, so which
//! of a client's reservations it takes does not matter).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocireg_store::UploadWatch;
use parking_lot::Mutex;

/// Most sessions tracked at once; past it the least recently used half is forgotten.
const MAX_TRACKED: usize = 262_144;

/// The session table.
#[derive(Default)]
pub(crate) struct UploadSessions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Open sessions by the store's session key.
    sessions: HashMap<String, Entry>,
    /// Per client.
    per_owner: HashMap<String, Count>,
    last_purge: Option<Instant>,
}

/// What a client holds.
#[derive(Default)]
struct Count {
    /// Open sessions plus pending reservations.
    held: u32,
    /// Reservations of session starts not yet answered.
    pending: u32,
}

struct Entry {
    owner: String,
    last: Instant,
}

impl Inner {
    /// One of `owner`'s sessions is over.
    fn decrement(&mut self, owner: &str) {
        if let Some(c) = self.per_owner.get_mut(owner) {
            c.held = c.held.saturating_sub(1);
            if c.held == 0 {
                self.per_owner.remove(owner);
            }
        }
    }

    fn purge(&mut self, ttl: Duration, now: Instant) {
        self.last_purge = Some(now);
        let mut gone = Vec::new();
        self.sessions.retain(|_, e| {
            let live = now.saturating_duration_since(e.last) < ttl;
            if !live {
                gone.push(std::mem::take(&mut e.owner));
            }
            live
        });
        for owner in gone {
            self.decrement(&owner);
        }
        self.shed();
    }

    /// At [`MAX_TRACKED`] sessions, forgets the least recently used half.
    fn shed(&mut self) {
        if self.sessions.len() < MAX_TRACKED {
            return;
        }
        let mut seen: Vec<Instant> = self.sessions.values().map(|e| e.last).collect();
        let mid = seen.len() / 2;
        let (_, cut, _) = seen.select_nth_unstable(mid);
        let cut = *cut;
        let mut gone = Vec::new();
        self.sessions.retain(|_, e| {
            if e.last > cut {
                true
            } else {
                gone.push(std::mem::take(&mut e.owner));
                false
            }
        });
        for owner in gone {
            self.decrement(&owner);
        }
    }
}

impl UploadSessions {
    /// Reserves one session for `owner` if it holds fewer than `cap` (stale ones expire
    /// first). The reservation is given back when the returned slot is dropped.
    pub(crate) fn try_reserve(
        self: &Arc<Self>,
        owner: &str,
        cap: u32,
        ttl: Duration,
        now: Instant,
    ) -> Option<Reservation> {
        let mut inner = self.inner.lock();
        let due = inner
            .last_purge
            .is_none_or(|t| now.saturating_duration_since(t) >= ttl.min(Duration::from_secs(60)));
        let held = |inner: &Inner| inner.per_owner.get(owner).map_or(0, |c| c.held);
        if due || held(&inner) >= cap || inner.sessions.len() >= MAX_TRACKED {
            inner.purge(ttl, now);
        }
        if held(&inner) >= cap {
            return None;
        }
        let c = inner.per_owner.entry(owner.to_owned()).or_default();
        c.held += 1;
        c.pending += 1;
        Some(Reservation {
            sessions: Arc::clone(self),
            owner: owner.to_owned(),
        })
    }

    /// Sessions and reservations counted for `owner`.
    #[cfg(test)]
    fn held(&self, owner: &str) -> u32 {
        self.inner.lock().per_owner.get(owner).map_or(0, |c| c.held)
    }

    fn opened_at(&self, session: &str, owner: &str, now: Instant) {
        let mut inner = self.inner.lock();
        // Sessions are tracked even while no cap is set (it may be set by a reload).
        inner.shed();
        let c = inner.per_owner.entry(owner.to_owned()).or_default();
        if c.pending > 0 {
            c.pending -= 1;
        } else {
            c.held += 1;
        }
        let entry = Entry {
            owner: owner.to_owned(),
            last: now,
        };
        if let Some(old) = inner.sessions.insert(session.to_owned(), entry) {
            inner.decrement(&old.owner);
        }
    }

    fn used_at(&self, session: &str, now: Instant) {
        if let Some(e) = self.inner.lock().sessions.get_mut(session) {
            e.last = now;
        }
    }
}

impl UploadWatch for UploadSessions {
    fn opened(&self, session: &str, owner: &str) {
        self.opened_at(session, owner, Instant::now());
    }

    fn used(&self, session: &str) {
        self.used_at(session, Instant::now());
    }

    fn ended(&self, session: &str) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner.sessions.remove(session) {
            inner.decrement(&e.owner);
        }
    }
}

/// A client's reserved session slot, given back when dropped (the session it started, if
/// any, holds a slot of its own by then).
pub(crate) struct Reservation {
    sessions: Arc<UploadSessions>,
    owner: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut inner = self.sessions.inner.lock();
        let Some(c) = inner.per_owner.get_mut(&self.owner) else {
            return;
        };
        // Zero pending: an opened session took this reservation over.
        if c.pending > 0 {
            c.pending -= 1;
            inner.decrement(&self.owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(100);

    #[test]
    fn cap_release_end_and_expiry() {
        let s = Arc::new(UploadSessions::default());
        let t0 = Instant::now();
        let r = s.try_reserve("a", 2, TTL, t0).unwrap();
        s.opened_at("r/1", "a", t0);
        drop(r);
        assert_eq!(s.held("a"), 1);
        let r = s.try_reserve("a", 2, TTL, t0).unwrap();
        s.opened_at("r/2", "a", t0);
        assert!(s.try_reserve("a", 2, TTL, t0).is_none());
        drop(r);
        assert!(s.try_reserve("a", 2, TTL, t0).is_none());
        // Other clients are not affected; a start that opened nothing gives its slot back.
        drop(s.try_reserve("b", 2, TTL, t0).unwrap());
        assert_eq!(s.held("b"), 0);
        // Ending a session frees a slot; a key that is not open does not.
        s.ended("other/1");
        assert!(s.try_reserve("a", 2, TTL, t0).is_none());
        s.ended("r/1");
        let r = s.try_reserve("a", 2, TTL, t0).unwrap();
        s.opened_at("r/3", "a", t0);
        drop(r);
        // Used sessions live on; untouched ones expire after the TTL.
        s.used_at("r/3", t0 + Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(101);
        let r = s.try_reserve("a", 2, TTL, t1).unwrap();
        assert_eq!(s.held("a"), 2);
        assert!(s.try_reserve("a", 2, TTL, t1).is_none());
        drop(r);
        assert_eq!(s.held("a"), 1);
    }

    #[test]
    fn parallel_starts_share_the_cap() {
        let s = Arc::new(UploadSessions::default());
        let t0 = Instant::now();
        let first = s.try_reserve("a", 2, TTL, t0).unwrap();
        let second = s.try_reserve("a", 2, TTL, t0).unwrap();
        assert!(s.try_reserve("a", 2, TTL, t0).is_none());
        // The first opens a session, the second fails; answered in either order, one counts.
        s.opened_at("r/1", "a", t0);
        drop(first);
        drop(second);
        assert_eq!(s.held("a"), 1);
        s.ended("r/1");
        assert_eq!(s.held("a"), 0);
    }
}
