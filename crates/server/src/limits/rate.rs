//! Per-client request rate limit: one token bucket per client address (refilled at `rps`
//! tokens a second up to `burst`). The map stays bounded: idle (full) buckets are dropped when
//! it grows, and past a hard cap the least recently seen half is forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most client addresses tracked at once.
const MAX_TRACKED: usize = 65_536;

/// Idle buckets are swept at most this often (and whenever the map is full).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Token buckets by client address.
#[derive(Default)]
pub(crate) struct RateLimiter {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: f64, cap: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(cap);
        self.last = now;
    }
}

impl RateLimiter {
    /// Takes one token for `ip`; `Err(wait)` when its bucket is empty (`wait` = until the next
    /// token). `rps` = 0 admits everything.
    pub(crate) fn check(
        &self,
        ip: IpAddr,
        rps: u32,
        burst: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        if rps == 0 {
            return Ok(());
        }
        let rate = f64::from(rps);
        let cap = f64::from(burst.max(1));
        let mut inner = self.inner.lock();
        let due = inner
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY);
        let full = inner.buckets.len() >= MAX_TRACKED && !inner.buckets.contains_key(&ip);
        if due || full {
            inner.last_sweep = Some(now);
            evict(&mut inner.buckets, rate, cap, now);
        }
        let bucket = inner.buckets.entry(ip).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        bucket.refill(rate, cap, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// How many addresses are tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.inner.lock().buckets.len()
    }
}

/// Drops buckets that are full again (idle clients); if the map is still over half the cap,
/// the least recently seen half.
fn evict(map: &mut HashMap<IpAddr, Bucket>, rate: f64, cap: f64, now: Instant) {
    map.retain(|_, b| {
        let mut b = *b;
        b.refill(rate, cap, now);
        b.tokens < cap
    });
    if map.len() >= MAX_TRACKED / 2 {
        let mut seen: Vec<Instant> = map.values().map(|b| b.last).collect();
        let mid = seen.len() / 2;
        let (_, cut, _) = seen.select_nth_unstable(mid);
        let cut = *cut;
        map.retain(|_, b| b.last > cut);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn burst_then_refill() {
        let r = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(r.check(ip(1), 2, 5, t0).is_ok());
        }
        let wait = r.check(ip(1), 2, 5, t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        // Another client has its own bucket.
        assert!(r.check(ip(2), 2, 5, t0).is_ok());
        // Half a second later one token is back (2 per second).
        let t1 = t0 + Duration::from_millis(500);
        assert!(r.check(ip(1), 2, 5, t1).is_ok());
        assert!(r.check(ip(1), 2, 5, t1).is_err());
        // Off admits everything.
        assert!(r.check(ip(1), 0, 5, t1).is_ok());
    }

    #[test]
    fn map_stays_bounded() {
        let r = RateLimiter::default();
        let t0 = Instant::now();
        for n in 0..(MAX_TRACKED as u32 + 10) {
            let _ = r.check(ip(n), 1, 2, t0);
        }
        assert!(r.tracked() <= MAX_TRACKED);
        // Idle buckets are the first to go.
        let later = t0 + SWEEP_EVERY + Duration::from_secs(1);
        let _ = r.check(ip(u32::MAX), 1, 2, later);
        let _ = r.check(ip(u32::MAX - 1), 1, 2, later);
        assert!(r.tracked() < 10, "{}", r.tracked());
    }
}
