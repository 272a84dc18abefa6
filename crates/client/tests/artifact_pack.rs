//! Packing: determinism, layouts, metadata, manifest validity, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifact_util;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use artifact_util::{sample_tree, write_file};
use ocireg_client::artifact::{
    annotations, pack, ArtifactConfig, ArtifactKind, PackOptions, PackedArtifact,
};
use ocireg_client::ClientError;
use ocireg_oci::{media_types, parse_manifest, Algorithm, Digest, DigestHasher};

fn opts(compression: Option<u32>) -> PackOptions {
    let mut o = PackOptions::new(ArtifactKind::Extension, "aws");
    o.compression = compression;
    o.version = Some("1.2.3".to_owned());
    o
}

fn pack_to(src: &Path, o: &PackOptions) -> (tempfile::TempDir, PackedArtifact) {
    let out = tempfile::tempdir().unwrap();
    let p = pack(src, o, out.path()).unwrap();
    (out, p)
}

fn sha256_file(path: &Path) -> (Digest, u64) {
    let mut f = File::open(path).unwrap();
    let mut h = DigestHasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 65536];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let n = h.bytes_hashed();
    (h.finish(), n)
}

/// Entry names of a layer, in archive order, read back with the tar crate.
fn entry_names(p: &PackedArtifact) -> Vec<(String, u32, u64, u64, u64)> {
    let f = File::open(&p.layer.path).unwrap();
    let r: Box<dyn Read> = if p.layer.descriptor.media_type.ends_with("+gzip") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut a = tar::Archive::new(r);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_str().unwrap().to_owned(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
            )
        })
        .collect()
}

/// The same tree, built in a different order with different mtimes and non-exec mode bits.
fn build_twins(a: &Path, b: &Path) {
    write_file(a, "x/1.txt", b"one", 0o644);
    write_file(a, "x/2.sh", b"two", 0o755);
    write_file(a, "y.txt", b"why", 0o644);
    fs::create_dir_all(a.join("z/empty")).unwrap();

    fs::create_dir_all(b.join("z/empty")).unwrap();
    write_file(b, "y.txt", b"why", 0o600);
    write_file(b, "x/2.sh", b"two", 0o700);
    write_file(b, "x/1.txt", b"one", 0o664);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for rel in ["y.txt", "x/2.sh", "x/1.txt"] {
        File::options()
            .write(true)
            .open(b.join(rel))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
}

#[test]
fn same_content_gives_same_digests_whatever_the_mtimes_order_and_modes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build_twins(a.path(), b.path());
    for level in [None, Some(0), Some(6), Some(9)] {
        let o = opts(level);
        let (_oa, pa) = pack_to(a.path(), &o);
        let (_ob, pb) = pack_to(b.path(), &o);
        let (_oc, pc) = pack_to(a.path(), &o);
        assert_eq!(pa.layer.descriptor, pb.layer.descriptor, "level {level:?}");
        assert_eq!(pa.layer.descriptor, pc.layer.descriptor, "level {level:?}");
        assert_eq!(pa.config, pb.config);
        assert_eq!(pa.manifest, pb.manifest);
        assert_eq!(
            fs::read(&pa.layer.path).unwrap(),
            fs::read(&pb.layer.path).unwrap()
        );
    }
}

#[test]
fn gzip_levels_differ_but_share_the_tar_digest() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let (_o, plain) = pack_to(src.path(), &opts(None));
    assert_eq!(
        plain.layer.descriptor.media_type,
        media_types::OCI_LAYER_TAR
    );
    assert_eq!(plain.metadata.layer.diff_id, plain.layer.descriptor.digest);
    let mut digests = vec![plain.layer.descriptor.digest.clone()];
    let mut keep = Vec::new();
    for level in [0, 6, 9] {
        let (o, p) = pack_to(src.path(), &opts(Some(level)));
        assert_eq!(
            p.layer.descriptor.media_type,
            media_types::OCI_LAYER_TAR_GZIP
        );
        assert_eq!(p.metadata.layer.diff_id, plain.layer.descriptor.digest);
        assert_eq!(p.metadata.layer.compression_level, Some(level));
        // The gzip stream decompresses to exactly the plain tar.
        let mut dec = Vec::new();
        flate2::read::GzDecoder::new(File::open(&p.layer.path).unwrap())
            .read_to_end(&mut dec)
            .unwrap();
        assert_eq!(dec, fs::read(&plain.layer.path).unwrap());
        // Header: no FNAME flag, mtime 0, OS byte 255.
        let raw = fs::read(&p.layer.path).unwrap();
        assert_eq!(&raw[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&raw[4..8], &[0, 0, 0, 0]);
        assert_eq!(raw[9], 255);
        digests.push(p.layer.descriptor.digest.clone());
        keep.push(o);
    }
    let n = digests.len();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), n, "levels must give distinct layers");
    // Level 9 is smaller than level 0 on compressible content.
    assert!(keep.len() == 3);
}

