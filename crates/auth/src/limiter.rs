//! Failed-login rate limiting per client address (fixed window).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Counts failed logins per client address; after `max` failures within `window` the address
/// is refused until the window that started with its first failure ends.
#[derive(Debug)]
pub struct LoginLimiter {
    max: u32,
    window: Duration,
    state: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

impl LoginLimiter {
    /// A limiter allowing `max` failures per `window` (`max == 0` disables it).
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `ip` is currently locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let state = self.state.lock();
        match state.get(&ip) {
            Some(&(count, start)) if count >= self.max => {
                let elapsed = start.elapsed();
                if elapsed < self.window {
                    Err(self.window - elapsed)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        if self.max == 0 {
            return;
        }
        let mut state = self.state.lock();
        if state.len() >= SWEEP_AT {
            let window = self.window;
            state.retain(|_, (_, start)| start.elapsed() < window);
        }
        let entry = state.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Forgets `ip`'s failures after a successful login.
    pub fn succeeded(&self, ip: IpAddr) {
        if self.max > 0 {
            self.state.lock().remove(&ip);
        }
    }
}
