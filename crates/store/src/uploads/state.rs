//! An upload session's state object on shared storage, and the claim a request holds on it.
//!
//! `…/_uploads/<id>/state` holds the session's offset, the SHA-256 state after that many bytes
//! and, while a request works on the session, that request's claim (a random token and the
//! time it lapses). It is only ever changed by compare-and-swap ([`Driver::put_if`]) against
//! the version a request read, so of two requests that read one version at most one changes
//! it. A request first swaps its claim in; only then does it touch the session's data; it
//! ends by swapping the claim out with the new offset and hash state. A request that finds a
//! claim that has not lapsed waits for it to go (up to [`CLAIM_WAIT`]), then reads the state
//! afresh: two replicas can never write one session's data at once.
//!
//! A claim lapses [`CLAIM_TTL`] after it was last renewed; the holder renews it every third of
//! that while it works, so only a claim whose holder died (a killed process) lapses, and the
//! session is usable again after at most [`CLAIM_TTL`]. A holder whose renewal or release finds
//! the state changed has lost its claim: its request fails and nothing it did is acknowledged.
//! A request dropped mid-way (a client gone, a server timeout) hands its claim back from
//! [`Claimed`]'s `Drop`. Lapse times are wall-clock milliseconds: replicas' clocks must agree
//! to well within [`CLAIM_TTL`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ocireg_oci::{Algorithm, DigestHasher};
use serde::{Deserialize, Serialize};

use crate::blobs::new_session_id;
use crate::driver::{Driver, Precondition, Version};
use crate::error::{Result, StoreError};

/// How long a claim lasts unless renewed.
pub(super) const CLAIM_TTL: Duration = Duration::from_secs(30);

/// How long a request waits for another request's claim on the same session to go.
pub(super) const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// Pause between looks at a claimed session's state.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// What the state object holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// Bytes of the upload so far.
    pub offset: u64,
    /// The SHA-256 state after those bytes ([`DigestHasher::save`]); absent when not known
    /// (the bytes are then re-read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Vec<u8>>,
    /// The request working on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
}

/// A request's hold on a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Claim {
    /// Random, one per request.
    pub token: String,
    /// Wall-clock Unix milliseconds after which the claim has lapsed.
    pub until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl State {
    /// A new session's state: nothing received, the hash of nothing.
    pub(super) fn fresh() -> State {
        State::at(0, Some(&DigestHasher::new(Algorithm::Sha256)))
    }

    /// The state after `offset` bytes hashed by `hasher` (its state is kept when it can be).
    pub(super) fn at(offset: u64, hasher: Option<&DigestHasher>) -> State {
        State {
            offset,
            sha256: hasher
                .filter(|h| h.bytes_hashed() == offset)
                .and_then(DigestHasher::save),
            claim: None,
        }
    }

    pub(super) fn encode(&self) -> Result<Bytes> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| StoreError::Internal(format!("encoding upload state: {e}")))
    }

    pub(super) fn decode(key: &str, content: &[u8]) -> Result<State> {
        serde_json::from_slice(content)
            .map_err(|e| StoreError::Internal(format!("unreadable upload state {key}: {e}")))
    }

    /// The SHA-256 hasher after exactly `offset` bytes, when the state has it.
    pub(super) fn hasher(&self) -> Option<DigestHasher> {
        DigestHasher::resume(self.sha256.as_deref()?).filter(|h| h.bytes_hashed() == self.offset)
    }

    /// The claim, unless it has lapsed.
    pub(super) fn live_claim(&self) -> Option<&Claim> {
        self.claim.as_ref().filter(|c| c.until_ms > now_ms())
    }

    fn claimed_by(&self, token: &str) -> State {
        State {
            claim: Some(Claim {
                token: token.to_owned(),
                until_ms: now_ms().saturating_add(CLAIM_TTL.as_millis() as u64),
            }),
            ..self.clone()
        }
    }
}

