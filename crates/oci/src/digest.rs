//! Content digests (`algorithm:hex`) with strict parsing and incremental hashing.
//!
//! Grammar (image-spec `descriptor.md`): `algorithm ":" encoded` where
//! `algorithm ::= [a-z0-9]+ ([+._-] [a-z0-9]+)*` and `encoded ::= [a-zA-Z0-9=_-]+`.
//! Only `sha256` (64 lowercase hex) and `sha512` (128 lowercase hex) are accepted; a digest that
//! matches the grammar but names another algorithm is rejected as unsupported (still
//! `DIGEST_INVALID`, as the distribution spec asks for 400 on "invalid or unsupported algorithm").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;
use sha2::{Digest as _, Sha512};

use crate::error::{ErrorCode, OciError};

mod resumable;

use resumable::Sha256Resumable;

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256 (canonical).
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// All supported algorithms.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    /// The algorithm identifier, `"sha256"` or `"sha512"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded portion: 64 or 128.
    pub fn hex_len(&self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(unsupported(other)),
        }
    }
}

fn unsupported(alg: &str) -> OciError {
    OciError::new(
        ErrorCode::DigestInvalid,
        format!("unsupported digest algorithm {alg:?}"),
    )
    .with_detail(json!({ "algorithm": alg, "reason": "unsupported" }))
}

/// A validated digest: an algorithm and its hash value.
///
/// The value is kept as raw bytes, not as hex text: a registry's in-memory index holds several
/// digests per stored manifest, and so a sha256 digest needs no allocation of its own and
/// half the bytes. Digests order as their `algorithm:hex` text does (sha256 before sha512,
/// then bytewise, which is the order of lowercase hex).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(Raw);

/// The hash value; variants in [`Algorithm`] order. sha512 is boxed so that the common
/// sha256 digest stays small.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Raw {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
}

impl Digest {
    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.0 {
            Raw::Sha256(_) => Algorithm::Sha256,
            Raw::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The hash value's bytes (32 for sha256, 64 for sha512).
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Raw::Sha256(b) => b,
            Raw::Sha512(b) => &b[..],
        }
    }

    /// The lowercase hex portion (formatted on each call; it dereferences to `&str`).
    pub fn hex(&self) -> Hex {
        Hex::of(self.bytes())
    }

    /// Hashes `data` in one go.
    pub fn compute(alg: Algorithm, data: &[u8]) -> Digest {
        let mut h = DigestHasher::new(alg);
        h.update(data);
        h.finish()
    }

    /// True when `data` hashes to this digest.
    pub fn verify(&self, data: &[u8]) -> bool {
        Digest::compute(self.algorithm(), data) == *self
    }

    /// Builds a digest from an algorithm and a hex string (validated: lowercase, exact length).
    pub fn from_parts(alg: Algorithm, hex: &str) -> Result<Digest, OciError> {
        if hex.len() != alg.hex_len() {
            return Err(invalid(
                &format!("{alg}:{hex}"),
                &format!("{alg} hex must be {} characters", alg.hex_len()),
            ));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid(
                &format!("{alg}:{hex}"),
                "hex must be lowercase [0-9a-f]",
            ));
        }
        let decoded = match alg {
            Algorithm::Sha256 => {
                let mut b = [0u8; 32];
                hex::decode_to_slice(hex, &mut b).map(|()| Raw::Sha256(b))
            }
            Algorithm::Sha512 => {
                let mut b = Box::new([0u8; 64]);
                hex::decode_to_slice(hex, &mut b[..]).map(|()| Raw::Sha512(b))
            }
        };
        decoded
            .map(Digest)
            .map_err(|e| invalid(&format!("{alg}:{hex}"), &e.to_string()))
    }
}

/// The hex text of a digest's value, formatted on the stack; dereferences to `&str`.
#[derive(PartialEq, Eq)]
pub struct Hex {
    buf: [u8; 128],
    len: usize,
}

impl Hex {
    fn of(bytes: &[u8]) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 128];
        for (pair, b) in buf.chunks_exact_mut(2).zip(bytes) {
            if let [hi, lo] = pair {
                *hi = DIGITS[usize::from(b >> 4)];
                *lo = DIGITS[usize::from(b & 0x0f)];
            }
        }
        Hex {
            buf,
            len: (bytes.len() * 2).min(128),
        }
    }
}

impl std::ops::Deref for Hex {
    type Target = str;

