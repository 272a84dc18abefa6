//! Running N concurrent clients, bounded by both time and operation count.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::stats::Errors;

/// The future one operation returns.
pub type OpFuture<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// One operation: called with (client index, operation number).
pub type Op<T> = Arc<dyn Fn(usize, usize) -> OpFuture<T> + Send + Sync>;

/// What a phase of concurrent operations produced.
#[derive(Debug)]
pub struct Phase<T> {
    /// Outputs of the successful operations.
    pub ok: Vec<T>,
    /// Latency of each successful operation.
    pub latencies: Vec<Duration>,
    /// Failed operations.
    pub errors: u64,
    /// Wall time from start until every client finished.
    pub elapsed: Duration,
}

impl<T> Phase<T> {
    /// Successful operations per second of wall time.
    pub fn ops_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.ok.len() as f64 / s
        } else {
            0.0
        }
    }
}

/// When a phase ends, and how its operations are numbered.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After `duration`, or once `max_ops` operations (over all clients) have started; each
    /// client numbers its own operations from 0.
    Timed { duration: Duration, max_ops: usize },
    /// Once the global indices `0..total` have each been handed out (for setups that must
    /// create exactly N things), or at `timeout`.
    Each { total: usize, timeout: Duration },
}

/// Runs `clients` tasks that each repeat `op` until the phase ends; failures are counted and
/// recorded in `errors` as `what`.
pub async fn run<T: Send + 'static>(
    clients: usize,
    until: Until,
    errors: Arc<Errors>,
    what: &'static str,
    op: Op<T>,
) -> Phase<T> {
    let (duration, max_ops, indexed) = match until {
        Until::Timed { duration, max_ops } => (duration, max_ops, false),
        Until::Each { total, timeout } => (timeout, total, true),
    };
    let started = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(clients);
    for c in 0..clients {
        let (started, errors, op) = (started.clone(), errors.clone(), op.clone());
        handles.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let mut lat = Vec::new();
            let mut errs = 0u64;
            let mut local = 0usize;
            while t0.elapsed() < duration {
                let global = started.fetch_add(1, Ordering::Relaxed);
                if global >= max_ops {
                    break;
                }
                let n = if indexed { global } else { local };
                local += 1;
                let t = Instant::now();
                match op(c, n).await {
                    Ok(v) => {
                        lat.push(t.elapsed());
                        ok.push(v);
                    }
                    Err(e) => {
                        errs += 1;
                        errors.record(what, &e);
                    }
                }
            }
            (ok, lat, errs)
        }));
    }
    let mut out = Phase {
        ok: Vec::new(),
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for h in handles {
        match h.await {
            Ok((ok, lat, errs)) => {
                out.ok.extend(ok);
                out.latencies.extend(lat);
                out.errors += errs;
            }
            Err(e) => {
                out.errors += 1;
                errors.record(what, &anyhow::anyhow!("client task failed: {e}"));
            }
        }
    }
    out.elapsed = t0.elapsed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn indexed_runs_each_once_and_counts_errors() {
        let errors = Arc::new(Errors::default());
        let op: Op<usize> = Arc::new(|_c, i| {
            Box::pin(async move {
                if i % 10 == 0 {
                    anyhow::bail!("fail {i}")
                }
                Ok(i)
            })
        });
        let until = Until::Each {
            total: 100,
            timeout: Duration::from_secs(10),
        };
        let p = run(4, until, errors.clone(), "t", op).await;
        let mut ok = p.ok.clone();
        ok.sort_unstable();
        assert_eq!(ok.len(), 90);
        assert_eq!(ok.iter().filter(|i| *i % 10 == 0).count(), 0);
        ok.dedup();
        assert_eq!(ok.len(), 90);
        assert_eq!(p.errors, 10);
        assert_eq!(errors.count(), 10);
        assert_eq!(p.latencies.len(), 90);
    }

    #[tokio::test]
    async fn timed_stops_on_time() {
        let errors = Arc::new(Errors::default());
        let op: Op<()> = Arc::new(|_c, _i| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            })
        });
        let until = Until::Timed {
            duration: Duration::from_millis(100),
            max_ops: usize::MAX,
        };
        let p = run(3, until, errors, "t", op).await;
        assert!(p.elapsed < Duration::from_secs(2));
        assert!(!p.ok.is_empty() && p.ok.len() < 200);
    }
}
