//! Whether compressing a layer pays: a sample of the content to pack (the first bytes of its
//! files, in packing order) is compressed at the requested level before packing; content that
//! barely shrinks (already compressed archives, images, random data) is stored as an
//! uncompressed tar instead, which costs nothing to unpack and no CPU to push. Only the sample
//! is read twice, so packing stays one streaming pass.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

/// At most this many bytes of content are sampled.
pub const SAMPLE_BYTES: usize = 1 << 20;
/// At most this many bytes are taken from one file, so that a tree's sample spans several.
const PER_FILE_BYTES: usize = 256 << 10;
/// Compression pays when the sample shrinks below this fraction of its size.
pub const WORTHWHILE_RATIO: f64 = 0.9;

/// The first bytes of the regular files under `path` (or of `path` itself), in the byte order
/// of their paths as the packer walks them, up to [`SAMPLE_BYTES`]. Unreadable entries are
/// skipped: packing reports them.
fn sample(path: &Path, out: &mut Vec<u8>) {
    if out.len() >= SAMPLE_BYTES {
        return;
    }
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        let want = (SAMPLE_BYTES - out.len()).min(PER_FILE_BYTES);
        if let Ok(f) = fs::File::open(path) {
            let _ = f.take(want as u64).read_to_end(out);
        }
    } else if meta.is_dir() {
        let Ok(rd) = fs::read_dir(path) else { return };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort_unstable();
        for n in names {
            sample(&path.join(n), out);
        }
    }
}

/// Gzip-compressed size of `data` at `level`.
fn compressed_len(data: &[u8], level: u32) -> io::Result<usize> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(level));
    enc.write_all(data)?;
    Ok(enc.finish()?.len())
}

/// Why a layer is stored uncompressed although compression was asked for, or `None` when
/// compressing `path` at `level` pays (an empty sample, e.g. only empty files, compresses).
pub fn skip_reason(path: &Path, level: u32) -> Option<String> {
    let mut data = Vec::new();
    let follow = if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::canonicalize(path).ok()?
    } else {
        path.to_path_buf()
    };
    sample(&follow, &mut data);
    if data.is_empty() {
        return None;
    }
    let packed = compressed_len(&data, level).ok()?;
    let ratio = packed as f64 / data.len() as f64;
    (ratio >= WORTHWHILE_RATIO).then(|| {
        format!(
            "incompressible: a {} KiB sample compressed to {:.0}% of its size (already compressed or random data)",
            data.len().div_ceil(1024),
            ratio * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_compresses_and_noise_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("t.txt");
        fs::write(&text, "schema X:\n    a: int = 1\n".repeat(4000)).unwrap();
        assert_eq!(skip_reason(&text, 6), None);
        let bin = dir.path().join("r.bin");
        fs::write(
            &bin,
            ocireg_test_support::xorshift::bytes(3 * SAMPLE_BYTES, 7),
        )
        .unwrap();
        let why = skip_reason(&bin, 6).expect("random data is not worth compressing");
        assert!(why.starts_with("incompressible: a 256 KiB sample"), "{why}");
        // Already gzip-compressed content is incompressible too.
        let gz = dir.path().join("x.gz");
        let mut enc = GzEncoder::new(Vec::new(), Compression::new(9));
        enc.write_all(&ocireg_test_support::xorshift::bytes(100_000, 8))
            .unwrap();
        enc.write_all(&"text ".repeat(100_000).into_bytes())
            .unwrap();
        fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert!(skip_reason(&gz, 6).is_some());
        let empty = dir.path().join("e");
        fs::write(&empty, b"").unwrap();
        assert_eq!(skip_reason(&empty, 6), None);
    }

    #[test]
    fn a_tree_is_judged_by_samples_of_several_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("a.bin"),
            ocireg_test_support::xorshift::bytes(PER_FILE_BYTES * 2, 9),
        )
        .unwrap();
        fs::write(dir.path().join("b.txt"), "line of text\n".repeat(100_000)).unwrap();
        // Half noise, half text: compresses to about half, which pays.
        assert_eq!(skip_reason(dir.path(), 6), None);
        let mut data = Vec::new();
        sample(dir.path(), &mut data);
        assert_eq!(data.len(), 2 * PER_FILE_BYTES);
        fs::write(
            dir.path().join("b.txt"),
            ocireg_test_support::xorshift::bytes(PER_FILE_BYTES, 10),
        )
        .unwrap();
        assert!(skip_reason(dir.path(), 6).is_some());
    }
}