#[test]
fn layer_descriptor_matches_file_on_disk() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    for level in [None, Some(6)] {
        let (out, p) = pack_to(src.path(), &opts(level));
        let (d, n) = sha256_file(&p.layer.path);
        assert_eq!(d, p.layer.descriptor.digest);
        assert_eq!(n, p.layer.descriptor.size);
        assert!(p.layer.path.starts_with(out.path()));
        assert!(p
            .layer
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .contains(&*d.hex()));
        // Only the layer is left in out_dir: no temp files.
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 1);
        assert!(p.config.descriptor.digest.verify(&p.config.bytes));
        assert!(p.manifest.descriptor.digest.verify(&p.manifest.bytes));
    }
}

#[test]
fn entries_are_sorted_and_normalised() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let (_o, p) = pack_to(src.path(), &opts(Some(6)));
    let entries = entry_names(&p);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let long = format!("{}/{}", "d".repeat(90), "f".repeat(120));
    let expected = vec![
        "README.md".to_owned(),
        "bin/".to_owned(),
        "bin/readme-link".to_owned(),
        "bin/run.sh".to_owned(),
        format!("{}/", "d".repeat(90)),
        long.clone(),
        "données/".to_owned(),
        "données/été.txt".to_owned(),
        "empty/".to_owned(),
        "empty/nested-empty/".to_owned(),
        "long-link".to_owned(),
        "src/".to_owned(),
        "src/a/".to_owned(),
        "src/a/b/".to_owned(),
        "src/a/b/c/".to_owned(),
        "src/a/b/c/deep.k".to_owned(),
        "src/main.k".to_owned(),
    ];
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for (name, mode, mtime, uid, gid) in &entries {
        assert_eq!((*mtime, *uid, *gid), (0, 0, 0), "{name}");
        let want = if name.ends_with('/') || name == "bin/run.sh" {
            0o755
        } else if name.ends_with("link") {
            0o777
        } else {
            0o644
        };
        assert_eq!(*mode, want, "{name}");
    }
    let m = &p.metadata;
    assert_eq!((m.files, m.directories, m.symlinks), (6, 9, 2));
    assert_eq!(
        m.total_size,
        9 + 18 + 21 + 100_000 + "ünïcödé".len() as u64 + 9
    );
    assert_eq!(m.source, "directory");
}

#[test]
fn single_file_becomes_one_entry_named_by_its_file_name() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "tool.bin", b"\x7fELF...", 0o750);
    let (_o, p) = pack_to(&dir.path().join("tool.bin"), &opts(None));
    let entries = entry_names(&p);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "tool.bin");
    assert_eq!(entries[0].1, 0o755, "executable bit kept");
    assert_eq!(p.metadata.source, "file");
    assert_eq!((p.metadata.files, p.metadata.total_size), (1, 7));
}

#[test]
fn empty_directory_packs_to_an_empty_tar() {
    let dir = tempfile::tempdir().unwrap();
    let (_o, p) = pack_to(dir.path(), &opts(None));
    assert!(entry_names(&p).is_empty());
    assert_eq!(
        p.layer.descriptor.size, 1024,
        "just the two end-of-archive blocks"
    );
    assert_eq!(
        p.layer.descriptor.digest,
        Digest::compute(Algorithm::Sha256, &[0u8; 1024])
    );
    assert_eq!((p.metadata.files, p.metadata.directories), (0, 0));
}

#[test]
fn config_and_manifest_are_valid_and_annotated() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let created = time::macros::datetime!(2024-05-06 07:08:09 +02:00);
    let mut o = PackOptions::new(ArtifactKind::parse("custom:tools").unwrap(), "team/kit");
    o.compression = Some(6);
    o.version = Some("2.0.0".to_owned());
    o.created = Some(created);
    o.annotations = BTreeMap::from([(
        "org.opencontainers.image.source".to_owned(),
        "https://example.invalid/kit".to_owned(),
    )]);
    let (_o, p) = pack_to(src.path(), &o);

    let parsed = parse_manifest(&p.manifest.bytes, Some(media_types::OCI_MANIFEST)).unwrap();
    assert_eq!(
        parsed.artifact_type.as_deref(),
        Some("application/vnd.provisioning.custom.v1")
    );
    assert_eq!(parsed.config.as_ref().unwrap(), &p.config.descriptor);
    assert_eq!(
        p.config.descriptor.media_type,
        "application/vnd.provisioning.custom.config.v1+json"
    );
    assert_eq!(parsed.layers, vec![p.layer.descriptor.clone()]);
    let a = &parsed.annotations;
    assert_eq!(a[annotations::TITLE], "team/kit");
    assert_eq!(a[annotations::VERSION], "2.0.0");
    assert_eq!(a[annotations::CREATED], "2024-05-06T05:08:09Z");
    assert_eq!(a[annotations::KIND], "custom:tools");
    assert_eq!(a[annotations::CUSTOM_KEY], "tools");
    assert_eq!(
        a["org.opencontainers.image.source"],
        "https://example.invalid/kit"
    );
    assert_eq!(
        p.layer.descriptor.annotations.as_ref().unwrap()[annotations::TITLE],
        "kit.tar.gz"
    );
    assert_eq!(
        p.manifest.descriptor.artifact_type.as_deref(),
        parsed.artifact_type.as_deref()
    );

    let cfg = ArtifactConfig::from_bytes(&p.config.bytes).unwrap();
    assert_eq!(cfg, p.metadata);
    assert_eq!(cfg.kind, "custom:tools");
    assert_eq!(cfg.custom_key.as_deref(), Some("tools"));
    assert_eq!(cfg.created.as_deref(), Some("2024-05-06T05:08:09Z"));
    let json: serde_json::Value = serde_json::from_slice(&p.config.bytes).unwrap();
    for key in [
        "schemaVersion",
        "kind",
        "name",
        "version",
        "created",
        "files",
        "totalSize",
        "layer",
    ] {
        assert!(json.get(key).is_some(), "config lacks {key}");
    }
    assert_eq!(json["layer"]["diffId"], cfg.layer.diff_id.to_string());

    // `created` changes config and manifest, never the layer.
    let mut later = o.clone();
    later.created = Some(created + time::Duration::hours(1));
    let (_o2, p2) = pack_to(src.path(), &later);
    assert_eq!(p2.layer.descriptor, p.layer.descriptor);
    assert_ne!(p2.config.descriptor.digest, p.config.descriptor.digest);
    assert_ne!(p2.manifest.descriptor.digest, p.manifest.descriptor.digest);
}

