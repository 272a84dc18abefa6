//! Command-line flags and the resolved benchmark plan.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

/// Which registries to run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Only CNCF Distribution (docker-registry).
    Reference,
    /// Only ocireg.
    Ocireg,
}

/// Benchmark ocireg against CNCF Distribution with the same workloads, side by side.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
pub struct Args {
    /// Small sizes and short durations (a smoke test that runs in well under a minute).
    #[arg(long)]
    pub quick: bool,
    /// Run against one registry only.
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Workloads to run, comma separated: push,pull,manifest,tags,catalog,mixed.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "push,pull,manifest,tags,catalog,mixed"
    )]
    pub workloads: Vec<String>,
    /// The ocireg binary (`ocireg serve --listen 127.0.0.1:0 --root DIR`).
    #[arg(long, default_value = "target/release/ocireg")]
    pub ocireg_bin: PathBuf,
    /// The CNCF Distribution binary.
    #[arg(long, default_value = "/usr/bin/docker-registry")]
    pub reference_bin: PathBuf,
    /// Directory under which the temporary storage roots are created (default: the temp dir).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Directory for the JSON results.
    #[arg(long, default_value = "bench/results")]
    pub results_dir: PathBuf,
    /// Blob sizes to push (monolithic and chunked), e.g. 1M,64M,512M.
    #[arg(long, value_delimiter = ',')]
    pub push_sizes: Option<Vec<String>>,
    /// Blob sizes to pull with sha256 verification, e.g. 64M,512M.
    #[arg(long, value_delimiter = ',')]
    pub pull_sizes: Option<Vec<String>>,
    /// PATCH chunk size for chunked pushes.
    #[arg(long, default_value = "8M")]
    pub chunk_size: String,
    /// Concurrency levels for manifest PUT/GET.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// Seconds per manifest PUT or GET phase at each level.
    #[arg(long)]
    pub manifest_secs: Option<f64>,
    /// Tags to create for the tag-listing workload.
    #[arg(long)]
    pub tags: Option<usize>,
    /// Repositories to create for the catalog workload.
    #[arg(long)]
    pub repos: Option<usize>,
    /// Concurrent clients in the mixed run.
    #[arg(long, default_value_t = 32)]
    pub mixed_clients: usize,
    /// Seconds of the mixed run.
    #[arg(long)]
    pub mixed_secs: Option<f64>,
    /// Keep the registries' storage roots and logs instead of deleting them.
    #[arg(long)]
    pub keep_data: bool,
    /// Run every workload this many times, alternating which registry goes first; each
    /// measure is the median of its rounds (every round's value is in the JSON). Makes the
    /// ratios less sensitive to a machine whose speed drifts over minutes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=15))]
    pub rounds: u64,
    /// Where both registries store: a directory each, or a bucket each on one S3 server (moto,
    /// started by the bench; Distribution with its `s3` driver). The `pull` workload measures
    /// page-cache states of files and runs on the filesystem only.
    #[arg(long, value_enum, default_value = "filesystem")]
    pub backend: Backend,
    /// moto's `moto_server` (default: where `scripts/install-test-deps.sh` installs it).
    #[arg(long)]
    pub moto_bin: Option<PathBuf>,
}

/// Storage of both registries in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A fresh directory each.
    Filesystem,
    /// A bucket each on one moto server.
    S3,
}

/// Everything a run needs, resolved from flags and the mode.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// Quick (smoke) mode.
    pub quick: bool,
    /// Workloads, in run order.
    pub workloads: Vec<String>,
    /// Push sizes in bytes.
    pub push_sizes: Vec<u64>,
    /// Pull sizes in bytes.
    pub pull_sizes: Vec<u64>,
    /// Chunk size in bytes.
    pub chunk_size: u64,
    /// Bytes each (size, mode) push measurement aims to move (bounds the repetitions).
    pub push_budget: u64,
    /// Manifest concurrency levels.
    pub levels: Vec<usize>,
    /// Duration of each manifest phase.
    #[serde(with = "secs")]
    pub manifest_phase: Duration,
    /// Upper bound on operations per manifest phase.
    pub manifest_max_ops: usize,
    /// Rounds of every workload (see `--rounds`).
    pub rounds: u64,
    /// Where both registries store.
    pub backend: Backend,
    /// Tags for the listing workload.
    pub tags: usize,
    /// Repositories for the catalog workload.
    pub repos: usize,
    /// Concurrency of listing setups.
    pub setup_concurrency: usize,
    /// `n` for the paginated listings.
    pub page_size: usize,
    /// Timed repetitions of each listing call (also bounded by `listing_budget`).
    pub listing_reps: usize,
    /// Time budget for the repetitions of one listing call.
    #[serde(with = "secs")]
    pub listing_budget: Duration,
    /// Mixed-run clients.
    pub mixed_clients: usize,
    /// Mixed-run duration.
    #[serde(with = "secs")]
    pub mixed_duration: Duration,
    /// Timeout of one request carrying a large blob.
    #[serde(with = "secs")]
    pub big_timeout: Duration,
    /// Timeout of one small request.
    #[serde(with = "secs")]
    pub small_timeout: Duration,
}

mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The workloads this harness knows.
pub const ALL_WORKLOADS: [&str; 6] = ["push", "pull", "manifest", "tags", "catalog", "mixed"];

/// Parses a size like `512`, `64K`, `8M`, `1G` (binary units) into bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1u64 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1u64 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    if n == 0 {
        bail!("size must be positive: {s:?}");
    }
    Ok(n * mult)
}

fn sizes(given: &Option<Vec<String>>, default: &[u64]) -> Result<Vec<u64>> {
    match given {
        Some(v) => v.iter().map(|s| parse_size(s)).collect(),
        None => Ok(default.to_vec()),
    }
}

impl Args {
    /// Resolves the plan: explicit flags win over the mode's defaults.
    pub fn plan(&self) -> Result<Plan> {
        const M: u64 = 1 << 20;
        let q = self.quick;
        for w in &self.workloads {
            if !ALL_WORKLOADS.contains(&w.as_str()) {
                bail!(
                    "unknown workload {w:?} (known: {})",
                    ALL_WORKLOADS.join(",")
                );
            }
        }
        let secs = |v: Option<f64>, quick: f64, full: f64| -> Result<Duration> {
            let s = v.unwrap_or(if q { quick } else { full });
            if !(s > 0.0 && s < 3600.0) {
                bail!("duration out of range: {s}");
            }
            Ok(Duration::from_secs_f64(s))
        };
        if self.backend == Backend::S3 && self.workloads.iter().any(|w| w == "pull") {
            bail!(
                "the pull workload measures page-cache states of a filesystem; with --backend s3 \
                 run --workloads push,manifest,tags,catalog,mixed"
            );
        }
        let chunk_size = parse_size(&self.chunk_size)?;
        let levels = self.levels.clone().unwrap_or_else(|| vec![1, 16, 64]);
        if levels.iter().any(|&l| l == 0 || l > 1024) || self.mixed_clients == 0 {
            bail!("concurrency must be between 1 and 1024");
        }
        Ok(Plan {
            quick: q,
            workloads: ALL_WORKLOADS
                .iter()
                .filter(|w| self.workloads.iter().any(|x| x == *w))
                .map(|w| (*w).to_string())
                .collect(),
            push_sizes: sizes(
                &self.push_sizes,
                if q {
                    &[M, 16 * M]
                } else {
                    &[M, 64 * M, 512 * M]
                },
            )?,
            pull_sizes: sizes(
                &self.pull_sizes,
                if q { &[16 * M] } else { &[64 * M, 512 * M] },
            )?,
            chunk_size,
            push_budget: if q { 32 * M } else { 256 * M },
            levels,
            manifest_phase: secs(self.manifest_secs, 1.0, 5.0)?,
            manifest_max_ops: 200_000,
            rounds: self.rounds,
            backend: self.backend,
            tags: self.tags.unwrap_or(if q { 500 } else { 10_000 }),
            repos: self.repos.unwrap_or(if q { 200 } else { 5_000 }),
            setup_concurrency: 16,
            page_size: if q { 100 } else { 1000 },
            listing_reps: 3,
            listing_budget: Duration::from_secs(if q { 10 } else { 40 }),
            mixed_clients: self.mixed_clients,
            mixed_duration: secs(self.mixed_secs, 3.0, 20.0)?,
            big_timeout: Duration::from_secs(300),
            small_timeout: Duration::from_secs(30),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("8m").unwrap(), 8 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn quick_plan_is_small() {
        let a = Args::parse_from(["bench", "--quick", "--workloads", "mixed,push"]);
        let p = a.plan().unwrap();
        assert_eq!(p.workloads, vec!["push", "mixed"]);
        assert!(p.push_sizes.iter().all(|&s| s <= 16 << 20));
        assert!(Args::parse_from(["bench", "--workloads", "nope"])
            .plan()
            .is_err());
    }
}
