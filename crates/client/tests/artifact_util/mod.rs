//! Helpers shared by the `artifact_*` integration tests: building trees, snapshotting them, and
//! writing hand-made (possibly hostile) tar archives.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tar::{EntryType, Header};

/// What a path in a tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file with its bytes and whether it is executable.
    File { bytes: Vec<u8>, exec: bool },
    /// A symlink and its target.
    Link(String),
}

/// Every path below `root` (relative, `/`-separated) with what it is.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Node>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let t = fs::read_link(&path).unwrap();
            out.insert(rel, Node::Link(t.to_str().unwrap().to_owned()));
        } else if meta.is_dir() {
            out.insert(rel.clone(), Node::Dir);
            walk(&path, &rel, out);
        } else {
            let exec = meta.permissions().mode() & 0o111 != 0;
            out.insert(
                rel,
                Node::File {
                    bytes: fs::read(&path).unwrap(),
                    exec,
                },
            );
        }
    }
}

/// Writes `content` to `root/rel` (creating parents) with the given mode.
pub fn write_file(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The sample tree used by several tests: nested dirs, an empty dir, an executable, a symlink
/// that stays inside, non-ASCII and very long names.
pub fn sample_tree(root: &Path) {
    write_file(root, "README.md", b"# sample\n", 0o644);
    write_file(root, "bin/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    write_file(root, "src/a/b/c/deep.k", b"schema X:\n    a: int\n", 0o600);
    write_file(root, "src/main.k", &vec![b'k'; 100_000], 0o664);
    write_file(root, "données/été.txt", "ünïcödé".as_bytes(), 0o644);
    let long_dir = "d".repeat(90);
    let long_name = format!("{long_dir}/{}", "f".repeat(120));
    write_file(root, &long_name, b"long path", 0o644);
    fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
    std::os::unix::fs::symlink("../README.md", root.join("bin/readme-link")).unwrap();
    std::os::unix::fs::symlink(
        format!("{long_dir}/{}", "f".repeat(120)),
        root.join("long-link"),
    )
    .unwrap();
}

/// Builds a tar archive entry by entry with raw names, so tests can write what a well-behaved
/// builder refuses to write (absolute paths, `..`, device nodes).
pub struct RawTar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for RawTar {
    fn default() -> Self {
        RawTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

impl RawTar {
    fn raw_header(name: &str, kind: EntryType, link: Option<&str>, size: u64) -> Header {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        h
    }

    /// A regular file.
    pub fn file(mut self, name: &str, data: &[u8]) -> Self {
        let h = Self::raw_header(name, EntryType::Regular, None, data.len() as u64);
        self.builder.append(&h, data).unwrap();
        self
    }

    /// A directory.
    pub fn dir(mut self, name: &str) -> Self {
        let h = Self::raw_header(name, EntryType::Directory, None, 0);
        self.builder.append(&h, std::io::empty()).unwrap();
        self
    }

    /// A symlink.
    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::raw_header(name, EntryType::Symlink, Some(target), 0);
        self.builder.append(&h, std::io::empty()).unwrap();
        self
    }

    /// A hard link.
    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::raw_header(name, EntryType::Link, Some(target), 0);
        self.builder.append(&h, std::io::empty()).unwrap();
        self
    }

    /// Any other entry type with no data (devices, FIFOs).
    pub fn special(mut self, name: &str, kind: EntryType) -> Self {
        let mut h = Self::raw_header(name, kind, None, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        self.builder.append(&h, std::io::empty()).unwrap();
        self
    }

    /// The finished archive bytes.
    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}
