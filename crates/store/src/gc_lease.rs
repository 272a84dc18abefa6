//! The garbage-collection lease on shared storage: one runner at a time across replicas.
//!
//! The lease is one object, [`paths::gc_lease`], holding who runs and until when (wall-clock
//! milliseconds). It is taken with a create-if-absent write, or by a compare-and-swap over an
//! expired record; the holder renews it by compare-and-swap over the version it wrote, and
//! releases it by writing an expired record the same way. Every write is conditional on the
//! version this runner last saw, so of two replicas racing for it at most one succeeds, and a
//! runner whose lease was taken over learns it at its next renewal and stops.
//!
//! Assumptions: the replicas' clocks agree to well within [`LEASE_TTL`], and a runner is never
//! paused for longer than `LEASE_TTL - RENEW_EVERY` between a renewal and the removals it
//! makes under it (the removals after each renewal are short).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::driver::{Driver, Precondition, Version};
use crate::error::{Result, StoreError};
use crate::paths;

/// How long a lease holds without renewal: a runner that died is replaced after this long.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(120);
/// A running holder renews this often (a third of the TTL: two renewals may fail or be late
/// before the lease lapses).
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(40);
/// Conditional writes retried when another replica changed the lease in between.
const ATTEMPTS: usize = 4;

/// The lease object's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// Who holds it (process and run).
    holder: String,
    /// Until when, milliseconds since the Unix epoch (0: released).
    expires_unix_ms: u64,
}

/// A held lease; dropped without [`Lease::release`] it simply expires.
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    driver: &'a dyn Driver,
    holder: String,
    version: Version,
    renewed: Instant,
}

