//! The persistent state of a writer's session object and the planning of its parts.
//!
//! A session's bytes are, in order: its `segments` (completed objects), the recorded parts of
//! its multipart `upload`, then its `tail` object. Every change to the state is a
//! compare-and-swap on the state object's ETag, so of two writers that started from the same
//! state at most one records anything.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// The smallest part S3 accepts, except for the last one of an upload.
pub(crate) const MIN_PART: usize = 5 << 20;

/// The size of the parts a writer uploads as its bytes arrive (S3 allows 10 000 parts per
/// upload, so one upload holds up to 78 GiB of them).
pub(crate) const PART_SIZE: usize = 8 << 20;

const _: () = assert!(PART_SIZE >= MIN_PART);

/// Part indexes run from 0 to this (exclusive): S3 numbers parts 1 to 10 000.
pub(crate) const MAX_PARTS: usize = 10_000;

/// A completed piece of the session's bytes: an object and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Piece {
    /// The object's key, relative to the driver's root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A part recorded in the session's multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    /// The part's index (claimed through the state before it was uploaded).
    pub index: usize,
    /// The store's identifier for the uploaded part (an ETag on S3, a block id on Azure).
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The session's multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Upload {
    /// The object the upload completes into (a private segment key).
    pub key: String,
    /// The store's upload id.
    pub id: String,
    /// The next part index a writer may claim; claimed indexes are never reused, so two
    /// writers never upload different bytes under one part number.
    pub next_part: usize,
    /// The parts recorded by writers that closed, in index order.
    pub parts: Vec<Part>,
    /// Set when a reader or a move completes the upload: no writer may add to it any more.
    /// `Some(index)` when the tail is folded into the upload as its last part at that index.
    /// Stored as `{"tail_part": index or null}`: a bare `null` would read back as not sealed.
    #[serde(default, with = "sealed_repr")]
    pub sealed: Option<Option<usize>>,
}

/// The stored form of [`Upload::sealed`].
mod sealed_repr {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Sealed {
        tail_part: Option<usize>,
    }

