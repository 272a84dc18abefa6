//! Reading stored objects: whether a range of a file is in the page cache (so it can be served
//! from memory) and a read-only descriptor that bypasses the cache (so bytes that are not
//! cached come from the disk into the caller's buffer without filling the cache).

use std::fs::File;
use std::io;

/// Whether every page of `len` bytes at `offset` in `file` is in the page cache (`cachestat`,
/// Linux 6.5 and later). `None` where the kernel cannot tell (an older kernel, another system):
/// callers then read through the cache as usual. It only looks: unlike a non-blocking read
/// (`RWF_NOWAIT`), it starts no readahead of what is missing.
pub fn fully_cached(file: &File, offset: u64, len: u64) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    let pages = pages_spanned(offset, len, imp::page_size()?);
    imp::cached_pages(file, offset, len).map(|cached| cached >= pages)
}

/// The pages `[offset, offset + len)` touches, `len > 0`.
fn pages_spanned(offset: u64, len: u64, page: u64) -> u64 {
    let first = offset / page;
    let last = (offset.saturating_add(len) - 1) / page;
    last - first + 1
}

/// A second, read-only descriptor of `file` that bypasses the page cache (`O_DIRECT`, reopened
/// through `/proc/self/fd` like [`crate::reopen_direct`]); `None` where that is not possible
/// (tmpfs and other filesystems without direct I/O, no `/proc`, other systems).
///
/// Reads through it must be aligned to [`crate::DIRECT_ALIGN`] (offset, length and buffer
/// address); a read reaching the end of the file returns fewer bytes. The kernel may still
/// refuse one with `EINVAL`: callers fall back to `file`.
pub fn reopen_direct_read(file: &File) -> Option<File> {
    crate::imp::reopen_direct(file, false)
}

/// Bytes read with [`read_direct`]: `buf[start..]`, in a buffer aligned for direct I/O.
#[derive(Debug)]
pub struct DirectRead {
    /// The buffer; the first `start` bytes are alignment padding.
    pub buf: Vec<u8>,
    /// Where the bytes read begin in `buf`.
    pub start: usize,
}

/// Reads `len` bytes at `offset` through a descriptor from [`reopen_direct_read`] into a new
/// buffer aligned to [`crate::DIRECT_ALIGN`], without zeroing the buffer first (the disk
/// writes every byte that is kept); fewer bytes where the file ends first. `offset` and `len`
/// must be multiples of [`crate::DIRECT_ALIGN`] (else `InvalidInput`).
pub fn read_direct(direct: &File, offset: u64, len: usize) -> io::Result<DirectRead> {
    read_direct_into(direct, offset, len, Vec::new())
}

/// [`read_direct`] into `buf` (its contents are discarded; its capacity is reused, grown when
/// too small), so a caller that keeps buffers does not allocate and fault in new pages per read.
pub fn read_direct_into(
    direct: &File,
    offset: u64,
    len: usize,
    buf: Vec<u8>,
) -> io::Result<DirectRead> {
    let align = crate::DIRECT_ALIGN;
    if offset % align as u64 != 0 || len % align != 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    read_unzeroed(direct, offset, len, align, buf)
}

/// Reads up to `len` bytes at `offset` of `file` into a new buffer without zeroing it first
/// (through the page cache: a copy of cached bytes costs less than clearing the buffer did);
/// fewer bytes where the file ends first.
pub fn read_at_most(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    read_at_most_into(file, offset, len, Vec::new())
}

/// [`read_at_most`] into `buf` (its contents are discarded; its capacity is reused).
pub fn read_at_most_into(
    file: &File,
    offset: u64,
    len: usize,
    buf: Vec<u8>,
) -> io::Result<Vec<u8>> {
    read_unzeroed(file, offset, len, 1, buf).map(|r| r.buf)
}

