//! Unpacking: byte-exact round trips, interoperability, and hostile archives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifact_util;

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;

use artifact_util::{names, sample_tree, snapshot, write_file, RawTar};
use ocireg_client::artifact::{pack, unpack, ArtifactKind, PackOptions};
use ocireg_client::ClientError;
use ocireg_oci::media_types::{OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP, OCI_LAYER_TAR_ZSTD};
use tar::EntryType;

fn opts(compression: Option<u32>) -> PackOptions {
    let mut o = PackOptions::new(ArtifactKind::KclPackage, "pkg");
    o.compression = compression;
    o
}

#[test]
fn round_trip_is_byte_exact() {
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let before = snapshot(src.path());
    for level in [None, Some(1), Some(9)] {
        let out = tempfile::tempdir().unwrap();
        let p = pack(src.path(), &opts(level), out.path()).unwrap();
        let dest = out.path().join("unpacked");
        let report = unpack(
            File::open(&p.layer.path).unwrap(),
            &p.layer.descriptor.media_type,
            &dest,
        )
        .unwrap();
        assert_eq!(snapshot(&dest), before, "level {level:?}");
        assert_eq!(report.files, p.metadata.files);
        assert_eq!(report.symlinks, p.metadata.symlinks);
        assert_eq!(report.directories, p.metadata.directories);
        assert_eq!(report.bytes, p.metadata.total_size);
        // Re-packing the unpacked tree gives the same layer.
        let out2 = tempfile::tempdir().unwrap();
        let p2 = pack(&dest, &opts(level), out2.path()).unwrap();
        assert_eq!(p2.layer.descriptor, p.layer.descriptor);
        // No staging directory left next to dest.
        assert!(names(out.path())
            .iter()
            .all(|n| !n.starts_with(".ocireg-unpack-")));
    }
}

#[test]
fn single_file_round_trip_and_empty_dest_dir() {
    let src = tempfile::tempdir().unwrap();
    write_file(src.path(), "tool", b"#!/bin/sh\n", 0o700);
    let out = tempfile::tempdir().unwrap();
    let p = pack(&src.path().join("tool"), &opts(Some(6)), out.path()).unwrap();
    let dest = out.path().join("dest");
    fs::create_dir(&dest).unwrap();
    unpack(
        File::open(&p.layer.path).unwrap(),
        OCI_LAYER_TAR_GZIP,
        &dest,
    )
    .unwrap();
    let snap = snapshot(&dest);
    assert_eq!(snap.len(), 1);
    assert_eq!(
        snap["tool"],
        artifact_util::Node::File {
            bytes: b"#!/bin/sh\n".to_vec(),
            exec: true
        }
    );
}

#[test]
fn non_empty_destination_and_unknown_media_type_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let tar = RawTar::default().file("a", b"x").finish();
    let dest = base.path().join("dest");
    write_file(&dest, "existing", b"keep", 0o644);
    let e = unpack(&tar[..], OCI_LAYER_TAR, &dest).unwrap_err();
    assert!(matches!(e, ClientError::DestinationNotEmpty(_)), "{e}");
    assert_eq!(names(&dest), ["existing"]);
    let e = unpack(&tar[..], OCI_LAYER_TAR_ZSTD, &base.path().join("z")).unwrap_err();
    assert!(matches!(e, ClientError::UnsupportedMediaType(_)), "{e}");
    // A file as destination.
    let f = base.path().join("file");
    fs::write(&f, b"").unwrap();
    assert!(unpack(&tar[..], OCI_LAYER_TAR, &f).is_err());
    // Media type parameters and case are ignored.
    let ok = base.path().join("ok");
    unpack(&tar[..], "Application/VND.oci.image.layer.v1.tar; x=y", &ok).unwrap();
    assert_eq!(fs::read(ok.join("a")).unwrap(), b"x");
}