    fn deref(&self) -> &str {
        // Only hex digits are ever written, so the text is ASCII.
        let text = self.buf.get(..self.len).unwrap_or_default();
        std::str::from_utf8(text).unwrap_or_default()
    }
}

impl AsRef<str> for Hex {
    fn as_ref(&self) -> &str {
        self
    }
}

impl AsRef<std::path::Path> for Hex {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&**self)
    }
}

impl AsRef<std::ffi::OsStr> for Hex {
    fn as_ref(&self) -> &std::ffi::OsStr {
        std::ffi::OsStr::new(&**self)
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<str> for Hex {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

impl PartialEq<&str> for Hex {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl PartialEq<String> for Hex {
    fn eq(&self, other: &String) -> bool {
        **self == **other
    }
}

fn invalid(input: &str, reason: &str) -> OciError {
    // Keep hostile inputs out of messages at full length.
    let shown: String = input.chars().take(200).collect();
    OciError::new(
        ErrorCode::DigestInvalid,
        format!("invalid digest {shown:?}: {reason}"),
    )
    .with_detail(json!({ "digest": shown, "reason": reason }))
}

fn algorithm_grammar_ok(alg: &str) -> bool {
    // [a-z0-9]+ ([+._-] [a-z0-9]+)*
    let mut prev_sep = true; // start behaves like "after separator": component required
    for b in alg.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
            b'+' | b'.' | b'_' | b'-' => {
                if prev_sep {
                    return false;
                }
                prev_sep = true;
            }
            _ => return false,
        }
    }
    !prev_sep
}

fn encoded_grammar_ok(enc: &str) -> bool {
    !enc.is_empty()
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

impl FromStr for Digest {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((alg, enc)) = s.split_once(':') else {
            return Err(invalid(s, "missing ':' separator"));
        };
        if !algorithm_grammar_ok(alg) {
            return Err(invalid(s, "algorithm does not match the digest grammar"));
        }
        if !encoded_grammar_ok(enc) {
            return Err(invalid(s, "encoded part does not match the digest grammar"));
        }
        let algorithm: Algorithm = alg.parse()?;
        Digest::from_parts(algorithm, enc)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm().as_str(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone)]
enum HashState {
    Sha256(Sha256Resumable),
    Sha512(Sha512),
}

/// Incremental hasher producing a [`Digest`]; `Clone` snapshots the running state.
#[derive(Clone)]
pub struct DigestHasher {
    state: HashState,
    bytes: u64,
}

impl fmt::Debug for DigestHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestHasher")
            .field("algorithm", &self.algorithm())
            .field("bytes_hashed", &self.bytes)
            .finish()
    }
}

impl DigestHasher {
    /// A fresh hasher for `alg`.
    pub fn new(alg: Algorithm) -> DigestHasher {
        let state = match alg {
            Algorithm::Sha256 => HashState::Sha256(Sha256Resumable::default()),
            Algorithm::Sha512 => HashState::Sha512(Sha512::new()),
        };
        DigestHasher { state, bytes: 0 }
    }

    /// The hasher's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.state {
            HashState::Sha256(_) => Algorithm::Sha256,
            HashState::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            HashState::Sha256(h) => h.update(data),
            HashState::Sha512(h) => h.update(data),
        }
        self.bytes = self.bytes.saturating_add(data.len() as u64);
    }

    /// Total bytes fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes
    }

    /// The running state in a form another process can resume from ([`DigestHasher::resume`]):
    /// SHA-256 only (`None` for SHA-512, which is computed in one request or re-read).
    pub fn save(&self) -> Option<Vec<u8>> {
        match &self.state {
            HashState::Sha256(h) => Some(h.save()),
            HashState::Sha512(_) => None,
        }
    }

    /// A SHA-256 hasher continuing from a state [`DigestHasher::save`] gave; `None` when
    /// `saved` is not such a state.
    pub fn resume(saved: &[u8]) -> Option<DigestHasher> {
        let h = Sha256Resumable::resume(saved)?;
        Some(DigestHasher {
            bytes: h.len(),
            state: HashState::Sha256(h),
        })
    }

    /// Finishes and returns the digest.
    pub fn finish(self) -> Digest {
        match self.state {
            HashState::Sha256(h) => Digest(Raw::Sha256(h.finish())),
            HashState::Sha512(h) => {
                let mut b = Box::new([0u8; 64]);
                b.copy_from_slice(&h.finalize());
                Digest(Raw::Sha512(b))
            }
        }
    }
}
