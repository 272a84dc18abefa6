//! Reservations: bytes and artifacts that are on their way in but not yet in the index.
//!
//! Every quota check counts `usage (index) + reservations + this request`. A request that
//! knows its size (Content-Length, a manifest body, a mounted blob) reserves it before it
//! writes anything; a body of unknown length reserves frame by frame and is stopped when the
//! next frame would pass a limit. Upload sessions keep a reservation of the bytes they hold
//! until they complete or are cancelled, so parallel uploads cannot each see the same free
//! room and together pass a limit.
//!
//! A check computes the index usage without holding the ledger's mutex, so a reservation that
//! turns into index usage meanwhile would be counted by neither: committed reservations are
//! added to a running counter, and a check adds what was committed since it took its
//! snapshot (counting such bytes twice for a moment errs on the strict side).

use std::collections::HashMap;

use parking_lot::Mutex;

/// What a request adds: namespace bytes, physical bytes, artifacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Amount {
    /// Bytes added to the namespace's usage.
    pub ns_bytes: u64,
    /// Physical bytes added to the registry's usage.
    pub total_bytes: u64,
    /// Artifacts added (namespace and registry).
    pub artifacts: u64,
}

impl Amount {
    /// `n` bytes counted both in the namespace and physically.
    pub(crate) fn bytes(n: u64) -> Amount {
        Amount {
            ns_bytes: n,
            total_bytes: n,
            artifacts: 0,
        }
    }

    fn add(&mut self, other: Amount) {
        self.ns_bytes = self.ns_bytes.saturating_add(other.ns_bytes);
        self.total_bytes = self.total_bytes.saturating_add(other.total_bytes);
        self.artifacts = self.artifacts.saturating_add(other.artifacts);
    }
}

/// One reservation.
#[derive(Debug, Clone)]
struct Entry {
    ns: String,
    amount: Amount,
}

#[derive(Debug, Default)]
struct Book {
    /// Reservations by key (an upload session directory, or `#<n>` for one request).
    entries: HashMap<String, Entry>,
    next: u64,
    /// Committed (released into the index) so far, per namespace and for the registry.
    committed_ns: HashMap<String, Amount>,
    committed_total: Amount,
}

/// The index usage a check started from, and the committed counters at that moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Base {
    /// Namespace of the request.
    pub ns: String,
    /// Index usage of that namespace.
    pub ns_usage: Amount,
    /// Index usage of the registry.
    pub total_usage: Amount,
    committed_ns: Amount,
    committed_total: Amount,
}

/// In use now for the namespace and the registry, from a base and the book.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InUse {
    /// Namespace bytes and artifacts in use.
    pub ns: Amount,
    /// Registry bytes and artifacts in use.
    pub total: Amount,
}

/// The reservation table.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    book: Mutex<Book>,
}

impl Ledger {
    /// A fresh key for a one-request reservation.
    pub(crate) fn temp_key(&self) -> String {
        let mut book = self.book.lock();
        book.next += 1;
        format!("#{}", book.next)
    }

    /// Committed counters now (taken before the index usage is computed).
    pub(crate) fn base(&self, ns: &str, ns_usage: Amount, total_usage: Amount) -> Base {
        let book = self.book.lock();
        Base {
            ns: ns.to_owned(),
            ns_usage,
            total_usage,
            committed_ns: book.committed_ns.get(ns).copied().unwrap_or_default(),
            committed_total: book.committed_total,
        }
    }

    /// Adds `amount` to the reservation `key` if `admit` accepts the resulting in-use figures
    /// (the in-use figures passed exclude `amount`); returns `admit`'s refusal otherwise.
    pub(crate) fn grow<E>(
        &self,
        key: &str,
        base: &Base,
        amount: Amount,
        admit: impl FnOnce(&InUse) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut book = self.book.lock();
        let mut in_use = InUse {
            ns: base.ns_usage,
            total: base.total_usage,
        };
        let since_ns = book.committed_ns.get(&base.ns).copied().unwrap_or_default();
        in_use.ns.add(delta(since_ns, base.committed_ns));
        in_use
            .total
            .add(delta(book.committed_total, base.committed_total));
        for entry in book.entries.values() {
            if entry.ns == base.ns {
                in_use.ns.add(entry.amount);
            }
            in_use.total.add(entry.amount);
        }
        admit(&in_use)?;
        book.entries
            .entry(key.to_owned())
            .or_insert_with(|| Entry {
                ns: base.ns.clone(),
                amount: Amount::default(),
            })
            .amount
            .add(amount);
        Ok(())
    }

    /// Sets the reservation `key` to exactly `amount` (an upload session's stored bytes).
    pub(crate) fn set(&self, key: &str, ns: &str, amount: Amount) {
        let mut book = self.book.lock();
        book.entries.insert(
            key.to_owned(),
            Entry {
                ns: ns.to_owned(),
                amount,
            },
        );
    }

    /// Drops the reservation `key`; with `committed`, its amount is now index usage.
    pub(crate) fn release(&self, key: &str, committed: bool) {
        let mut book = self.book.lock();
        let Some(entry) = book.entries.remove(key) else {
            return;
        };
        if committed {
            book.committed_total.add(entry.amount);
            book.committed_ns
                .entry(entry.ns)
                .or_default()
                .add(entry.amount);
        }
    }
}

fn delta(now: Amount, then: Amount) -> Amount {
    Amount {
        ns_bytes: now.ns_bytes.saturating_sub(then.ns_bytes),
        total_bytes: now.total_bytes.saturating_sub(then.total_bytes),
        artifacts: now.artifacts.saturating_sub(then.artifacts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_most(limit: u64, add: u64) -> impl FnOnce(&InUse) -> Result<(), u64> {
        move |u: &InUse| {
            if u.total.total_bytes + add > limit {
                Err(u.total.total_bytes)
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn parallel_reservations_share_the_room() {
        let ledger = Ledger::default();
        let base = ledger.base("ns", Amount::bytes(60), Amount::bytes(60));
        ledger
            .grow("a", &base, Amount::bytes(30), at_most(100, 30))
            .unwrap();
        // The second sees the first's reservation: 60 + 30 + 30 > 100.
        assert_eq!(
            ledger.grow("b", &base, Amount::bytes(30), at_most(100, 30)),
            Err(90)
        );
        ledger.release("a", false);
        ledger
            .grow("b", &base, Amount::bytes(30), at_most(100, 30))
            .unwrap();
    }

    #[test]
    fn commits_after_the_snapshot_still_count() {
        let ledger = Ledger::default();
        let base = ledger.base("ns", Amount::bytes(0), Amount::bytes(0));
        let other = ledger.base("ns", Amount::bytes(0), Amount::bytes(0));
        ledger
            .grow("a", &other, Amount::bytes(80), at_most(100, 80))
            .unwrap();
        // `a` lands in the index after `base` was taken: it still counts for `base`.
        ledger.release("a", true);
        assert_eq!(
            ledger.grow("b", &base, Amount::bytes(30), at_most(100, 30)),
            Err(80)
        );
    }
}