/// The outcome of [`acquire`].
#[derive(Debug)]
pub(crate) enum Acquired<'a> {
    /// This runner holds the lease.
    Held(Lease<'a>),
    /// Another runner does, for about this long still.
    Busy {
        /// The holder's name.
        holder: String,
        /// Until the lease lapses unless renewed.
        expires_in: Duration,
    },
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn encode(holder: &str, expires_unix_ms: u64) -> Bytes {
    let record = Record {
        holder: holder.to_owned(),
        expires_unix_ms,
    };
    Bytes::from(serde_json::to_vec(&record).unwrap_or_default())
}

fn lost(holder: &str) -> StoreError {
    StoreError::Internal(format!(
        "garbage collection lease of {holder} was taken over by another replica"
    ))
}

/// Takes the lease for `holder` unless another runner holds an unexpired one.
pub(crate) async fn acquire<'a>(driver: &'a dyn Driver, holder: &str) -> Result<Acquired<'a>> {
    let key = paths::gc_lease();
    for _ in 0..ATTEMPTS {
        let record = encode(holder, now_ms().saturating_add(ttl_ms()));
        let taken = match driver
            .put_if(&key, record.clone(), Precondition::Absent)
            .await
        {
            Ok(version) => Some(version),
            Err(StoreError::PreconditionFailed { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some(version) = taken {
            return Ok(Acquired::Held(Lease::new(driver, holder, version)));
        }
        let (content, version) = match driver.get_versioned(&key).await {
            Ok(found) => found,
            // Removed by hand in between: try creating it again.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        // A record that does not parse holds nothing.
        if let Ok(current) = serde_json::from_slice::<Record>(&content) {
            let now = now_ms();
            if current.expires_unix_ms > now {
                return Ok(Acquired::Busy {
                    holder: current.holder,
                    expires_in: Duration::from_millis(current.expires_unix_ms - now),
                });
            }
        }
        match driver
            .put_if(&key, record, Precondition::Matches(version))
            .await
        {
            Ok(version) => return Ok(Acquired::Held(Lease::new(driver, holder, version))),
            Err(StoreError::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    // Others kept changing it: someone else is taking it right now.
    Ok(Acquired::Busy {
        holder: "another replica (contended)".to_owned(),
        expires_in: LEASE_TTL,
    })
}

/// Whether a garbage collection may be under way on shared storage: the lease is held, or
/// expired less than a lease term ago (a runner stalled past its term may still be removing).
/// A released lease (and none at all) says no; one that does not parse says yes.
pub(crate) async fn may_be_running(driver: &dyn Driver) -> Result<bool> {
    match driver.get_content(&paths::gc_lease()).await {
        Ok(content) => Ok(serde_json::from_slice::<Record>(&content)
            .map(|r| r.expires_unix_ms > 0 && r.expires_unix_ms.saturating_add(ttl_ms()) > now_ms())
            .unwrap_or(true)),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

fn ttl_ms() -> u64 {
    u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX)
}

impl<'a> Lease<'a> {
    fn new(driver: &'a dyn Driver, holder: &str, version: Version) -> Lease<'a> {
        Lease {
            driver,
            holder: holder.to_owned(),
            version,
            renewed: Instant::now(),
        }
    }

    /// The holder's name.
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    /// Extends the lease by [`LEASE_TTL`] from now; fails when another runner took it over.
    pub(crate) async fn renew(&mut self) -> Result<()> {
        let record = encode(&self.holder, now_ms().saturating_add(ttl_ms()));
        let key = paths::gc_lease();
        let condition = Precondition::Matches(self.version.clone());
        match self.driver.put_if(&key, record, condition).await {
            Ok(version) => {
                self.version = version;
                self.renewed = Instant::now();
                Ok(())
            }
            Err(StoreError::PreconditionFailed { .. }) => Err(lost(&self.holder)),
            Err(e) => Err(e),
        }
    }

    /// Renews when [`RENEW_EVERY`] passed since the last renewal.
    pub(crate) async fn renew_if_due(&mut self) -> Result<()> {
        if self.renewed.elapsed() >= RENEW_EVERY {
            self.renew().await?;
        }
        Ok(())
    }

    /// Holds the lease for `wait`, renewing it meanwhile.
    pub(crate) async fn hold_for(&mut self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(left.min(RENEW_EVERY)).await;
            self.renew_if_due().await?;
        }
    }

    /// Gives the lease up (an expired record, written only over this runner's own version).
    pub(crate) async fn release(self) {
        let record = encode(&self.holder, 0);
        let key = paths::gc_lease();
        let condition = Precondition::Matches(self.version);
        if let Err(e) = self.driver.put_if(&key, record, condition).await {
            tracing::warn!(holder = %self.holder, error = %e, "could not release the garbage collection lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::MemoryDriver;

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_hands_it_on() {
        let driver = MemoryDriver::shared_by_replicas();
        let other = driver.clone();
        let Acquired::Held(mut lease) = acquire(&driver, "a").await.unwrap() else {
            panic!("a free lease must be taken");
        };
        match acquire(&other, "b").await.unwrap() {
            Acquired::Busy { holder, expires_in } => {
                assert_eq!(holder, "a");
                assert!(expires_in <= LEASE_TTL && expires_in > LEASE_TTL / 2);
            }
            Acquired::Held(_) => panic!("the lease was taken twice"),
        }
        lease.renew().await.unwrap();
        lease.release().await;
        let Acquired::Held(b) = acquire(&other, "b").await.unwrap() else {
            panic!("a released lease must be taken");
        };
        assert_eq!(b.holder(), "b");
    }

    #[tokio::test]
    async fn a_run_may_be_under_way_while_the_lease_is_held_or_just_expired() {
        let driver = MemoryDriver::shared_by_replicas();
        assert!(!may_be_running(&driver).await.unwrap(), "no lease");
        let Acquired::Held(lease) = acquire(&driver, "a").await.unwrap() else {
            panic!("a free lease must be taken");
        };
        assert!(may_be_running(&driver).await.unwrap(), "held");
        lease.release().await;
        assert!(!may_be_running(&driver).await.unwrap(), "released");
        let key = paths::gc_lease();
        let put = |expires: u64| driver.put_content(&key, encode("b", expires));
        put(now_ms() - 1000).await.unwrap();
        assert!(
            may_be_running(&driver).await.unwrap(),
            "expired a second ago"
        );
        put(now_ms() - 2 * ttl_ms()).await.unwrap();
        assert!(!may_be_running(&driver).await.unwrap(), "expired long ago");
        driver
            .put_content(&key, Bytes::from_static(b"?"))
            .await
            .unwrap();
        assert!(may_be_running(&driver).await.unwrap(), "unreadable");
    }

    #[tokio::test]
    async fn a_lease_taken_over_cannot_be_renewed() {
        let driver = MemoryDriver::shared_by_replicas();
        let Acquired::Held(mut lease) = acquire(&driver, "a").await.unwrap() else {
            panic!("a free lease must be taken");
        };
        driver
            .put_content(&paths::gc_lease(), encode("a", 1))
            .await
            .unwrap();
        let Acquired::Held(_) = acquire(&driver, "b").await.unwrap() else {
            panic!("an expired lease must be taken over");
        };
        assert!(lease.renew().await.is_err());
    }
}
