//! Sending a file's bytes to a socket without copying them through userspace (`sendfile`), and
//! a read-only mapping of a file range that stands for those bytes in memory, so that code
//! which only knows buffers can hand the range around and the socket writer can recognise it.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// Sends up to `len` bytes of `file` at `offset` to `socket` (`sendfile(2)`); returns how many
/// went out, 0 when `offset` is at or past the end of the file. On a non-blocking socket
/// whose buffer is full it fails with `WouldBlock`. The file's own position is not used or
/// moved. Other systems: `Unsupported`.
pub fn sendfile(socket: impl AsFd, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    imp::sendfile(socket, file, offset, len)
}

/// A read-only, shared mapping of `len` bytes of a file at `offset` (`mmap(PROT_READ,
/// MAP_SHARED)`), unmapped when dropped. Mapping touches no page: as long as nobody reads the
/// memory, it costs two system calls and no copy; a read of it faults the file's bytes in
/// from the page cache.
///
/// For files that are never written nor truncated while mapped (content-addressed blobs):
/// bytes written to the file show through the mapping, and reading a page that a truncation
/// cut off raises `SIGBUS`.
#[derive(Debug)]
pub struct FileMap {
    /// The start of the whole mapping (page-aligned).
    base: usize,
    /// The whole mapping's length.
    mapped: usize,
    /// Where the requested bytes start in the mapping.
    lead: usize,
    /// The requested length.
    len: usize,
}

impl FileMap {
    /// Maps `len > 0` bytes of `file` at `offset`; the range must lie inside the file as it is
    /// now (else `InvalidInput`), so no mapped page is past its end.
    pub fn new(file: &File, offset: u64, len: usize) -> io::Result<FileMap> {
        let size = file.metadata()?.len();
        let inside = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= size);
        if len == 0 || !inside {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        imp::map(file, offset, len)
    }

    /// The mapped bytes' length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (an empty range cannot be mapped); here for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for FileMap {
    fn as_ref(&self) -> &[u8] {
        imp::slice(self)
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        imp::unmap(self);
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsFd;

    use super::FileMap;

    pub(super) fn sendfile(
        socket: impl AsFd,
        file: &File,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        let mut at = offset;
        loop {
            match rustix::fs::sendfile(socket.as_fd(), file, Some(&mut at), len) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(super) fn map(file: &File, offset: u64, len: usize) -> io::Result<FileMap> {
        let page = rustix::param::page_size() as u64;
        let start = offset - offset % page;
        let lead = usize::try_from(offset - start).map_err(io::Error::other)?;
        let mapped = lead.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        // SAFETY: a new mapping at an address the kernel picks (null hint, no MAP_FIXED), so no
        // existing memory is replaced; `file` is an open descriptor borrowed for the call (the
        // mapping keeps its own reference to the file); `start` is page-aligned.
        #[allow(unsafe_code)]
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                mapped,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                file,
                start,
            )
        }?;
        Ok(FileMap {
            base: ptr as usize,
            mapped,
            lead,
            len,
        })
    }

    pub(super) fn slice(map: &FileMap) -> &[u8] {
        // SAFETY: `[base, base + mapped)` is a live readable mapping owned by `map` until its
        // drop, and `lead + len == mapped`. Every page lies inside the file (checked in `new`);
        // the bytes stay the file's as long as nothing writes or truncates it (the type's
        // documented contract).
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts((map.base + map.lead) as *const u8, map.len)
        }
    }

    pub(super) fn unmap(map: &mut FileMap) {
        // SAFETY: `[base, base + mapped)` is the mapping `map` created and exclusively owns; no
        // slice of it outlives `map` (`as_ref` borrows `map`).
        #[allow(unsafe_code)]
        let _ = unsafe { rustix::mm::munmap(map.base as *mut std::ffi::c_void, map.mapped) };
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsFd;

    use super::FileMap;

    pub(super) fn sendfile(
        _socket: impl AsFd,
        _file: &File,
        _offset: u64,
        _len: usize,
    ) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn map(_file: &File, _offset: u64, _len: usize) -> io::Result<FileMap> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn slice(_map: &FileMap) -> &[u8] {
        &[]
    }

    pub(super) fn unmap(_map: &mut FileMap) {}
}

// SAFETY: a `FileMap` is a read-only view of a mapping it owns; reading it from any thread is
// as safe as reading a `&[u8]`, and unmapping happens once, in `drop`.
#[allow(unsafe_code)]
unsafe impl Send for FileMap {}
// SAFETY: see `Send`: shared access only reads.
#[allow(unsafe_code)]
unsafe impl Sync for FileMap {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 % 251) as u8).collect()
    }

    #[test]
    fn a_mapping_holds_the_file_bytes_of_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = pattern(3 * 4096 + 100);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        for (at, len) in [(0, data.len()), (1, 4096), (4095, 4098), (8192, 4196)] {
            let map = FileMap::new(&file, at as u64, len).unwrap();
            assert_eq!(map.len(), len);
            assert!(!map.is_empty());
            assert!(map.as_ref() == &data[at..at + len], "{at}+{len}");
        }
        // Past the end, or empty: refused.
        let past = FileMap::new(&file, 1, data.len()).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::InvalidInput);
        let empty = FileMap::new(&file, 0, 0).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn sendfile_sends_the_range_and_stops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = pattern(100_000);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut client = client;
            client.read_to_end(&mut got).unwrap();
            got
        });
        let mut at = 777u64;
        while at < 90_000 {
            let n = sendfile(&server, &file, at, (90_000 - at) as usize).unwrap();
            assert!(n > 0);
            at += n as u64;
        }
        assert_eq!(sendfile(&server, &file, data.len() as u64, 10).unwrap(), 0);
        drop(server);
        let got = reader.join().unwrap();
        assert!(got == data[777..90_000]);
    }
}