#[test]
fn every_kind_gets_its_own_artifact_type() {
    let src = tempfile::tempdir().unwrap();
    write_file(src.path(), "f", b"x", 0o644);
    let mut seen = Vec::new();
    for k in ["extension", "kcl-package", "platform-image", "test-image"] {
        let kind = ArtifactKind::parse(k).unwrap();
        let (_o, p) = pack_to(src.path(), &PackOptions::new(kind.clone(), "n"));
        let parsed = parse_manifest(&p.manifest.bytes, None).unwrap();
        assert_eq!(parsed.artifact_type.as_deref(), Some(kind.artifact_type()));
        assert_eq!(p.config.descriptor.media_type, kind.config_media_type());
        seen.push(p.manifest.descriptor.digest);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4);
}

#[test]
fn refusals() {
    let src = tempfile::tempdir().unwrap();
    write_file(src.path(), "f", b"x", 0o644);
    let out = tempfile::tempdir().unwrap();

    let e = pack(src.path(), &opts(Some(10)), out.path()).unwrap_err();
    assert!(matches!(e, ClientError::InvalidOption(_)), "{e}");
    let mut o = opts(None);
    o.name = String::new();
    assert!(matches!(
        pack(src.path(), &o, out.path()),
        Err(ClientError::InvalidOption(_))
    ));
    let mut o = opts(None);
    o.annotations
        .insert(annotations::KIND.to_owned(), "x".to_owned());
    assert!(matches!(
        pack(src.path(), &o, out.path()),
        Err(ClientError::InvalidOption(_))
    ));

    // Output directory inside the packed directory.
    let inner = src.path().join("out");
    fs::create_dir(&inner).unwrap();
    assert!(matches!(
        pack(src.path(), &opts(None), &inner),
        Err(ClientError::InvalidOption(_))
    ));
    fs::remove_dir(&inner).unwrap();

    // Symlinks leaving the tree.
    std::os::unix::fs::symlink("/etc/passwd", src.path().join("abs")).unwrap();
    let e = pack(src.path(), &opts(None), out.path()).unwrap_err();
    assert!(matches!(e, ClientError::UnsupportedSource { .. }), "{e}");
    fs::remove_file(src.path().join("abs")).unwrap();
    std::os::unix::fs::symlink("../../x", src.path().join("rel")).unwrap();
    assert!(pack(src.path(), &opts(None), out.path()).is_err());
    fs::remove_file(src.path().join("rel")).unwrap();

    // A FIFO.
    let st = Command::new("mkfifo")
        .arg(src.path().join("pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    let e = pack(src.path(), &opts(None), out.path()).unwrap_err();
    assert!(e.to_string().contains("special files"), "{e}");

    // Nothing left behind by the failures.
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
    assert!(pack(&src.path().join("missing"), &opts(None), out.path()).is_err());
}

#[test]
fn hard_links_are_stored_as_regular_files() {
    let src = tempfile::tempdir().unwrap();
    write_file(src.path(), "a", b"same", 0o644);
    fs::hard_link(src.path().join("a"), src.path().join("b")).unwrap();
    let (_o, p) = pack_to(src.path(), &opts(None));
    assert_eq!(p.metadata.files, 2);
    assert_eq!(p.metadata.total_size, 8);
}

#[test]
fn system_tar_reads_the_layers() {
    if Command::new("tar").arg("--version").output().is_err() {
        eprintln!("no tar binary; skipping");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    for level in [None, Some(9)] {
        let (_o, p) = pack_to(src.path(), &opts(level));
        let mut cmd = Command::new("tar");
        cmd.arg(if level.is_some() { "-tzvf" } else { "-tvf" })
            .arg(&p.layer.path);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains("bin/run.sh"), "{listing}");
        assert!(
            listing.contains(&"f".repeat(120)),
            "GNU long name understood"
        );
        assert!(listing.contains("-rwxr-xr-x"), "{listing}");
    }
}