/// Reads the state at `key`; `None` when there is none (the session is unknown or over).
pub(super) async fn read(driver: &dyn Driver, key: &str) -> Result<Option<(State, Version)>> {
    match driver.get_versioned(key).await {
        Ok((content, version)) => Ok(Some((State::decode(key, &content)?, version))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why a request cannot go on with a session.
pub(super) enum Refused {
    /// The session is over, or never was.
    Gone,
    /// Another request holds it (or won the race); the session is at this offset.
    At(u64),
}

/// A request's claim on a session (see the module docs): the state as it was when claimed,
/// and the version to swap against.
pub(super) struct Claimed {
    driver: Arc<dyn Driver>,
    key: String,
    token: String,
    version: parking_lot::Mutex<Version>,
    /// The session's state when claimed (without the claim).
    pub state: State,
    done: bool,
}

impl Claimed {
    /// Claims the session whose state is at `key`, waiting up to `wait` (normally
    /// [`CLAIM_WAIT`]) for another request's claim to go.
    pub(super) async fn take(
        driver: &Arc<dyn Driver>,
        key: &str,
        wait: Duration,
    ) -> Result<std::result::Result<Claimed, Refused>> {
        let deadline = tokio::time::Instant::now() + wait;
        let token = new_session_id();
        loop {
            let Some((state, version)) = read(driver.as_ref(), key).await? else {
                return Ok(Err(Refused::Gone));
            };
            if state.live_claim().is_some() {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Err(Refused::At(state.offset)));
                }
                tokio::time::sleep(CLAIM_POLL).await;
                continue;
            }
            let claimed = state.claimed_by(&token).encode()?;
            match driver
                .put_if(key, claimed, Precondition::Matches(version))
                .await
            {
                Ok(version) => {
                    return Ok(Ok(Claimed {
                        driver: Arc::clone(driver),
                        key: key.to_owned(),
                        token,
                        version: parking_lot::Mutex::new(version),
                        state: State {
                            claim: None,
                            ..state
                        },
                        done: false,
                    }))
                }
                // Changed since read: look again.
                Err(StoreError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `work` while renewing the claim; if a renewal finds the claim lost, `work` is
    /// dropped unfinished and the answer is why the session cannot go on. A renewal runs to its
    /// end with `work` paused (for one small write), never cut off by `work` finishing: a
    /// renewal abandoned in flight could still land and fail the release that follows.
    pub(super) async fn keep_alive<T>(
        &self,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                () = tokio::time::sleep(CLAIM_TTL / 3) => self.renew().await?,
            }
        }
    }

    /// Extends the claim by [`CLAIM_TTL`]; an error when it was lost.
    async fn renew(&self) -> Result<()> {
        let renewed = self.state.claimed_by(&self.token).encode()?;
        let current = self.version.lock().clone();
        match self
            .driver
            .put_if(&self.key, renewed, Precondition::Matches(current))
            .await
        {
            Ok(version) => *self.version.lock() = version,
            Err(StoreError::PreconditionFailed { .. }) => return Err(self.lost().await),
            // Storage trouble: the next renewal tries again (the claim lasts longer).
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "renewing an upload claim failed")
            }
        }
        Ok(())
    }

    /// Ends the request: swaps the claim out for `state`. If the claim was lost meanwhile,
    /// nothing is stored and the error says where the session is.
    pub(super) async fn release(mut self, state: &State) -> Result<()> {
        self.done = true;
        let current = self.version.lock().clone();
        match self
            .driver
            .put_if(&self.key, state.encode()?, Precondition::Matches(current))
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::PreconditionFailed { .. }) => Err(self.lost().await),
            Err(e) => Err(e),
        }
    }

    /// Ends the request with the session unchanged (what it wrote, if anything, is found by
    /// the next request from the data's size). A claim lost meanwhile is left alone.
    pub(super) async fn hand_back(mut self) {
        self.done = true;
        let current = self.version.lock().clone();
        let Ok(content) = self.state.encode() else {
            return;
        };
        let _ = self
            .driver
            .put_if(&self.key, content, Precondition::Matches(current))
            .await;
    }

    /// Ends the session: removes the state (the session is unknown from now on).
    pub(super) async fn remove(mut self) -> Result<()> {
        self.done = true;
        remove(self.driver.as_ref(), &self.key).await
    }

    /// The error for a request whose claim was lost: where storage says the session is.
    async fn lost(&self) -> StoreError {
        let refused = match read(self.driver.as_ref(), &self.key).await {
            Ok(Some((state, _))) => Refused::At(state.offset),
            Ok(None) => Refused::Gone,
            Err(e) => return e,
        };
        refused_error(refused, &self.key)
    }
}

