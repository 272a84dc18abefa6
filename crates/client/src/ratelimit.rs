//! Token buckets: one over all requests, one for pulls, one for pushes.
//!
//! Each request reserves one token from the buckets that apply, in order; a bucket may go into
//! debt, and the reserving request sleeps until its token would have been refilled. Waiters are
//! thus served in arrival order and the long-run rate never exceeds the configured one.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use ocireg_config::RateView;

/// What kind of request is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Reads of content and listings.
    Pull,
    /// Uploads, manifest writes, deletes.
    Push,
    /// Anything else (`/v2/` ping): only the global bucket.
    Other,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

/// One token bucket of `rate` tokens per second and `capacity` tokens.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    state: Mutex<BucketState>,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, capacity: f64) -> TokenBucket {
        let capacity = capacity.max(1.0);
        TokenBucket {
            rate: rate.max(f64::MIN_POSITIVE),
            capacity,
            state: Mutex::new(BucketState {
                tokens: capacity,
                last: Instant::now(),
            }),
        }
    }

    /// Reserves one token; returns how long the caller must wait before using it.
    async fn reserve(&self) -> Duration {
        let mut s = self.state.lock().await;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.capacity);
        s.last = now;
        s.tokens -= 1.0;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / self.rate)
        }
    }

    /// Waits for one token.
    pub(crate) async fn acquire(&self) {
        let wait = self.reserve().await;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The buckets of one registry handle.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    all: Option<TokenBucket>,
    pull: Option<TokenBucket>,
    push: Option<TokenBucket>,
}

impl Limiter {
    /// Buckets for `rate` (none at all for `None`).
    pub(crate) fn new(rate: Option<&RateView>) -> Limiter {
        let Some(r) = rate else {
            return Limiter::default();
        };
        let burst = f64::from(r.burst.max(1));
        let bucket = |rps: u32| TokenBucket::new(f64::from(rps.max(1)), burst);
        Limiter {
            all: Some(bucket(r.requests_per_second)),
            pull: r.pull_limit.map(bucket),
            push: r.push_limit.map(bucket),
        }
    }

    /// Waits until a request of kind `op` may go.
    pub(crate) async fn acquire(&self, op: Op) {
        let specific = match op {
            Op::Pull => self.pull.as_ref(),
            Op::Push => self.push.as_ref(),
            Op::Other => None,
        };
        if let Some(b) = specific {
            b.acquire().await;
        }
        if let Some(b) = &self.all {
            b.acquire().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let b = TokenBucket::new(10.0, 5.0);
        let start = Instant::now();
        for _ in 0..5 {
            b.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "burst is free");
        for _ in 0..10 {
            b.acquire().await;
        }
        let secs = start.elapsed().as_secs_f64();
        assert!((secs - 1.0).abs() < 0.01, "10 more at 10/s took {secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn pull_bucket_is_separate_from_push() {
        let l = Limiter::new(Some(&RateView {
            requests_per_second: 1000,
            burst: 1,
            pull_limit: Some(2),
            push_limit: None,
        }));
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire(Op::Push).await;
        }
        let push_time = start.elapsed().as_secs_f64();
        assert!(
            push_time < 0.01,
            "pushes only see the global bucket: {push_time}"
        );
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire(Op::Pull).await;
        }
        let secs = start.elapsed().as_secs_f64();
        assert!((secs - 2.0).abs() < 0.01, "4 waits at 2/s: {secs}");
    }
}