    pub(super) fn serialize<S: Serializer>(
        sealed: &Option<Option<usize>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        sealed.map(|tail_part| Sealed { tail_part }).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<usize>>, D::Error> {
        Ok(Option::<Sealed>::deserialize(d)?.map(|s| s.tail_part))
    }
}

impl Upload {
    /// Bytes in the recorded parts.
    pub(crate) fn parts_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// A session object's state (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// Total size of the session's bytes.
    pub size: u64,
    /// Completed objects holding the first bytes, in order.
    #[serde(default)]
    pub segments: Vec<Piece>,
    /// The multipart upload holding the next bytes, if one was started.
    #[serde(default)]
    pub upload: Option<Upload>,
    /// The last bytes (fewer than a part), if any.
    #[serde(default)]
    pub tail: Option<Piece>,
}

impl State {
    /// The JSON stored in the state object.
    pub(crate) fn encode(&self) -> bytes::Bytes {
        // Serializing plain structs of strings and integers cannot fail.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses a state object; `key` names it in the error.
    pub(crate) fn decode(key: &str, raw: &[u8]) -> Result<State> {
        let state: State = serde_json::from_slice(raw).map_err(|e| {
            StoreError::Internal(format!("session state {key} is not readable: {e}"))
        })?;
        state.check(key)?;
        Ok(state)
    }

    /// The sizes add up and the parts are in index order.
    fn check(&self, key: &str) -> Result<()> {
        let segments: u64 = self.segments.iter().map(|s| s.size).sum();
        let parts = self.upload.as_ref().map_or(0, Upload::parts_size);
        let tail = self.tail.as_ref().map_or(0, |t| t.size);
        let ordered = self.upload.as_ref().is_none_or(|u| {
            u.parts.windows(2).all(|w| w[0].index < w[1].index)
                && u.parts.iter().all(|p| p.index < u.next_part)
        });
        if segments + parts + tail != self.size || !ordered {
            return Err(StoreError::Internal(format!(
                "session state {key} is inconsistent: size {} but segments {segments}, parts \
                 {parts}, tail {tail}",
                self.size
            )));
        }
        Ok(())
    }

    /// Whether reading the bytes needs the upload completed first (it has recorded parts,
    /// which an object store does not serve before completion).
    pub(crate) fn needs_completion(&self) -> bool {
        self.upload.as_ref().is_some_and(|u| !u.parts.is_empty())
    }

    /// The readable pieces, in order, when no upload part is pending (see
    /// [`State::needs_completion`]).
    pub(crate) fn pieces(&self) -> Vec<Piece> {
        self.segments
            .iter()
            .cloned()
            .chain(self.tail.clone())
            .filter(|p| p.size > 0)
            .collect()
    }
}

/// How many bytes of `buffered` go into full parts now: whole [`PART_SIZE`] parts, the rest
/// stays buffered (it becomes the tail, or the start of the next part).
pub(crate) fn plan_parts(buffered: usize) -> Vec<usize> {
    vec![PART_SIZE; buffered / PART_SIZE]
}

/// The pieces (with the offset inside each) that cover `start..end` of the concatenation of
/// `pieces`.
pub(crate) fn plan_range(pieces: &[Piece], start: u64, end: u64) -> Vec<(Piece, u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for piece in pieces {
        let (lo, hi) = (at, at + piece.size);
        at = hi;
        let (from, to) = (start.max(lo), end.min(hi));
        if from < to {
            out.push((piece.clone(), from - lo, to - lo));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(key: &str, size: u64) -> Piece {
        Piece {
            key: key.to_owned(),
            size,
        }
    }

    #[test]
    fn state_round_trips_and_checks_sizes() {
        let state = State {
            size: 10 + 7 + 3,
            segments: vec![piece("s1", 10)],
            upload: Some(Upload {
                key: "s2".into(),
                id: "u".into(),
                next_part: 4,
                parts: vec![Part {
                    index: 2,
                    id: "etag".into(),
                    size: 7,
                }],
                sealed: Some(Some(3)),
            }),
            tail: Some(piece("t", 3)),
        };
        let raw = state.encode();
        assert_eq!(State::decode("k", &raw).unwrap(), state);
        assert!(state.needs_completion());
        // Sealed without a tail (the bytes ended on a part boundary) stays sealed.
        let mut no_tail = state.clone();
        no_tail.size -= 3;
        no_tail.tail = None;
        for sealed in [None, Some(None)] {
            if let Some(u) = no_tail.upload.as_mut() {
                u.sealed = sealed;
            }
            assert_eq!(State::decode("k", &no_tail.encode()).unwrap(), no_tail);
        }
        let mut wrong = state.clone();
        wrong.size += 1;
        let err = State::decode("k", &wrong.encode()).unwrap_err();
        assert!(err.to_string().contains("inconsistent"), "{err}");
        let mut unordered = state;
        if let Some(u) = unordered.upload.as_mut() {
            u.next_part = 2;
        }
        assert!(State::decode("k", &unordered.encode()).is_err());
        assert!(State::decode("k", b"{not json").is_err());
    }

    #[test]
    fn an_empty_state_needs_nothing() {
        let state = State::decode("k", b"{\"size\":0}").unwrap();
        assert_eq!(state, State::default());
        assert!(!state.needs_completion());
        assert!(state.pieces().is_empty());
    }

    #[test]
    fn parts_are_whole_and_at_least_the_minimum() {
        assert!(plan_parts(PART_SIZE - 1).is_empty());
        assert_eq!(plan_parts(PART_SIZE), vec![PART_SIZE]);
        assert_eq!(plan_parts(3 * PART_SIZE + 5), vec![PART_SIZE; 3]);
        assert!(plan_parts(0).is_empty());
    }

    #[test]
    fn ranges_map_onto_pieces() {
        let pieces = [piece("a", 10), piece("b", 5), piece("c", 20)];
        assert_eq!(
            plan_range(&pieces, 0, 35),
            vec![
                (piece("a", 10), 0, 10),
                (piece("b", 5), 0, 5),
                (piece("c", 20), 0, 20)
            ]
        );
        assert_eq!(
            plan_range(&pieces, 12, 16),
            vec![(piece("b", 5), 2, 5), (piece("c", 20), 0, 1)]
        );
        assert_eq!(plan_range(&pieces, 10, 15), vec![(piece("b", 5), 0, 5)]);
        assert!(plan_range(&pieces, 35, 35).is_empty());
        assert!(plan_range(&pieces, 3, 3).is_empty());
    }
}
