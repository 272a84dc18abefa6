//! The live-session table: sessions keyed by storage key, the writers kept open between
//! requests, the chunk a request brings, and the watchers told when sessions open and end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::driver::FileWriter;
use crate::ingest::Hashing;
use crate::ByteStream;

/// Sessions that may keep a writer (an open file) between requests at once.
const MAX_KEPT_WRITERS: usize = 256;

/// Live sessions, keyed by their storage key (`repositories/<name>/_uploads/<id>`).
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    pub(super) map: parking_lot::Mutex<HashMap<String, Arc<Mutex<Session>>>>,
    /// Writers kept open between requests (see the module docs).
    pub(super) kept: Arc<AtomicUsize>,
    /// Told when sessions open, are used and end.
    pub(super) watchers: Watchers,
    /// On shared storage: the sessions this process has seen (see `known.rs`).
    pub(super) known: super::known::Known,
}

#[derive(Debug)]
pub(super) enum Session {
    /// Not yet read from storage (or to be re-read after a failure).
    Unloaded,
    /// Known state.
    Live {
        offset: u64,
        /// SHA-256 of the `offset` bytes, possibly still hashing the last batch; `None` when
        /// unknown (rebuilt by re-reading the data).
        hashing: Option<Box<Hashing>>,
        /// All `offset` bytes are known to be durable.
        durable: bool,
        /// The data's writer, still open (its last write may be in flight).
        writer: Option<Kept>,
    },
    /// Completed or cancelled.
    Gone,
}

/// A writer kept open between requests, holding one of [`MAX_KEPT_WRITERS`] slots.
pub(super) struct Kept {
    writer: Box<dyn FileWriter>,
    _slot: Slot,
}

/// One of [`MAX_KEPT_WRITERS`] slots, given back when dropped (with or without its writer).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Kept {
    /// The writer; its slot is given back.
    pub(super) fn into_writer(self) -> Box<dyn FileWriter> {
        self.writer
    }
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("size", &self.writer.size())
            .finish()
    }
}

impl Sessions {
    pub(super) fn entry(
        &self,
        key: &str,
        initial: impl FnOnce() -> Session,
    ) -> Arc<Mutex<Session>> {
        let mut map = self.map.lock();
        Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(initial()))),
        )
    }

    pub(super) fn remove(&self, key: &str) {
        self.map.lock().remove(key);
    }

    /// Keeps `writer` open if a slot is free; otherwise hands it back (to be closed).
    pub(super) fn keep(
        &self,
        writer: Box<dyn FileWriter>,
    ) -> std::result::Result<Kept, Box<dyn FileWriter>> {
        let taken = self
            .kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_KEPT_WRITERS).then_some(n + 1)
            })
            .is_ok();
        if taken {
            Ok(Kept {
                writer,
                _slot: Slot(Arc::clone(&self.kept)),
            })
        } else {
            Err(writer)
        }
    }
}

/// A chunk of an upload session, as a request brings it.
pub struct Chunk {
    /// The bytes.
    pub body: ByteStream,
    /// Where the client says the chunk starts (`Content-Range`); must be the session's offset,
    /// else the append is refused with [`StoreError::UploadRange`] (416).
    pub start: Option<u64>,
    /// The chunk's length when the request declares it (`Content-Length`): with a quota the
    /// whole length is reserved (or refused) before the first byte is written; without, the
    /// body is reserved frame by frame.
    pub len: Option<u64>,
}

impl Chunk {
    /// A chunk of unknown length with no declared start.
    pub fn new(body: ByteStream) -> Chunk {
        Chunk {
            body,
            start: None,
            len: None,
        }
    }

    /// This chunk, declared to start at `start`.
    pub fn at(self, start: u64) -> Chunk {
        Chunk {
            start: Some(start),
            ..self
        }
    }

    /// This chunk, declared `len` bytes long.
    pub fn sized(self, len: u64) -> Chunk {
        Chunk {
            len: Some(len),
            ..self
        }
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Told when upload sessions open, are used and end (the server counts open sessions per
/// client with it). Sessions are named by an opaque key, unique in the store; every session
/// reported opened is reported ended exactly once, whatever ends it: completion, a digest
/// mismatch, cancellation, a quota refusal, garbage collection, or its storage vanishing.
/// Calls are made while the session's lock is held: implementations must not block.
///
/// On shared storage each replica's watchers hear of what happens through that replica: a
/// session opened here and continued or ended on another replica is reported `used` and
/// `ended` there (where it was never reported opened), and `ended` here once this process
/// finds it gone from storage ([`Store::recheck_uploads`], within about a minute).
///
/// [`Store::recheck_uploads`]: crate::Store::recheck_uploads
pub trait UploadWatch: Send + Sync {
    /// The session `session` was started by `owner`.
    fn opened(&self, session: &str, owner: &str);
    /// A request uses the session (possibly one never reported opened: ignore it).
    fn used(&self, session: &str);
    /// The session ended (a key never reported opened may be reported here too: ignore it).
    fn ended(&self, session: &str);
}

/// The registered [`UploadWatch`]ers.
#[derive(Default)]
pub(super) struct Watchers(parking_lot::RwLock<Vec<Arc<dyn UploadWatch>>>);

impl Watchers {
    pub(super) fn add(&self, watch: Arc<dyn UploadWatch>) {
        let mut all = self.0.write();
        if !all.iter().any(|w| Arc::ptr_eq(w, &watch)) {
            all.push(watch);
        }
    }

    pub(super) fn opened(&self, session: &str, owner: &str) {
        self.0.read().iter().for_each(|w| w.opened(session, owner));
    }

    pub(super) fn used(&self, session: &str) {
        self.0.read().iter().for_each(|w| w.used(session));
    }

    pub(super) fn ended(&self, session: &str) {
        self.0.read().iter().for_each(|w| w.ended(session));
    }
}

impl std::fmt::Debug for Watchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Watchers")
            .field(&self.0.read().len())
            .finish()
    }
}
