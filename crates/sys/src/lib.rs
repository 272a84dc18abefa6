//! Safe wrappers for the few Linux system calls that neither `std` nor `rustix` offer.
//!
//! This is the only crate of the workspace with `unsafe` code: one FFI call per wrapper, each
//! with its safety argument. On other systems the wrappers do nothing (they are hints).

use std::fs::File;
use std::io;

mod read;
mod send;

pub use read::{
    fully_cached, read_at_most, read_at_most_into, read_direct, read_direct_into,
    reopen_direct_read, DirectRead,
};
pub use send::{sendfile, FileMap};

/// Starts writeback of the dirty pages of `len` bytes at `offset` in `file` and returns
/// without waiting for it (`sync_file_range(SYNC_FILE_RANGE_WRITE)`).
///
/// It makes nothing durable (no metadata, no disk cache flush: `fdatasync` still must run
/// before data is acknowledged) but lets the disk work while more data arrives, so the final
/// sync is short, without the cache flush (and journal commit) an `fdatasync` per step costs.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    imp::start_writeback(file, offset, len)
}

/// Waits until `len` bytes at `offset` are written back (starting writeback of any still
/// dirty) and then drops them from the page cache (`sync_file_range(WAIT_BEFORE | WRITE |
/// WAIT_AFTER)` + `posix_fadvise(DONTNEED)`).
///
/// For write-once data streamed to disk: the page cache stays small instead of growing by
/// every byte written, so new writes reuse recently freed pages. Like [`start_writeback`] it
/// makes nothing durable.
pub fn write_back_and_drop(file: &File, offset: u64, len: u64) -> io::Result<()> {
    imp::write_back_and_drop(file, offset, len)
}

/// Writes back everything dirty on the filesystem that holds `file` and waits for it
/// (`syncfs`): every file and directory change made before the call is durable after it.
/// Other systems have no per-filesystem sync: there it fails with `Unsupported`.
pub fn sync_filesystem(file: &File) -> io::Result<()> {
    imp::sync_filesystem(file)
}

/// Whether the filesystem holding `file` makes a new file's name durable with the file's own
/// `fdatasync` (POSIX asks for a sync of its directory). True on ext4, XFS and btrfs, which
/// persist a file's creation no later than its data's metadata (ext4 and XFS with a journal:
/// metadata commits in order; ext4 without one: `fsync` also syncs a new file's parent
/// directories, kernel commit 14ece1028b3e; btrfs: its log records a new file's names with
/// it), and on tmpfs (nothing survives a crash there anyway); false on any other filesystem
/// and off Linux.
pub fn names_durable_with_data(file: &File) -> bool {
    imp::names_durable_with_data(file)
}

/// Takes an exclusive advisory lock on `file` without waiting (`flock(LOCK_EX | LOCK_NB)`);
/// `Ok(false)` when another open file description holds it. The lock lasts until every
/// descriptor of this open file description is closed. Elsewhere than Linux: `Ok(true)`
/// (no lock).
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    imp::try_lock_exclusive(file)
}

/// The alignment [`reopen_direct`]'s descriptor needs: file offsets, lengths and memory
/// addresses of its writes must be multiples of it. 4 KiB covers devices with 512-byte and
/// with 4 KiB logical blocks.
pub const DIRECT_ALIGN: usize = 4096;

/// A second, write-only descriptor of `file` that bypasses the page cache (`O_DIRECT`,
/// reopened through `/proc/self/fd`, so it is the same file whatever its name is now); `None`
/// where that is not possible (a filesystem without direct I/O, no `/proc`, other systems).
///
/// Writes through it must be aligned to [`DIRECT_ALIGN`] (offset, length and buffer address),
/// and the kernel may still refuse one with `EINVAL` (a device with larger blocks): callers
/// fall back to `file`. Like a buffered write, a direct one is not durable before an
/// `fdatasync` (the disk's cache, and the file's size and block map).
pub fn reopen_direct(file: &File) -> Option<File> {
    imp::reopen_direct(file, true)
}

/// Raises the soft limit on open files to the hard limit (what Go programs such as CNCF
/// Distribution do at start: a server holds a descriptor per connection and per open upload,
/// and a common soft limit is 1,024); returns the soft limit now in force. Elsewhere than
/// Linux: fails with `Unsupported`.
pub fn raise_open_files_limit() -> io::Result<u64> {
    imp::raise_open_files_limit()
}

/// Size and free space of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer may still use (`f_bavail × f_frsize`).
    pub available: u64,
    /// The filesystem's size (`f_blocks × f_frsize`).
    pub total: u64,
}

