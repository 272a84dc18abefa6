//! Free space on the storage: the reserve below which new uploads are refused up front, so
//! that a full disk never stops manifests, tags, deletes and GC — the operator's way out.
//!
//! Invariants: the check runs before an upload session opens and before a chunk's body is
//! read; it never refuses a write that adds no blob bytes. A driver that cannot tell its free
//! space (object stores) has no reserve; a write that still finds the device full fails with
//! `ENOSPC`, which [`crate::StoreError::storage_full`] recognises.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Result, StoreError};
use crate::Store;

/// The default reserve's cap: 1% of the filesystem, but never more than this.
const DEFAULT_RESERVE_CAP: u64 = 256 << 20;

/// How much free space new uploads must leave on the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpaceReserve {
    /// 1% of the filesystem's size or 256 MiB, whichever is smaller.
    #[default]
    Default,
    /// This many bytes (0: no reserve).
    Bytes(u64),
}

impl SpaceReserve {
    /// The reserve in bytes on a filesystem of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            SpaceReserve::Default => (total / 100).min(DEFAULT_RESERVE_CAP),
            SpaceReserve::Bytes(n) => n,
        }
    }
}

/// The storage's free space as last measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceReport {
    /// Bytes still free for the registry.
    pub available: u64,
    /// The filesystem's size.
    pub total: u64,
    /// The reserve new uploads must leave.
    pub reserve: u64,
}

/// Whether the low-space warning was logged.
#[derive(Debug, Default)]
pub(crate) struct SpaceGuard {
    warned: AtomicBool,
}

impl Store {
    /// The storage's free space and reserve, when the driver can tell.
    pub async fn space(&self) -> Result<Option<SpaceReport>> {
        let Some(space) = self.inner.driver.space().await? else {
            return Ok(None);
        };
        let report = SpaceReport {
            available: space.available,
            total: space.total,
            reserve: self.inner.opts.space_reserve.bytes(space.total),
        };
        self.warn_when_low(&report);
        Ok(Some(report))
    }

    /// Refuses (`StorageFull`) when `incoming` more bytes (`None`: an upload about to open, or
    /// a chunk of unknown length) would take the free space below the reserve.
    pub(crate) async fn check_room(&self, incoming: Option<u64>) -> Result<()> {
        let Some(report) = self.space().await? else {
            return Ok(());
        };
        // What may still be written above the reserve: a declared length must fit in it, an
        // unknown one needs some of it.
        let room = report.available.saturating_sub(report.reserve);
        if incoming.map_or(room > 0, |n| n <= room) {
            return Ok(());
        }
        let what = match incoming {
            Some(n) => format!("this upload's {n} bytes do not fit"),
            None => "new uploads are refused".to_owned(),
        };
        Err(StoreError::StorageFull {
            message: format!(
                "the registry's storage is full: {} bytes free of {}, below the reserve of {} \
                 bytes; {what}. Manifests, tags, deletes and garbage collection still work: \
                 free space by deleting content and collecting garbage",
                report.available, report.total, report.reserve
            ),
        })
    }

    /// Logs one warning when free space falls below twice the reserve, and again only after
    /// it has recovered above that.
    fn warn_when_low(&self, report: &SpaceReport) {
        let low = report.available < report.reserve.saturating_mul(2);
        let was = self.inner.space.warned.swap(low, Ordering::Relaxed);
        if low && !was {
            tracing::warn!(
                available = report.available,
                total = report.total,
                reserve = report.reserve,
                "storage free space is below twice the reserve; uploads stop at the reserve"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SpaceReserve;

    #[test]
    fn the_default_reserve_is_one_percent_capped_at_256_mib() {
        assert_eq!(SpaceReserve::Default.bytes(24 << 20), (24 << 20) / 100);
        assert_eq!(SpaceReserve::Default.bytes(100 << 30), 256 << 20);
        assert_eq!(SpaceReserve::Bytes(0).bytes(100 << 30), 0);
        assert_eq!(SpaceReserve::Bytes(5).bytes(1), 5);
    }
}
