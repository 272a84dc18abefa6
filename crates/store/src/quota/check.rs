//! Quota checks: comparing usage + reservations + a request against the configured limits,
//! and the refusal message.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use ocireg_oci::Digest;
use serde_json::json;

use super::ledger::{Amount, Base, InUse};
use super::push::RefusalSlot;
use super::{namespace_of, QuotaOptions};
use crate::error::{Result, StoreError};
use crate::paths::DataLoc;
use crate::store::Store;
use crate::ByteStream;

/// What a request pushes (for the refusal message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Blob bytes (an upload or a chunk of one).
    Upload,
    /// A blob mounted from another repository.
    Mount,
    /// A manifest.
    Manifest,
}

impl Push {
    fn noun(self) -> &'static str {
        match self {
            Push::Upload => "this upload",
            Push::Mount => "this mount",
            Push::Manifest => "this manifest",
        }
    }
}

/// A quota check for requests into one namespace, started from one usage snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    store: Store,
    base: Base,
}

/// A one-request reservation, released when dropped. The release counts it as committed
/// (index usage) whether or not the request stored anything: a check that started before
/// may count it twice for a moment, which errs on the strict side.
#[derive(Debug)]
pub(crate) struct TempHold {
    store: Store,
    /// The reservation's key in the ledger.
    pub key: String,
}

impl Drop for TempHold {
    fn drop(&mut self) {
        self.store.inner.quota.ledger.release(&self.key, true);
    }
}

/// Renders a byte count for messages: `50 GiB`, `49.9 GiB`, `200 MiB`, `12 B`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0} {unit}")
    } else {
        format!("{rounded:.1} {unit}")
    }
}

/// A limit a request would pass.
struct Over {
    limit: u64,
    in_use: u64,
    add: u64,
}

fn refuse(scope: &str, namespace: Option<&str>, kind: &str, over: Over, push: Push) -> StoreError {
    let Over { limit, in_use, add } = over;
    let bytes = kind == "storage";
    let show = |n: u64| {
        if bytes {
            human_bytes(n)
        } else {
            n.to_string()
        }
    };
    let message = format!(
        "quota exceeded: {scope} {kind} limit {} (in use {}, {} {})",
        show(limit),
        show(in_use),
        push.noun(),
        show(add),
    );
    let mut detail = json!({
        "quota": if bytes { "storage_bytes" } else { "artifacts" },
        "limit": limit,
        "in_use": in_use,
        "requested": add,
    });
    if let (Some(ns), Some(obj)) = (namespace, detail.as_object_mut()) {
        obj.insert("namespace".into(), json!(ns));
    }
    StoreError::QuotaExceeded { message, detail }
}

/// Checks one request's `add` against every limit that applies to namespace `ns`.
fn admit(q: &QuotaOptions, ns: &str, in_use: &InUse, add: Amount, push: Push) -> Result<()> {
    let over = |limit: Option<u64>, used: u64, n: u64| {
        limit
            .filter(|l| n > 0 && used.saturating_add(n) > *l)
            .map(|limit| Over {
                limit,
                in_use: used,
                add: n,
            })
    };
    let total = &in_use.total;
    if let Some(o) = over(q.storage_limit_bytes, total.total_bytes, add.total_bytes) {
        return Err(refuse("registry", None, "storage", o, push));
    }
    if let Some(o) = over(q.artifact_limit, total.artifacts, add.artifacts) {
        return Err(refuse("registry", None, "artifact", o, push));
    }
    if let Some(nl) = q.namespaces.get(ns) {
        let scope = format!("namespace {ns:?}");
        if let Some(o) = over(nl.storage_limit_bytes, in_use.ns.ns_bytes, add.ns_bytes) {
            return Err(refuse(&scope, Some(ns), "storage", o, push));
        }
        if let Some(o) = over(nl.artifact_limit, in_use.ns.artifacts, add.artifacts) {
            return Err(refuse(&scope, Some(ns), "artifact", o, push));
        }
    }
    Ok(())
}

impl Admission {
    /// Reserves `amount` under `key` if every applicable limit allows it.
    pub(crate) fn reserve(&self, key: &str, amount: Amount, push: Push) -> Result<()> {
        let Some(q) = self.store.quota() else {
            return Ok(());
        };
        let ns = self.base.ns.clone();
        self.store
            .inner
            .quota
            .ledger
            .grow(key, &self.base, amount, |in_use| {
                admit(q, &ns, in_use, amount, push)
            })
    }

