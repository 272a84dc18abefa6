//! Streaming with bounded memory: a large blob pushed from a file (chunked) and pulled into a
//! writer through `ocireg serve`, with this process's peak RSS (VmHWM) checked. 256 MiB by
//! default; the 2 GiB run is `cargo test -p ocireg-client --test large -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};

use common::*;
use ocireg_client::{BlobSource, ClientOptions, Credentials, PushOutcome};
use ocireg_oci::{Algorithm, DigestHasher};
use tokio::io::AsyncWrite;

/// Peak resident set size of this process, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024
}

/// A writer that only hashes and counts.
struct HashSink(DigestHasher);

impl AsyncWrite for HashSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.update(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn stream_round_trip(size: u64) {
    let reg = start_ocireg();
    let work = tempfile::tempdir().unwrap();
    let (file, digest) = write_blob_file(work.path(), "big.bin", size, 77);
    let before = peak_rss_mib();
    let client = reg.client(
        Credentials::Anonymous,
        ClientOptions {
            timeout: std::time::Duration::from_secs(120),
            ..fast_options()
        },
    );
    let r = repo("big");
    let out = client
        .push_blob(&r, &digest, size, BlobSource::Path(file.clone()))
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Uploaded);
    std::fs::remove_file(&file).unwrap();
    let mut sink = HashSink(DigestHasher::new(Algorithm::Sha256));
    let n = client.pull_blob(&r, &digest, &mut sink).await.unwrap();
    assert_eq!(n, size);
    assert_eq!(sink.0.finish(), digest);
    let peak = peak_rss_mib();
    eprintln!(
        "peak RSS {peak} MiB (before transfers {before} MiB) for {} MiB",
        size >> 20
    );
    assert!(
        peak < 100,
        "peak RSS {peak} MiB for a {} MiB blob",
        size >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_of_256_mib_streams_in_bounded_memory() {
    stream_round_trip(256 * 1024 * 1024 + 123).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "2 GiB of disk and a minute or more; run with --ignored"]
async fn blob_of_2_gib_streams_in_bounded_memory() {
    stream_round_trip(2 * 1024 * 1024 * 1024 + 123).await;
}
