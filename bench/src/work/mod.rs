//! The workloads. Each runs against one registry and returns its measurements.

pub mod blobs;
pub mod listing;
pub mod manifests;
pub mod mixed;

use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;

use crate::cli::Plan;
use crate::http::Registry;
use crate::server::Probe;
use crate::stats::{random_bytes, sha256_digest, Errors};

/// What a workload gets: the registry, the plan, an error sink and a seed for its data.
#[derive(Clone)]
pub struct Ctx {
    /// The registry under test.
    pub reg: Arc<Registry>,
    /// Its process and storage root.
    pub server: Probe,
    /// Sizes, counts and durations.
    pub plan: Arc<Plan>,
    /// Where errors go.
    pub errors: Arc<Errors>,
    /// Seed that makes this run's data distinct from the other registry's.
    pub seed: u64,
}

/// A blob that was pushed: its digest and size.
#[derive(Clone, Debug)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Length in bytes.
    pub size: u64,
    /// The content.
    pub data: Bytes,
}

impl Blob {
    /// `size` random bytes from `seed`, with their digest.
    pub fn random(size: usize, seed: u64) -> Blob {
        let data = random_bytes(size, seed);
        Blob {
            digest: sha256_digest(&data),
            size: data.len() as u64,
            data,
        }
    }

    /// A small OCI image config whose content depends on `seed`.
    pub fn config(seed: u64) -> Blob {
        let data = Bytes::from(format!(
            "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[]}},\"config\":{{\"Labels\":{{\"seed\":\"{seed}\"}}}}}}"
        ));
        Blob {
            digest: sha256_digest(&data),
            size: data.len() as u64,
            data,
        }
    }

    /// `(digest, size)` for manifest building.
    pub fn desc(&self) -> (&str, u64) {
        (&self.digest, self.size)
    }
}

/// Pushes a small config and a 1 KiB layer into `repo`; returns (config, layer).
pub async fn base_image(ctx: &Ctx, repo: &str, seed: u64) -> Result<(Blob, Blob)> {
    let config = Blob::config(ctx.seed ^ seed);
    let layer = Blob::random(1024, ctx.seed ^ seed ^ 0x5eed);
    ctx.reg
        .push_monolithic(repo, config.data.clone(), &config.digest)
        .await?;
    ctx.reg
        .push_monolithic(repo, layer.data.clone(), &layer.digest)
        .await?;
    Ok((config, layer))
}

/// Flushes dirty pages so one measurement does not pay for the previous one's writes.
pub async fn sync_disks() {
    let _ = tokio::process::Command::new("sync").status().await;
}
