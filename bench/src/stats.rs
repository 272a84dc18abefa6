//! Latency statistics, error accounting, a small PRNG and test-data generation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Percentiles of a latency sample, in milliseconds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Latency {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// Nearest-rank percentiles of `samples` (sorted in place).
pub fn latency(samples: &mut [Duration]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_unstable();
    let rank = |p: f64| {
        let idx = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[idx.clamp(1, samples.len()) - 1].as_secs_f64() * 1e3
    };
    Latency {
        count: samples.len(),
        p50_ms: rank(50.0),
        p99_ms: rank(99.0),
        max_ms: rank(100.0),
    }
}

/// Errors of one workload on one registry: a count and the first few messages.
#[derive(Debug, Default)]
pub struct Errors {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

/// How many distinct error messages are kept per workload.
const MAX_SAMPLES: usize = 8;

impl Errors {
    /// Records one error.
    pub fn record(&self, what: &str, err: &anyhow::Error) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.samples.lock() {
            if s.len() < MAX_SAMPLES {
                s.push(format!("{what}: {err:#}"));
            }
        }
    }

    /// Number of errors so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The kept messages.
    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A SplitMix64 generator: fast, seedable, good enough for test data and random picks.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// `size` pseudo-random bytes from `seed`.
pub fn random_bytes(size: usize, seed: u64) -> Bytes {
    let mut rng = Rng::new(seed);
    let mut v = vec![0u8; size];
    for chunk in v.chunks_mut(8) {
        let r = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    Bytes::from(v)
}

/// The `sha256:<hex>` digest of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s <= 0.0 {
        return 0.0;
    }
    bytes as f64 / 1e6 / s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        v.reverse();
        let l = latency(&mut v);
        assert_eq!(l.count, 100);
        assert!((l.p50_ms - 50.0).abs() < 1e-9);
        assert!((l.p99_ms - 99.0).abs() < 1e-9);
        assert!((l.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(latency(&mut []).count, 0);
    }

    #[test]
    fn data_is_deterministic_and_distinct() {
        let a = random_bytes(1001, 7);
        assert_eq!(a.len(), 1001);
        assert_eq!(a, random_bytes(1001, 7));
        assert_ne!(a, random_bytes(1001, 8));
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn errors_are_counted() {
        let e = Errors::default();
        for _ in 0..20 {
            e.record("x", &anyhow::anyhow!("boom"));
        }
        assert_eq!(e.count(), 20);
        assert_eq!(e.samples().len(), MAX_SAMPLES);
    }
}
