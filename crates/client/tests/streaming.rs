//! Streaming push (pack straight into a chunked upload, digest computed on the way) against
//! `ocireg serve`: round trip, same digests as packing to a file, resume after a dropped chunk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;

use common::fault::{Fault, FaultProxy, Rule};
use common::*;
use ocireg_client::artifact::{
    pack, pack_to_writer, pipe, ArtifactKind, PackOptions, PackedStream,
};
use ocireg_client::{Credentials, Registry};
use ocireg_oci::{Digest, RepoName};

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("a.bin"), pseudo_random(3 * 1024 * 1024 + 11, 1)).unwrap();
    fs::write(dir.join("sub/b.txt"), b"hello\n").unwrap();
    fs::write(dir.join("sub/deeper/c.bin"), pseudo_random(700_001, 2)).unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
}

fn options(compression: Option<u32>) -> PackOptions {
    let mut o = PackOptions::new(ArtifactKind::Extension, "stream-test");
    o.compression = compression;
    o
}

/// Packs `src` in a blocking thread into a pipe that `push_blob_streaming` uploads.
async fn stream_push(
    reg: &Registry,
    r: &RepoName,
    src: &Path,
    o: &PackOptions,
) -> (PackedStream, Digest, u64) {
    let (w, rd) = pipe(4);
    let (src, o) = (src.to_path_buf(), o.clone());
    let job = tokio::task::spawn_blocking(move || {
        let (packed, w) = pack_to_writer(&src, &o, w).unwrap();
        w.finish().unwrap();
        packed
    });
    let (digest, size) = reg.push_blob_streaming(r, rd).await.unwrap();
    (job.await.unwrap(), digest, size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_push_round_trips_with_the_digests_of_a_packed_file() {
    let reg = start_ocireg();
    let client = reg.client(Credentials::Anonymous, small_chunks());
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    tree(&src);
    for compression in [None, Some(6)] {
        let o = options(compression);
        let out = tempfile::tempdir().unwrap();
        let file = pack(&src, &o, out.path()).unwrap();
        let r = repo(&format!("stream/{}", compression.map_or(0, |c| c + 1)));

        let (packed, digest, size) = stream_push(&client, &r, &src, &o).await;
        assert_eq!(digest, file.layer.descriptor.digest, "{compression:?}");
        assert_eq!(size, file.layer.descriptor.size);
        assert_eq!(packed.layer, file.layer.descriptor);
        assert_eq!(packed.config, file.config);
        assert_eq!(packed.manifest, file.manifest);
        assert!(size > 1024 * 1024, "several chunks: {size}");

        // Deterministic: a second streamed push of the same tree gives the same digest.
        let (_, again, _) = stream_push(&client, &r, &src, &o).await;
        assert_eq!(again, digest);

        let pulled = work.path().join(format!("pulled-{compression:?}"));
        client
            .pull_blob_to_file(&r, &digest, &pulled)
            .await
            .unwrap();
        assert_eq!(
            fs::read(&pulled).unwrap(),
            fs::read(&file.layer.path).unwrap()
        );
    }

    // A small stream goes in one PUT; an empty one too.
    let r = repo("stream/small");
    let one = work.path().join("one.txt");
    fs::write(&one, b"tiny").unwrap();
    let (packed, digest, size) = stream_push(&client, &r, &one, &options(None)).await;
    assert_eq!(
        (digest.clone(), size),
        (packed.layer.digest, packed.layer.size)
    );
    assert!(client.blob_exists(&r, &digest).await.unwrap());
    let (d, n) = client
        .push_blob_streaming(&r, tokio::io::empty())
        .await
        .unwrap();
    assert_eq!((d.clone(), n), (sha256(b""), 0));
    assert!(client.blob_exists(&r, &d).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_push_resumes_inside_the_chunk_after_a_dropped_patch() {
    let reg = start_ocireg();
    let proxy = FaultProxy::start(&reg.url).await;
    // The third PATCH breaks after 300 000 bytes; a 503 on the fifth.
    proxy.add(
        Rule::new(
            Some("PATCH"),
            "/blobs/uploads/",
            1,
            Fault::DropRequestAfter(300_000),
        )
        .after(2),
    );
    proxy.add(
        Rule::new(
            Some("PATCH"),
            "/blobs/uploads/",
            1,
            Fault::Status(503, Some("0".into())),
        )
        .after(4),
    );
    let client = Registry::new(&proxy.url, Credentials::Anonymous, small_chunks()).unwrap();
    let data = pseudo_random(6 * 1024 * 1024 + 3, 9);
    let expected = sha256(&data);
    let r = repo("stream/resume");
    let (digest, size) = client
        .push_blob_streaming(&r, std::io::Cursor::new(data.clone()))
        .await
        .unwrap();
    assert_eq!((digest.clone(), size), (expected, data.len() as u64));

    let seen = proxy.seen();
    assert_eq!(seen.iter().filter(|s| s.method == "POST").count(), 1);
    let dropped = seen
        .iter()
        .position(|s| matches!(s.fault, Some(Fault::DropRequestAfter(_))))
        .unwrap();
    assert_eq!(seen[dropped + 1].method, "GET", "asks for the offset");
    assert!(
        proxy.request_body_bytes() <= data.len() as u64 + 1024 * 1024,
        "at most one chunk re-sent"
    );
    let direct = reg.client(Credentials::Anonymous, fast_options());
    let pulled = tempfile::tempdir().unwrap();
    let out = pulled.path().join("blob");
    direct.pull_blob_to_file(&r, &digest, &out).await.unwrap();
    assert_eq!(fs::read(&out).unwrap(), data);
}
