//! The append-only journal: numbered segment files of checksummed records (blocking I/O; callers
//! run it on the blocking pool).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `len: u32 LE` + 8 check bytes.
const HEADER: usize = 12;
/// Largest payload accepted when reading (a larger length is corruption).
const MAX_RECORD: usize = 16 * 1024 * 1024;

/// A position in the journal: segment number and byte offset inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub(crate) seg: u64,
    pub(crate) off: u64,
}

/// The path of segment `seg`.
pub(crate) fn segment_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:020}.log"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The segment numbers present in `dir`, ascending; other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seg) = entry.file_name().to_str().and_then(parse_segment_name) {
            if entry.file_type()?.is_file() {
                segs.push(seg);
            }
        }
    }
    segs.sort_unstable();
    Ok(segs)
}

fn check(payload: &[u8]) -> [u8; 8] {
    let sum = Sha256::digest(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&sum[..8]);
    out
}

/// One record's bytes.
pub(crate) fn encode(payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_RECORD)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "event too large"))?;
    let mut rec = Vec::with_capacity(HEADER + payload.len());
    rec.extend_from_slice(&len.to_le_bytes());
    rec.extend_from_slice(&check(payload));
    rec.extend_from_slice(payload);
    Ok(rec)
}

/// The record at the start of `buf`: `Some(total length)` when complete and intact.
fn decode(buf: &[u8]) -> Option<usize> {
    let len_bytes: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = buf.get(HEADER..HEADER + len)?;
    (buf.get(4..HEADER)? == check(payload)).then_some(HEADER + len)
}

/// Records read from one segment.
pub(crate) struct Batch {
    /// `(offset just after the record, payload)`, in order.
    pub(crate) records: Vec<(u64, bytes::Bytes)>,
    /// Reading stopped at bytes that are not an intact record.
    pub(crate) damaged: bool,
}

/// Reads records of segment `path` from `from` up to `upto` (or the end of the file), at most
/// about `max_bytes` of them (always at least one when there is one).
pub(crate) fn read_batch(
    path: &Path,
    from: u64,
    upto: Option<u64>,
    max_bytes: usize,
) -> io::Result<Batch> {
    let mut file = File::open(path)?;
    let end = match upto {
        Some(u) => u,
        None => file.metadata()?.len(),
    };
    let want = usize::try_from(end.saturating_sub(from)).unwrap_or(usize::MAX);
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(from))?;
    let cap = want.min(max_bytes.max(HEADER)) as u64;
    file.take(cap).read_to_end(&mut buf)?;
    if buf.len() < want && buf.len() >= HEADER {
        // The first record may be larger than `max_bytes`: read it whole.
        let len_bytes: [u8; 4] = buf[..4].try_into().unwrap_or_default();
        let first = HEADER + u32::from_le_bytes(len_bytes) as usize;
        if first > buf.len() && first <= want && first <= HEADER + MAX_RECORD {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(from))?;
            buf.clear();
            f.take(first as u64).read_to_end(&mut buf)?;
        }
    }
    let mut records = Vec::new();
    let mut at = 0usize;
    let mut damaged = false;
    let whole = bytes::Bytes::from(buf);
    while at < whole.len() {
        match decode(&whole[at..]) {
            Some(total) => {
                let payload = whole.slice(at + HEADER..at + total);
                at += total;
                records.push((from + at as u64, payload));
            }
            None => {
                // A record cut by the read limit is not damage; anything else is.
                let read_to_end = from + whole.len() as u64 >= end;
                damaged = read_to_end || records.is_empty();
                break;
            }
        }
    }
    Ok(Batch { records, damaged })
}

/// Length of the intact prefix of a segment.
fn intact_len(path: &Path) -> io::Result<(u64, u64)> {
    let data = fs::read(path)?;
    let mut at = 0usize;
    while let Some(total) = decode(&data[at..]) {
        at += total;
    }
    Ok((at as u64, data.len() as u64))
}

/// Makes the journal consistent after a crash: removes temp files and cuts every segment back to
/// its last intact record. Returns the segments, ascending.
pub(crate) fn recover(dir: &Path) -> io::Result<Vec<u64>> {
    remove_temp_files(dir)?;
    let segs = list_segments(dir)?;
    for &seg in &segs {
        let path = segment_path(dir, seg);
        let (intact, len) = intact_len(&path)?;
        if intact < len {
            tracing::warn!(
                segment = %path.display(),
                kept = intact,
                dropped = len - intact,
                "webhook journal: cutting a torn tail (never acknowledged to a caller)"
            );
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(intact)?;
            f.sync_all()?;
        }
    }
    Ok(segs)
}

/// Removes `*.tmp` files (left by a write interrupted before its rename).
pub(crate) fn remove_temp_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(".tmp")) && entry.file_type()?.is_file() {
            tracing::warn!(file = %entry.path().display(), "removing a leftover webhook temp file");
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Fsyncs a directory so entries created, renamed or removed in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segment being appended to.
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    pub(crate) seg: u64,
    file: File,
    pub(crate) len: u64,
}

impl SegmentWriter {
    /// Creates segment `seg` (which must not exist) and makes its directory entry durable.
    pub(crate) fn create(dir: &Path, seg: u64) -> io::Result<Self> {
        let path = segment_path(dir, seg);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        fsync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            seg,
            file,
            len: 0,
        })
    }

    /// The next segment.
    pub(crate) fn rotate(&self) -> io::Result<Self> {
        Self::create(&self.dir, self.seg + 1)
    }

    /// Appends encoded records and makes them durable with one `fdatasync`. On failure the
    /// segment is cut back to its previous length so no partial record stays behind.
    pub(crate) fn append(&mut self, records: &[Vec<u8>]) -> io::Result<()> {
        let data: Vec<u8> = records.concat();
        let res = self
            .file
            .write_all(&data)
            .and_then(|()| self.file.sync_data());
        match res {
            Ok(()) => {
                self.len += data.len() as u64;
                Ok(())
            }
            Err(err) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.sync_data();
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn torn_tail_is_cut_and_records_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        let recs: Vec<Vec<u8>> = (0..5)
            .map(|i| encode(format!("payload-{i}").as_bytes()).unwrap())
            .collect();
        w.append(&recs).unwrap();
        let good = w.len;
        drop(w);
        let path = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let torn = encode(b"never acknowledged").unwrap();
        f.write_all(&torn[..torn.len() - 3]).unwrap();
        fs::write(dir.path().join("x.log.tmp"), b"junk").unwrap();
        fs::write(dir.path().join("notes.txt"), b"junk").unwrap();
        assert_eq!(recover(dir.path()).unwrap(), vec![1]);
        assert_eq!(fs::metadata(&path).unwrap().len(), good);
        assert!(!dir.path().join("x.log.tmp").exists());
        let b = read_batch(&path, 0, None, 20).unwrap();
        assert!(!b.damaged);
        assert_eq!(b.records.len(), 1, "a small limit still yields one record");
        let b = read_batch(&path, 0, None, 1 << 20).unwrap();
        assert_eq!(b.records.len(), 5);
        assert_eq!(&b.records[4].1[..], b"payload-4");
        assert_eq!(b.records[4].0, good);
        let b = read_batch(&path, b.records[1].0, None, 1 << 20).unwrap();
        assert_eq!(&b.records[0].1[..], b"payload-2");
    }
}
