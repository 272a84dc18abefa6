//! Repository names, tags and references.
//!
//! Name grammar (distribution-spec v1.1): components matching
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by single `/`. We additionally cap the total length
//! at [`RepoName::MAX_LEN`] = 255 characters (earlier spec text: "MUST be less than 256"), which
//! also bounds storage paths. Tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

use crate::digest::Digest;
use crate::error::{ErrorCode, OciError};

fn shown(s: &str) -> String {
    s.chars().take(200).collect()
}

/// Checks one path component against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_ok(c: &[u8]) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    let n = c.len();
    // leading run of [a-z0-9]+
    if n == 0 || !alnum(c[0]) {
        return false;
    }
    while i < n {
        // consume alnum run
        while i < n && alnum(c[i]) {
            i += 1;
        }
        if i == n {
            return true;
        }
        // separator: "." | "_" | "__" | "-"+
        match c[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < n && c[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < n && c[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        // a separator must be followed by an alnum run
        if i == n || !alnum(c[i]) {
            return false;
        }
    }
    true
}

/// A validated repository name such as `library/ubuntu`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Maximum total length in characters, slashes included.
    pub const MAX_LEN: usize = 255;

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component (`library` for `library/ubuntu`; the whole name if single).
    pub fn namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The path components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// True when `s` is a valid repository name.
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= RepoName::MAX_LEN
            && s.split('/').all(|c| component_ok(c.as_bytes()))
    }
}

impl FromStr for RepoName {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > RepoName::MAX_LEN {
            return Err(OciError::new(
                ErrorCode::NameInvalid,
                format!(
                    "repository name is {} characters; at most {} allowed",
                    s.len(),
                    RepoName::MAX_LEN
                ),
            )
            .with_detail(json!({ "name": shown(s), "reason": "too long" })));
        }
        if !RepoName::is_valid(s) {
            return Err(OciError::new(
                ErrorCode::NameInvalid,
                format!("invalid repository name {:?}", shown(s)),
            )
            .with_detail(json!({ "name": shown(s) })));
        }
        Ok(RepoName(s.to_owned()))
    }
}

/// The text traits of a validated string newtype: `Display` and `AsRef<str>` give the string
/// itself, `Debug` shows it wrapped in the type's name.
macro_rules! string_newtype {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:?})"), self.0)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(RepoName);

/// A validated tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Maximum tag length.
    pub const MAX_LEN: usize = 128;

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `latest`, the tag a reference without tag or digest stands for.
    pub fn latest() -> Tag {
        Tag("latest".to_owned())
    }

    /// True when `s` is a valid tag.
    pub fn is_valid(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= Tag::MAX_LEN
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b[1..]
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    }
}

impl FromStr for Tag {
    type Err = OciError;

    /// Invalid tags give `MANIFEST_INVALID` (the spec has no tag code; Distribution v3's
    /// `TAG_INVALID` is not in the spec table).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Tag::is_valid(s) {
            Ok(Tag(s.to_owned()))
        } else {
            Err(OciError::new(
                ErrorCode::ManifestInvalid,
                format!("invalid tag {:?}", shown(s)),
            )
            .with_detail(json!({ "tag": shown(s) })))
        }
    }
}

string_newtype!(Tag);

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

impl Reference {
    /// The tag, if this is a tag reference.
    pub fn as_tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }

    /// The digest, if this is a digest reference.
    pub fn as_digest(&self) -> Option<&Digest> {
        match self {
            Reference::Tag(_) => None,
            Reference::Digest(d) => Some(d),
        }
    }
}

impl FromStr for Reference {
    type Err = OciError;

    /// Contains `':'` → parsed as a digest (`DIGEST_INVALID` on failure), else as a tag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

impl From<Tag> for Reference {
    fn from(t: Tag) -> Self {
        Reference::Tag(t)
    }
}

impl From<Digest> for Reference {
    fn from(d: Digest) -> Self {
        Reference::Digest(d)
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(RepoName);
string_serde!(Tag);
string_serde!(Reference);