    /// A one-request reservation of `amount` (refused when over a limit).
    pub(crate) fn hold(&self, amount: Amount, push: Push) -> Result<TempHold> {
        let hold = TempHold {
            store: self.store.clone(),
            key: self.store.inner.quota.ledger.temp_key(),
        };
        self.reserve(&hold.key, amount, push)?;
        Ok(hold)
    }

    /// Wraps a body of (partly) unknown length: the first `prepaid` bytes were reserved
    /// already; every later frame is reserved under `key` as it arrives (each byte counting as
    /// `unit`), and the stream fails before a frame that would pass a limit. The refusal is
    /// left in `slot` for the caller to report instead of the body error.
    pub(crate) fn limit_stream(
        &self,
        key: &str,
        body: ByteStream,
        prepaid: u64,
        unit: Amount,
        slot: &RefusalSlot,
    ) -> ByteStream {
        let state = (self.clone(), key.to_owned(), prepaid, Arc::clone(slot));
        let limited = body.scan(state, move |(adm, key, prepaid, slot), frame| {
            let out = match frame {
                Ok(frame) => {
                    let n = frame.len() as u64;
                    let free = n.min(*prepaid);
                    *prepaid -= free;
                    let extra = n - free;
                    let amount = Amount {
                        ns_bytes: unit.ns_bytes * extra,
                        total_bytes: unit.total_bytes * extra,
                        artifacts: 0,
                    };
                    if extra == 0 || amount == Amount::default() {
                        Some(Ok::<Bytes, std::io::Error>(frame))
                    } else {
                        match adm.reserve(key, amount, Push::Upload) {
                            Ok(()) => Some(Ok(frame)),
                            Err(e) => {
                                let text = e.to_string();
                                *slot.lock() = Some(e);
                                Some(Err(std::io::Error::other(text)))
                            }
                        }
                    }
                }
                Err(e) => Some(Err(e)),
            };
            std::future::ready(out)
        });
        Box::pin(limited)
    }
}

impl Store {
    /// A quota check for a request into `repo`, or `None` when no quota is configured.
    pub(crate) fn admission(&self, repo: &str) -> Option<Admission> {
        self.quota()?;
        let ns = namespace_of(repo);
        // Committed counters first, then the index (see the ledger docs).
        let ledger = &self.inner.quota.ledger;
        let snapshot = ledger.base(ns, Amount::default(), Amount::default());
        let usage = self.usage();
        let nsu = usage.namespaces.get(ns).cloned().unwrap_or_default();
        let mut base = snapshot;
        base.ns_usage = Amount {
            ns_bytes: nsu.bytes,
            total_bytes: 0,
            artifacts: nsu.artifacts,
        };
        base.total_usage = Amount {
            ns_bytes: 0,
            total_bytes: usage.total_bytes,
            artifacts: usage.artifacts,
        };
        Some(Admission {
            store: self.clone(),
            base,
        })
    }

    /// What storing `digest` (`size` bytes) for `repo` at `loc` adds: nothing to the namespace
    /// if one of its repositories already links it, nothing physically if the bytes are there.
    pub(crate) fn added_by(&self, repo: &str, digest: &Digest, loc: DataLoc, size: u64) -> Amount {
        let physical = self
            .inner
            .quota
            .facts
            .read()
            .physical(repo, digest, loc)
            .is_some();
        let ns = namespace_of(repo);
        let in_ns = self.inner.index.read_all(|repos| {
            repos.iter().any(|(name, r)| {
                namespace_of(name) == ns
                    && (r.blobs.contains_key(digest) || r.manifests.contains_key(digest))
            })
        });
        Amount {
            ns_bytes: if in_ns { 0 } else { size },
            total_bytes: if physical { 0 } else { size },
            artifacts: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(200 << 20), "200 MiB");
        assert_eq!(human_bytes(50 << 30), "50 GiB");
        assert_eq!(human_bytes((50u64 << 30) - (100 << 20)), "49.9 GiB");
        assert_eq!(human_bytes(3 << 40), "3 TiB");
    }
}
