//! The page cache state a pull starts from: a blob's files dropped from it (cold) or read
//! into it (warm), for either registry, whatever its storage layout.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Files under `root` whose path names the digest's hex and whose size is the blob's: the blob's
/// data in Distribution's layout and in ocireg's.
pub fn blob_files(root: &Path, hex: &str, size: u64) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file()
                && entry.metadata()?.len() == size
                && path.to_string_lossy().contains(hex)
            {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Writes back and drops each file's pages from the page cache.
pub fn drop_from_cache(files: &[PathBuf]) -> io::Result<()> {
    for path in files {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        ocireg_sys::write_back_and_drop(&file, 0, len)?;
    }
    Ok(())
}

/// Reads each file through the page cache, so that all of it is cached.
pub fn load_into_cache(files: &[PathBuf]) -> io::Result<()> {
    for path in files {
        io::copy(&mut File::open(path)?, &mut io::sink())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_blob_by_hex_and_size_in_any_layout() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir
            .path()
            .join("docker/registry/v2/blobs/sha256/ab/abcdef/data");
        let b = dir.path().join("blobs/sha256/ab/abcdef");
        let other = dir.path().join("blobs/sha256/cd/cdef01");
        for p in [&a, &b, &other] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"12345").unwrap();
        }
        std::fs::write(dir.path().join("abcdef.link"), b"x").unwrap();
        let mut found = blob_files(dir.path(), "abcdef", 5).unwrap();
        found.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(found, want);
        drop_from_cache(&found).unwrap();
        load_into_cache(&found).unwrap();
    }
}
