//! Per-endpoint cursors: `cursors/<key>.json` = position of the next record to deliver.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::journal::{fsync_dir, Pos};

/// The file key of an endpoint: a hash of its URL, so credentials in a URL never reach the disk.
pub(crate) fn key(url: &Url) -> String {
    hex::encode(&Sha256::digest(url.as_str().as_bytes())[..12])
}

/// The URL as it may be logged: no user info, no query, no fragment.
pub(crate) fn display(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    segment: u64,
    offset: u64,
}

/// What a cursor file says.
pub(crate) enum Loaded {
    /// No cursor: the endpoint is new.
    Missing,
    /// A readable cursor.
    At(Pos),
    /// A file that cannot be read as a cursor.
    Unreadable,
}

/// Reads an endpoint's cursor.
pub(crate) fn load(dir: &Path, key: &str) -> io::Result<Loaded> {
    match fs::read(path(dir, key)) {
        Ok(data) => Ok(match serde_json::from_slice::<OnDisk>(&data) {
            Ok(c) => Loaded::At(Pos {
                seg: c.segment,
                off: c.offset,
            }),
            Err(_) => Loaded::Unreadable,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Loaded::Missing),
        Err(e) => Err(e),
    }
}

/// Writes an endpoint's cursor: temp file, fsync, rename, directory fsync.
pub(crate) fn store(dir: &Path, key: &str, pos: Pos) -> io::Result<()> {
    let target = path(dir, key);
    let tmp = dir.join(format!("{key}.json.tmp"));
    let body = serde_json::to_vec(&OnDisk {
        segment: pos.seg,
        offset: pos.off,
    })
    .map_err(io::Error::other)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &target)?;
    fsync_dir(dir)
}

/// Cursor files whose key is not in `keep` (endpoints no longer configured).
pub(crate) fn stale(dir: &Path, keep: &[String]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(k) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if !keep.iter().any(|x| x == k) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn display_hides_credentials_and_query() {
        let u = Url::parse("https://user:pw@hooks.example/x?token=abc#f").unwrap();
        assert_eq!(display(&u), "https://hooks.example/x");
        assert_ne!(
            key(&u),
            key(&Url::parse("https://hooks.example/x").unwrap())
        );
    }

    #[test]
    fn store_and_load() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(load(d.path(), "k").unwrap(), Loaded::Missing));
        store(d.path(), "k", Pos { seg: 3, off: 40 }).unwrap();
        assert!(matches!(
            load(d.path(), "k").unwrap(),
            Loaded::At(Pos { seg: 3, off: 40 })
        ));
        fs::write(d.path().join("k.json"), b"{garbage").unwrap();
        assert!(matches!(load(d.path(), "k").unwrap(), Loaded::Unreadable));
        let stale = stale(d.path(), &["other".into()]).unwrap();
        assert_eq!(stale.len(), 1);
    }
}