#[test]
fn archives_from_system_tar_unpack() {
    if Command::new("tar").arg("--version").output().is_err() {
        eprintln!("no tar binary; skipping");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let base = tempfile::tempdir().unwrap();
    let archive = base.path().join("a.tar.gz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("--format=pax")
        .arg("-C")
        .arg(src.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let dest = base.path().join("dest");
    unpack(File::open(&archive).unwrap(), OCI_LAYER_TAR_GZIP, &dest).unwrap();
    assert_eq!(snapshot(&dest), snapshot(src.path()));
}

/// Unpacks `tar` into `<base>/dest` and checks it is refused as unsafe, that `dest` does not
/// exist afterwards, and that `<base>` holds only `outside/` with its untouched sentinel.
fn assert_refused(tar: &[u8], why: &str) {
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    write_file(&outside, "sentinel", b"untouched", 0o644);
    let dest = base.path().join("dest");
    let e = unpack(tar, OCI_LAYER_TAR, &dest).unwrap_err();
    assert!(
        matches!(e, ClientError::UnsafeEntry { .. }),
        "{why}: expected UnsafeEntry, got {e}"
    );
    assert!(!dest.exists(), "{why}: dest must not exist");
    assert_eq!(
        names(base.path()),
        ["outside"],
        "{why}: stray files next to dest"
    );
    assert_eq!(names(&outside), ["sentinel"], "{why}: wrote outside dest");
    assert_eq!(fs::read(outside.join("sentinel")).unwrap(), b"untouched");
    // Absolute-path attempts point here too.
    assert!(!Path::new("/tmp/ocireg-h8-pwned").exists(), "{why}");
}

#[test]
fn absolute_paths_are_refused() {
    assert_refused(
        &RawTar::default()
            .file("/tmp/ocireg-h8-pwned", b"x")
            .finish(),
        "absolute",
    );
    assert_refused(
        &RawTar::default()
            .file("ok", b"fine")
            .file("/tmp/ocireg-h8-pwned", b"x")
            .finish(),
        "absolute after a good entry",
    );
}

#[test]
fn parent_components_are_refused() {
    assert_refused(
        &RawTar::default().file("../outside/pwned", b"x").finish(),
        "../",
    );
    assert_refused(
        &RawTar::default().file("a/../../outside/p", b"x").finish(),
        "a/../../",
    );
    assert_refused(&RawTar::default().file("a/../b", b"x").finish(), "any ..");
    assert_refused(&RawTar::default().dir("..").finish(), "dir ..");
}

#[test]
fn symlink_escapes_and_writes_through_links_are_refused() {
    assert_refused(
        &RawTar::default()
            .symlink("etc", "/etc")
            .file("etc/pwned", b"x")
            .finish(),
        "symlink to /etc then a file through it",
    );
    assert_refused(
        &RawTar::default()
            .symlink("out", "../outside")
            .file("out/pwned", b"x")
            .finish(),
        "relative escaping symlink",
    );
    assert_refused(
        &RawTar::default()
            .symlink("deep/x", "../../outside")
            .finish(),
        "escaping from a subdirectory",
    );
    // A link that stays inside, but then a file written through it.
    assert_refused(
        &RawTar::default()
            .dir("sub/")
            .symlink("l", "sub")
            .file("l/f", b"x")
            .finish(),
        "write through an inner symlink",
    );
    // Replacing an existing file with a link (or the reverse).
    assert_refused(
        &RawTar::default().file("a", b"1").symlink("a", "b").finish(),
        "duplicate path",
    );
    // Physically escaping chains: d/up -> .. is inside, e -> d/up/.. is not.
    assert_refused(
        &RawTar::default()
            .dir("d/")
            .symlink("d/up", "..")
            .symlink("e", "d/up/..")
            .finish(),
        "chain, link first",
    );
    assert_refused(
        &RawTar::default()
            .dir("d/")
            .symlink("e", "d/up/..")
            .symlink("d/up", "..")
            .finish(),
        "chain, link later (caught by the final check)",
    );
    assert_refused(
        &RawTar::default().symlink("loop", "loop/x").finish(),
        "loop",
    );
}

#[test]
fn inner_symlinks_are_allowed() {
    let base = tempfile::tempdir().unwrap();
    let tar = RawTar::default()
        .file("data/v1.txt", b"v1")
        .symlink("data/current", "v1.txt")
        .symlink("top", "data/../data/v1.txt")
        .symlink("dangling", "not/yet")
        .finish();
    let dest = base.path().join("dest");
    let r = unpack(&tar[..], OCI_LAYER_TAR, &dest).unwrap();
    assert_eq!(r.symlinks, 3);
    assert_eq!(fs::read(dest.join("data/current")).unwrap(), b"v1");
    assert_eq!(fs::read(dest.join("top")).unwrap(), b"v1");
}

#[test]
fn hard_links_escaping_or_odd_are_refused() {
    assert_refused(
        &RawTar::default()
            .hardlink("h", "../outside/sentinel")
            .finish(),
        "hardlink with ..",
    );
    assert_refused(
        &RawTar::default().hardlink("h", "/etc/passwd").finish(),
        "absolute hardlink",
    );
    assert_refused(
        &RawTar::default()
            .symlink("s", "x")
            .file("x", b"1")
            .hardlink("h", "s")
            .finish(),
        "hardlink to a symlink",
    );
    assert_refused(
        &RawTar::default().hardlink("h", "later").finish(),
        "hardlink to nothing",
    );
    // A legitimate one works.
    let base = tempfile::tempdir().unwrap();
    let tar = RawTar::default()
        .file("a/x", b"1")
        .hardlink("b", "a/x")
        .finish();
    let r = unpack(&tar[..], OCI_LAYER_TAR, &base.path().join("d")).unwrap();
    assert_eq!(r.hardlinks, 1);
    assert_eq!(fs::read(base.path().join("d/b")).unwrap(), b"1");
}

#[test]
fn devices_and_fifos_are_refused() {
    assert_refused(
        &RawTar::default().special("null", EntryType::Char).finish(),
        "char device",
    );
    assert_refused(
        &RawTar::default().special("sda", EntryType::Block).finish(),
        "block device",
    );
    assert_refused(
        &RawTar::default().special("p", EntryType::Fifo).finish(),
        "fifo",
    );
    assert_refused(
        &RawTar::default()
            .file("ok", b"x")
            .special("null", EntryType::Char)
            .finish(),
        "device after a good file",
    );
}

#[test]
fn a_file_over_a_directory_or_under_a_file_is_refused() {
    assert_refused(
        &RawTar::default().dir("a/").file("a", b"x").finish(),
        "file over dir",
    );
    assert_refused(
        &RawTar::default().file("a", b"x").file("a/b", b"y").finish(),
        "under file",
    );
}

#[test]
fn truncated_archive_leaves_nothing() {
    let base = tempfile::tempdir().unwrap();
    let mut tar = RawTar::default().file("big", &vec![7u8; 10_000]).finish();
    tar.truncate(3000);
    let dest = base.path().join("dest");
    let e = unpack(&tar[..], OCI_LAYER_TAR, &dest).unwrap_err();
    assert!(matches!(e, ClientError::Io { .. }), "{e}");
    assert!(!dest.exists());
    assert!(names(base.path()).is_empty());
}
