//! One delivery task per endpoint: follow the journal from the endpoint's cursor, POST each event
//! until a 2xx, back off exponentially between failures, advance and persist the cursor.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use url::Url;

use crate::cursor;
use crate::event::{IdOnly, ATTEMPT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER};
use crate::journal::{self, Pos};
use crate::notifier::Shared;

/// Bytes of journal read per batch.
const BATCH_BYTES: usize = 256 * 1024;

/// An endpoint as the delivery task sees it.
pub(crate) struct Endpoint {
    /// Index in the options (and in `Shared::positions`).
    pub(crate) idx: usize,
    pub(crate) url: Url,
    /// The URL without credentials or query, for logs.
    pub(crate) shown: String,
    /// Cursor file key.
    pub(crate) key: String,
}

/// `retry_delay × 2^failures`, capped at `max`.
pub(crate) fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
    first.checked_mul(factor).unwrap_or(max).min(max)
}

/// Resolves once a stop is requested (or the notifier is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `d`; false when stopped meanwhile.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = stopped(stop) => false,
    }
}

/// Runs `f` on the blocking pool (holding the shared state, hence the directory lock).
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let sh = shared.clone();
    tokio::task::spawn_blocking(move || f(&sh))
        .await
        .map_err(io::Error::other)?
}

/// Deletes segments every endpoint has moved past.
pub(crate) async fn collect_segments(shared: &Arc<Shared>) {
    let Some(min) = shared.positions().iter().min().copied() else {
        return;
    };
    let res = blocking(shared, move |sh| {
        let mut removed = false;
        for seg in journal::list_segments(&sh.journal)? {
            if seg < min.seg {
                std::fs::remove_file(journal::segment_path(&sh.journal, seg))?;
                removed = true;
            }
        }
        if removed {
            journal::fsync_dir(&sh.journal)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "webhook journal: removing delivered segments failed");
    }
}

/// Records the cursor on disk and in memory; cleans up segments when it changed segment.
async fn save(shared: &Arc<Shared>, ep: &Endpoint, pos: Pos) {
    let key = ep.key.clone();
    if let Err(e) = blocking(shared, move |sh| cursor::store(&sh.cursors, &key, pos)).await {
        // Not fatal: an older cursor on disk only means redelivery after a restart.
        tracing::error!(endpoint = %ep.shown, error = %e, "writing the webhook cursor failed");
    }
    let moved_segment = {
        let mut all = shared.positions();
        let changed = all.get(ep.idx).is_some_and(|old| old.seg != pos.seg);
        if let Some(slot) = all.get_mut(ep.idx) {
            *slot = pos;
        }
        changed
    };
    if moved_segment {
        collect_segments(shared).await;
    }
}

/// The first position after segment `seg`: the next existing segment, else the head's.
async fn next_segment(shared: &Arc<Shared>, seg: u64, head: Pos) -> Pos {
    let next = blocking(shared, move |sh| journal::list_segments(&sh.journal))
        .await
        .ok()
        .and_then(|segs| segs.into_iter().find(|s| *s > seg))
        .unwrap_or(head.seg);
    Pos {
        seg: next.min(head.seg).max(seg.saturating_add(1)),
        off: 0,
    }
}

/// The delivery loop of one endpoint.
pub(crate) async fn run(
    shared: Arc<Shared>,
    ep: Endpoint,
    mut cursor: Pos,
    mut head_rx: watch::Receiver<Pos>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let head = *head_rx.borrow_and_update();
        if cursor >= head {
            tokio::select! {
                r = head_rx.changed() => if r.is_err() { return },
                () = stopped(&mut stop) => return,
            }
            continue;
        }
        let upto = (cursor.seg == head.seg).then_some(head.off);
        let from = cursor;
        let read = blocking(&shared, move |sh| {
            let path = journal::segment_path(&sh.journal, from.seg);
            journal::read_batch(&path, from.off, upto, BATCH_BYTES)
        })
        .await;
        let batch = match read {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound && cursor.seg < head.seg => {
                cursor = next_segment(&shared, cursor.seg, head).await;
                save(&shared, &ep, cursor).await;
                continue;
            }
            Err(e) => {
                tracing::error!(endpoint = %ep.shown, error = %e, "reading the webhook journal failed");
                if !pause(shared.retry_delay, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        if batch.records.is_empty() {
            if cursor.seg < head.seg {
                if batch.damaged {
                    tracing::error!(endpoint = %ep.shown, segment = cursor.seg, "damaged webhook journal segment: skipping its rest");
                }
                cursor = next_segment(&shared, cursor.seg, head).await;
                save(&shared, &ep, cursor).await;
            } else {
                tracing::error!(endpoint = %ep.shown, "unreadable webhook journal record at the head; waiting");
                if !pause(shared.retry_delay, &mut stop).await {
                    return;
                }
            }
            continue;
        }
        for (end, payload) in batch.records {
            if !deliver(&shared, &ep, payload, &mut stop).await {
                return;
            }
            cursor.off = end;
            save(&shared, &ep, cursor).await;
        }
    }
}

/// Delivers one event until a 2xx; false when stopped first.
async fn deliver(
    shared: &Shared,
    ep: &Endpoint,
    body: Bytes,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let id = match serde_json::from_slice::<IdOnly>(&body) {
        Ok(x) => x.event.id.to_string(),
        Err(e) => {
            tracing::error!(endpoint = %ep.shown, error = %e, "undecodable webhook event in the journal: skipped");
            return true;
        }
    };
    let signature = shared
        .secret
        .as_ref()
        .map(|s| crate::sign(s.bytes(), &body));
    let mut failures: u32 = 0;
    loop {
        let attempt = failures.saturating_add(1);
        let mut req = shared
            .client
            .post(ep.url.clone())
            .timeout(shared.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, id.as_str())
            .header(ATTEMPT_HEADER, attempt.to_string())
            .body(body.clone());
        if let Some(sig) = &signature {
            req = req.header(SIGNATURE_HEADER, sig.as_str());
        }
        let outcome = tokio::select! {
            r = req.send() => r,
            () = stopped(stop) => return false,
        };
        let why = match outcome {
            Ok(resp) if resp.status().is_success() => {
                shared.stats.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(endpoint = %ep.shown, event = %id, attempt, "webhook delivered");
                return true;
            }
            Ok(resp) => format!("HTTP {}", resp.status()),
            // Without the URL: it may carry credentials or a token.
            Err(e) => e.without_url().to_string(),
        };
        shared.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let delay = backoff(shared.retry_delay, shared.retry_max_delay, failures);
        tracing::warn!(
            endpoint = %ep.shown,
            event = %id,
            attempt,
            error = %why,
            retry_in_ms = delay.as_millis() as u64,
            "webhook delivery failed"
        );
        failures = attempt;
        if !pause(delay, stop).await {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_millis(100);
        let m = Duration::from_millis(1000);
        let got: Vec<u128> = (0..6).map(|n| backoff(s, m, n).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(s, m, 200), m);
    }
}