/// Size and free space of the filesystem holding `path` (`statvfs`). Other systems: fails with
/// `Unsupported`.
pub fn filesystem_space(path: &std::path::Path) -> io::Result<Space> {
    imp::filesystem_space(path)
}

/// Keeps up to `trim_threshold` bytes of freed heap memory in each arena instead of handing it
/// back to the kernel at once, serves allocations below `mmap_threshold` from the heap, and
/// uses at most `arena_max` arenas (glibc `mallopt` of `M_TRIM_THRESHOLD`, `M_MMAP_THRESHOLD`,
/// `M_ARENA_MAX`). Call once, first thing in `main`. Returns whether the allocator took every
/// setting (always `false` off glibc).
///
/// Why: a push streams request body buffers through the heap (allocated by the HTTP stack,
/// freed once written); with glibc's defaults the freed memory goes back to the kernel and
/// every new buffer page is faulted in and zeroed again. A higher trim threshold keeps those
/// pages; bounding the arenas bounds what that retention can cost in resident memory
/// (BENCHMARKS.md has the settings' measurements).
pub fn tune_allocator(trim_threshold: usize, mmap_threshold: usize, arena_max: usize) -> bool {
    imp_alloc::tune(trim_threshold, mmap_threshold, arena_max)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp_alloc {
    pub(super) fn tune(trim_threshold: usize, mmap_threshold: usize, arena_max: usize) -> bool {
        let (Ok(trim), Ok(mmap), Ok(arenas)) = (
            libc::c_int::try_from(trim_threshold),
            libc::c_int::try_from(mmap_threshold),
            libc::c_int::try_from(arena_max),
        ) else {
            return false;
        };
        [
            (libc::M_TRIM_THRESHOLD, trim),
            (libc::M_MMAP_THRESHOLD, mmap),
            (libc::M_ARENA_MAX, arenas),
        ]
        .into_iter()
        .all(|(param, value)| {
            // SAFETY: mallopt takes two integers and changes allocator parameters under the
            // allocator's own lock; it reads or writes no memory of ours, and these parameters
            // only decide when free memory is returned to the kernel, when an allocation gets
            // its own mapping and how many arenas threads spread over.
            #[allow(unsafe_code)]
            let rc = unsafe { libc::mallopt(param, value) };
            rc == 1
        })
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp_alloc {
    pub(super) fn tune(_trim_threshold: usize, _mmap_threshold: usize, _arena_max: usize) -> bool {
        false
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    pub(super) fn write_back_and_drop(file: &File, offset: u64, len: u64) -> io::Result<()> {
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        sync_range(file, offset, len, flags)?;
        rustix::fs::fadvise(
            file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        )?;
        Ok(())
    }

    pub(super) fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
        sync_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE)
    }

    /// `file` reopened through `/proc/self/fd` with `O_DIRECT`, for writing or for reading.
    pub(super) fn reopen_direct(file: &File, write: bool) -> Option<File> {
        use rustix::fs::{Mode, OFlags};
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let access = if write {
            OFlags::WRONLY
        } else {
            OFlags::RDONLY
        };
        let flags = access | OFlags::DIRECT | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path.as_str(), flags, Mode::empty()).ok()?;
        Some(File::from(fd))
    }

    pub(super) fn sync_filesystem(file: &File) -> io::Result<()> {
        Ok(rustix::fs::syncfs(file)?)
    }

    pub(super) fn names_durable_with_data(file: &File) -> bool {
        const EXT4: u32 = 0xEF53;
        const XFS: u32 = 0x5846_5342;
        const BTRFS: u32 = 0x9123_683E;
        const TMPFS: u32 = 0x0102_1994;
        rustix::fs::fstatfs(file).is_ok_and(|fs| {
            // The magic numbers are 32-bit; `f_type` is signed and 32 or 64 bits wide.
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
            let kind = fs.f_type as u32;
            matches!(kind, EXT4 | XFS | BTRFS | TMPFS)
        })
    }

    pub(super) fn filesystem_space(path: &std::path::Path) -> io::Result<super::Space> {
        let fs = rustix::fs::statvfs(path)?;
        Ok(super::Space {
            available: fs.f_bavail.saturating_mul(fs.f_frsize),
            total: fs.f_blocks.saturating_mul(fs.f_frsize),
        })
    }

    pub(super) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
        match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn raise_open_files_limit() -> io::Result<u64> {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            limit.current = limit.maximum;
            setrlimit(Resource::Nofile, limit)?;
        }
        Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
    }

    fn sync_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is an open descriptor borrowed from `file` for the duration of the call;
        // sync_file_range reads no memory of ours (integer arguments only) and its flags only
        // start or wait for writeback, which cannot affect memory safety.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::sync_file_range(fd, offset, len, flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;
    use std::io;

    pub(super) fn start_writeback(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn reopen_direct(_file: &File, _write: bool) -> Option<File> {
        None
    }

    pub(super) fn write_back_and_drop(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn sync_filesystem(_file: &File) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub(super) fn names_durable_with_data(_file: &File) -> bool {
        false
    }

    pub(super) fn try_lock_exclusive(_file: &File) -> io::Result<bool> {
        Ok(true)
    }

    pub(super) fn filesystem_space(_path: &std::path::Path) -> io::Result<super::Space> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub(super) fn raise_open_files_limit() -> io::Result<u64> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    #[test]
    fn an_exclusive_lock_excludes_other_open_files_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = File::create(&path).unwrap();
        assert!(try_lock_exclusive(&first).unwrap());
        let second = File::open(&path).unwrap();
        assert_eq!(
            try_lock_exclusive(&second).unwrap(),
            !cfg!(target_os = "linux")
        );
        drop(first);
        assert!(try_lock_exclusive(&second).unwrap());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn filesystem_space_reports_size_and_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let before = filesystem_space(dir.path()).unwrap();
        assert!(
            before.total > 0 && before.available <= before.total,
            "{before:?}"
        );
        assert!(filesystem_space(&dir.path().join("missing")).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn filesystems_are_told_apart_by_their_type() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let kind = rustix::fs::fstatfs(&file).unwrap().f_type;
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let expected = [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994].contains(&(kind as u32));
        assert_eq!(names_durable_with_data(&file), expected);
        // procfs is none of them.
        let proc = File::open("/proc/self/status").unwrap();
        assert!(!names_durable_with_data(&proc));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_direct_descriptor_writes_aligned_blocks_of_the_same_file() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let kind = rustix::fs::fstatfs(&file).unwrap().f_type;
        let direct = reopen_direct(&file);
        // ext4, XFS and btrfs all take O_DIRECT.
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        if [0xEF53, 0x5846_5342, 0x9123_683E].contains(&(kind as u32)) {
            assert!(direct.is_some(), "no O_DIRECT on filesystem type {kind:#x}");
        }
        let Some(direct) = direct else { return };
        let mut buf = vec![0u8; 3 * DIRECT_ALIGN];
        let at = buf.as_ptr().align_offset(DIRECT_ALIGN);
        let block = &mut buf[at..at + 2 * DIRECT_ALIGN];
        block.fill(9);
        file.write_all_at(b"head", 0).unwrap();
        direct.write_all_at(block, DIRECT_ALIGN as u64).unwrap();
        // Unaligned offsets are refused: callers fall back to the buffered descriptor.
        let err = direct.write_at(&block[..DIRECT_ALIGN], 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 3 * DIRECT_ALIGN);
        assert_eq!(&got[..4], b"head");
        assert!(got[4..DIRECT_ALIGN].iter().all(|&b| b == 0));
        assert!(got[DIRECT_ALIGN..].iter().all(|&b| b == 9));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn open_files_limit_is_raised_to_the_hard_limit() {
        let soft = raise_open_files_limit().unwrap();
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(Some(soft), hard.or(Some(u64::MAX)));
    }

    #[test]
    fn allocator_takes_the_thresholds_on_glibc() {
        let took = tune_allocator(16 << 20, 32 << 20, 2);
        assert_eq!(took, cfg!(all(target_os = "linux", target_env = "gnu")));
        // Out of the allocator's range: refused, nothing changed.
        assert!(!tune_allocator(usize::MAX, 1, 1));
        let v: Vec<u8> = vec![1; 1 << 20];
        assert_eq!(v.iter().map(|&b| usize::from(b)).sum::<usize>(), 1 << 20);
    }

    #[test]
    fn starts_writeback_of_written_bytes_and_rejects_bad_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(dir.path().join("f")).unwrap();
        file.write_all(&[7u8; 1 << 16]).unwrap();
        start_writeback(&file, 0, 1 << 16).unwrap();
        write_back_and_drop(&file, 0, 1 << 15).unwrap();
        // The bytes are unchanged (dropped pages are read back) and the file still syncs.
        file.sync_data().unwrap();
        if cfg!(target_os = "linux") {
            sync_filesystem(&file).unwrap();
        }
        assert_eq!(
            std::fs::read(dir.path().join("f")).unwrap(),
            vec![7u8; 1 << 16]
        );
        if cfg!(target_os = "linux") {
            // Offsets beyond i64 are refused before the call.
            let err = start_writeback(&file, u64::MAX, 1).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
