//! A 200 MiB file packs, caches and unpacks with bounded memory (streaming, never buffered).
//! Alone in its test binary so the process's peak RSS measures this test only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};

use ocireg_client::artifact::{pack, unpack, ArtifactKind, Cache, CacheOptions, PackOptions};

const SIZE: u64 = 200 * 1024 * 1024;

/// Peak resident set size of this process in KiB (`VmHWM`), when /proc is there.
fn peak_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn large_sparse_file_is_streamed() {
    let src = tempfile::tempdir().unwrap();
    let big = src.path().join("big.img");
    let f = File::create(&big).unwrap();
    f.set_len(SIZE).unwrap(); // sparse: reads as zeros, takes no disk
    drop(f);
    fs::write(src.path().join("small.txt"), b"tail").unwrap();

    let out = tempfile::tempdir().unwrap();
    let mut o = PackOptions::new(ArtifactKind::PlatformImage, "big");
    o.compression = Some(1);
    let p = pack(src.path(), &o, out.path()).unwrap();
    assert_eq!(p.metadata.total_size, SIZE + 4);
    assert!(p.metadata.layer.tar_size > SIZE);
    assert!(p.layer.descriptor.size < SIZE / 100, "zeros compress well");

    let cache = Cache::open(&out.path().join("cache"), CacheOptions::default()).unwrap();
    let d = &p.layer.descriptor.digest;
    cache
        .put_blob_from(File::open(&p.layer.path).unwrap(), d)
        .unwrap();
    let blob = cache.get_blob(d).unwrap().unwrap();

    let dest = out.path().join("dest");
    let r = unpack(
        File::open(&blob.path).unwrap(),
        &p.layer.descriptor.media_type,
        &dest,
    )
    .unwrap();
    assert_eq!(r.bytes, SIZE + 4);
    assert_eq!(fs::metadata(dest.join("big.img")).unwrap().len(), SIZE);
    assert_eq!(fs::read(dest.join("small.txt")).unwrap(), b"tail");

    if let Some(kib) = peak_rss_kib() {
        eprintln!("peak RSS {kib} KiB");
        assert!(
            kib < 64 * 1024,
            "peak RSS {kib} KiB: something buffers the artifact"
        );
    }
}