/// The answer for a refused request on the session whose state is at `key`.
pub(super) fn refused_error(refused: Refused, key: &str) -> StoreError {
    match refused {
        Refused::At(offset) => StoreError::UploadRange {
            message: format!(
                "the upload is being written through another request, or was; it is at offset {offset}"
            ),
            offset,
        },
        Refused::Gone => StoreError::UploadUnknown {
            session: session_of(key).chars().take(100).collect(),
        },
    }
}

/// The session id in a state key (`…/_uploads/<id>/state`).
fn session_of(key: &str) -> &str {
    key.rsplit('/').nth(1).unwrap_or(key)
}

/// Removes a session's state; an absent one is fine.
pub(super) async fn remove(driver: &dyn Driver, key: &str) -> Result<()> {
    match driver.delete_scratch(key).await {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

impl Drop for Claimed {
    /// A request that ended without releasing (dropped mid-way) hands the claim back, the
    /// state otherwise unchanged; without a runtime the claim simply lapses.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (driver, key) = (Arc::clone(&self.driver), std::mem::take(&mut self.key));
        let version = self.version.lock().clone();
        let Ok(content) = self.state.encode() else {
            return;
        };
        runtime.spawn(async move {
            let _ = driver
                .put_if(&key, content, Precondition::Matches(version))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::driver::MemoryDriver;

    #[test]
    fn state_round_trips_with_its_hash() {
        let mut h = DigestHasher::new(Algorithm::Sha256);
        h.update(&[1u8; 1000]);
        let state = State::at(1000, Some(&h));
        let decoded = State::decode("k", &state.encode().unwrap()).unwrap();
        assert_eq!(decoded, state);
        assert_eq!(decoded.hasher().unwrap().finish(), h.finish());
        // A hash state that does not match the offset is not kept, nor trusted.
        assert_eq!(
            State::at(999, Some(&DigestHasher::new(Algorithm::Sha256))).sha256,
            None
        );
        let mut wrong = decoded;
        wrong.offset = 5;
        assert!(wrong.hasher().is_none());
    }

    #[tokio::test]
    async fn a_claim_excludes_others_until_released() {
        let driver: Arc<dyn Driver> = Arc::new(MemoryDriver::shared_by_replicas());
        let key = "repositories/r/_uploads/0123/state";
        driver
            .put_if(key, State::fresh().encode().unwrap(), Precondition::Absent)
            .await
            .unwrap();
        let first = Claimed::take(&driver, key, CLAIM_WAIT)
            .await
            .unwrap()
            .ok()
            .unwrap();
        let second = Claimed::take(&driver, key, Duration::ZERO).await.unwrap();
        assert!(matches!(second, Err(Refused::At(0))));
        // A waiting request gets the session once the first hands it back.
        let waiting = Claimed::take(&driver, key, CLAIM_WAIT);
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            first.release(&State::at(7, None)).await.unwrap();
        };
        let (second, ()) = tokio::join!(waiting, release);
        let second = second.unwrap().ok().unwrap();
        assert_eq!(second.state.offset, 7);
        second.remove().await.unwrap();
        assert!(matches!(
            Claimed::take(&driver, key, CLAIM_WAIT).await.unwrap(),
            Err(Refused::Gone)
        ));
    }
}