/// Reads into the spare capacity of a buffer whose data starts at an `align`-aligned address.
/// Stops when `len` bytes are read, the file ends, or a read returns a count that is not a
/// multiple of `align` (only the end of the file does that; another read from there would be
/// misaligned).
fn read_unzeroed(
    file: &File,
    offset: u64,
    len: usize,
    align: usize,
    mut buf: Vec<u8>,
) -> io::Result<DirectRead> {
    buf.clear();
    buf.reserve(len + align - 1);
    let start = buf.as_ptr().align_offset(align);
    if start >= align {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    buf.resize(start, 0);
    while buf.len() - start < len {
        let done = buf.len() - start;
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        let n = match rustix::io::pread(file, spare, offset + done as u64) {
            Ok((read, _)) => read.len(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let filled = buf.len() + n;
        // SAFETY: `pread` initialized the `n` bytes after the current length (it returned them
        // as the initialized part of the spare capacity), and `filled <= capacity`.
        #[allow(unsafe_code)]
        unsafe {
            buf.set_len(filled);
        }
        if n == 0 || n % align != 0 {
            break;
        }
    }
    Ok(DirectRead { buf, start })
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// `cachestat`'s number, the same on every architecture (it is newer than the unified
    /// syscall table).
    const SYS_CACHESTAT: libc::c_long = 451;

    /// `struct cachestat_range` of `<linux/mman.h>`.
    #[repr(C)]
    struct CachestatRange {
        off: u64,
        len: u64,
    }

    /// `struct cachestat` of `<linux/mman.h>`.
    #[repr(C)]
    #[derive(Default)]
    struct Cachestat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }

    pub(super) fn page_size() -> Option<u64> {
        u64::try_from(rustix::param::page_size()).ok()
    }

    pub(super) fn cached_pages(file: &File, offset: u64, len: u64) -> Option<u64> {
        let range = CachestatRange { off: offset, len };
        let mut stat = Cachestat::default();
        let fd = libc::c_long::from(file.as_raw_fd());
        // SAFETY: `fd` is an open descriptor borrowed from `file` for the call; the kernel
        // reads `range` and writes `stat`, both live `#[repr(C)]` values of exactly the sizes
        // of the kernel's structures (two and five `__u64`); flags must be 0.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                fd,
                std::ptr::from_ref(&range),
                std::ptr::from_mut(&mut stat),
                0 as libc::c_uint,
            )
        };
        (rc == 0).then_some(stat.nr_cache)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;

    pub(super) fn page_size() -> Option<u64> {
        None
    }

    pub(super) fn cached_pages(_file: &File, _offset: u64, _len: u64) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn pages_spanned_counts_partial_pages() {
        assert_eq!(pages_spanned(0, 1, 4096), 1);
        assert_eq!(pages_spanned(0, 4096, 4096), 1);
        assert_eq!(pages_spanned(4095, 2, 4096), 2);
        assert_eq!(pages_spanned(4096, 8192, 4096), 2);
        assert_eq!(pages_spanned(100, 8192, 4096), 3);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn written_pages_are_cached_and_dropped_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        let Some(cached) = fully_cached(&file, 0, 1 << 20) else {
            eprintln!("SKIPPED: this kernel has no cachestat (Linux 6.5+)");
            return;
        };
        assert!(cached, "just written, still in the page cache");
        crate::write_back_and_drop(&file, 0, 1 << 20).unwrap();
        let file = File::open(&path).unwrap();
        let on_tmpfs = reopen_direct_read(&file).is_none();
        if !on_tmpfs {
            assert_eq!(fully_cached(&file, 0, 1 << 20), Some(false), "dropped");
        }
        let mut buf = vec![0u8; 8192];
        file.read_exact_at(&mut buf, 8192).unwrap();
        assert_eq!(fully_cached(&file, 8192, 8192), Some(true), "read back");
        assert_eq!(fully_cached(&file, 0, 0), Some(true));
    }

    #[test]
    fn direct_reads_return_the_file_bytes_and_stop_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let Some(direct) = reopen_direct_read(&file) else {
            eprintln!("SKIPPED: no direct I/O on this filesystem");
            return;
        };
        let a = crate::DIRECT_ALIGN;
        let r = read_direct(&direct, a as u64, 3 * a).unwrap();
        assert_eq!(r.buf.as_ptr().wrapping_add(r.start) as usize % a, 0);
        assert_eq!(
            &r.buf[r.start..],
            &data[a..],
            "short at the end of the file"
        );
        let r = read_direct(&direct, 0, a).unwrap();
        assert_eq!(&r.buf[r.start..], &data[..a]);
        let unaligned = read_direct(&direct, 1, a).unwrap_err();
        assert_eq!(unaligned.kind(), io::ErrorKind::InvalidInput);
    }
}
