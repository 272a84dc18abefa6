//! Open upload sessions per client address: a session counts against the address that started
//! it until it is completed, cancelled, found unknown, or untouched for the session TTL. Only the
//! counter lives here (stale sessions in storage are purged by garbage collection); it stays
//! bounded by expiry and a hard cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most sessions tracked at once; past it the least recently used half is forgotten.
const MAX_TRACKED: usize = 262_144;

/// Session key: (repository, session id) — a session is only known through its repository.
type Key = (String, String);

/// The session counter.
#[derive(Default)]
pub(crate) struct UploadSessions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<Key, Entry>,
    /// Sessions (and reservations of sessions being started) per address.
    per_ip: HashMap<IpAddr, u32>,
    last_purge: Option<Instant>,
}

struct Entry {
    ip: IpAddr,
    last: Instant,
}

impl Inner {
    fn decrement(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    fn purge(&mut self, ttl: Duration, now: Instant) {
        self.last_purge = Some(now);
        let mut gone = Vec::new();
        self.sessions.retain(|_, e| {
            let live = now.saturating_duration_since(e.last) < ttl;
            if !live {
                gone.push(e.ip);
            }
            live
        });
        if self.sessions.len() >= MAX_TRACKED {
            let mut seen: Vec<Instant> = self.sessions.values().map(|e| e.last).collect();
            let mid = seen.len() / 2;
            let (_, cut, _) = seen.select_nth_unstable(mid);
            let cut = *cut;
            self.sessions.retain(|_, e| {
                if e.last > cut {
                    true
                } else {
                    gone.push(e.ip);
                    false
                }
            });
        }
        for ip in gone {
            self.decrement(ip);
        }
    }
}

impl UploadSessions {
    /// Reserves one session for `ip` if it holds fewer than `cap` (stale ones expire first).
    /// A reservation is either [`Self::started`] or [`Self::release`]d.
    pub(crate) fn try_reserve(&self, ip: IpAddr, cap: u32, ttl: Duration, now: Instant) -> bool {
        let mut inner = self.inner.lock();
        let due = inner
            .last_purge
            .is_none_or(|t| now.saturating_duration_since(t) >= ttl.min(Duration::from_secs(60)));
        let count = |inner: &Inner| inner.per_ip.get(&ip).copied().unwrap_or(0);
        if due || count(&inner) >= cap || inner.sessions.len() >= MAX_TRACKED {
            inner.purge(ttl, now);
        }
        if count(&inner) >= cap {
            return false;
        }
        *inner.per_ip.entry(ip).or_insert(0) += 1;
        true
    }

    /// A reservation that did not start a session.
    pub(crate) fn release(&self, ip: IpAddr) {
        self.inner.lock().decrement(ip);
    }

    /// A reservation became the session `key`.
    pub(crate) fn started(&self, repo: &str, session: &str, ip: IpAddr, now: Instant) {
        let mut inner = self.inner.lock();
        let old = inner.sessions.insert(
            (repo.to_owned(), session.to_owned()),
            Entry { ip, last: now },
        );
        if let Some(old) = old {
            inner.decrement(old.ip);
        }
    }

    /// The session was used (its TTL starts over).
    pub(crate) fn touched(&self, repo: &str, session: &str, now: Instant) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner
            .sessions
            .get_mut(&(repo.to_owned(), session.to_owned()))
        {
            e.last = now;
        }
    }

    /// The session is over (completed, cancelled or unknown to the store).
    pub(crate) fn ended(&self, repo: &str, session: &str) {
        let mut inner = self.inner.lock();
        if let Some(e) = inner
            .sessions
            .remove(&(repo.to_owned(), session.to_owned()))
        {
            inner.decrement(e.ip);
        }
    }

    /// Sessions counted for `ip`.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> u32 {
        self.inner.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    const TTL: Duration = Duration::from_secs(100);

    #[test]
    fn cap_release_end_and_expiry() {
        let s = UploadSessions::default();
        let t0 = Instant::now();
        assert!(s.try_reserve(ip(1), 2, TTL, t0));
        s.started("r", "a", ip(1), t0);
        assert!(s.try_reserve(ip(1), 2, TTL, t0));
        s.started("r", "b", ip(1), t0);
        assert!(!s.try_reserve(ip(1), 2, TTL, t0));
        // Other clients are not affected.
        assert!(s.try_reserve(ip(2), 2, TTL, t0));
        s.release(ip(2));
        assert_eq!(s.open(ip(2)), 0);
        // Ending a session frees a slot; a foreign repository's key does not.
        s.ended("other", "a");
        assert!(!s.try_reserve(ip(1), 2, TTL, t0));
        s.ended("r", "a");
        assert!(s.try_reserve(ip(1), 2, TTL, t0));
        s.started("r", "c", ip(1), t0);
        // Touched sessions live on; untouched ones expire after the TTL.
        s.touched("r", "c", t0 + Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(101);
        assert!(s.try_reserve(ip(1), 2, TTL, t1));
        assert_eq!(s.open(ip(1)), 2);
        assert!(!s.try_reserve(ip(1), 2, TTL, t1));
    }
}
