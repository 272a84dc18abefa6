//! Full references: `[registry[:port]/]repository[:tag][@digest]`, by the rules of the
//! Distribution reference grammar.
//!
//! - The digest follows the first `@`; the tag follows the last `:` after the last `/` of what
//!   precedes it (so a registry port is never taken for a tag).
//! - The first `/` component names a registry only when more components follow and it contains
//!   `.` or `:` or is exactly `localhost`; otherwise the whole name is the repository.
//! - A registry is `host[:port]`: `host` is a DNS name (components of letters, digits and inner
//!   hyphens, joined by `.`) or a bracketed IPv6 address, `port` is decimal digits.
//! - The repository follows the name grammar of [`RepoName`], the tag that of [`Tag`], the
//!   digest that of [`Digest`].

use std::fmt;
use std::str::FromStr;

use serde_json::json;

use crate::digest::Digest;
use crate::error::{ErrorCode, OciError};
use crate::name::{Reference, RepoName, Tag};

fn shown(s: &str) -> String {
    s.chars().take(200).collect()
}

/// A reference string cut into its parts. Only the split and the registry are checked here;
/// [`ImageReference`] checks the rest. Callers that report problems their own way (the
/// configuration's field checks) start from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceParts<'a> {
    /// `host[:port]`, when the first component names a registry.
    pub registry: Option<&'a str>,
    /// Everything between the registry and the tag or digest.
    pub repository: &'a str,
    /// The text after the tag `:`, when there is one (possibly empty).
    pub tag: Option<&'a str>,
    /// The text after `@`, when there is one (possibly empty).
    pub digest: Option<&'a str>,
}

/// True when the first component of a name names a registry rather than a repository.
fn names_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// One DNS label: letters and digits, hyphens only inside.
fn label_ok(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `host[:port]` per the grammar's `domain`.
fn registry_ok(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let host_ok = s.starts_with('[') || host.split('.').all(label_ok);
    port_ok && host_ok
}

/// Splits `name[:tag]`: the tag follows the last `:` after the last `/`, so the port of a
/// registry (`localhost:5000/repo`) is never taken for one.
pub fn split_tag(name_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_tag.rfind('/');
    match name_tag.rfind(':') {
        Some(c) if last_slash.is_none_or(|sl| c > sl) => (&name_tag[..c], Some(&name_tag[c + 1..])),
        _ => (name_tag, None),
    }
}

impl<'a> ReferenceParts<'a> {
    /// Splits `s`; fails only on an empty name or a registry that is not `host[:port]`.
    pub fn split(s: &'a str) -> Result<ReferenceParts<'a>, OciError> {
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        let (name, tag) = split_tag(name_tag);
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if names_registry(first) => (Some(first), rest),
            _ => (None, name),
        };
        if let Some(r) = registry.filter(|r| !registry_ok(r)) {
            return Err(OciError::new(
                ErrorCode::NameInvalid,
                format!("invalid registry {:?}: expected host[:port]", shown(r)),
            )
            .with_detail(json!({ "registry": shown(r) })));
        }
        if repository.is_empty() {
            return Err(OciError::new(
                ErrorCode::NameInvalid,
                format!("reference {:?} names no repository", shown(s)),
            ));
        }
        Ok(ReferenceParts {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// A validated full reference such as `localhost:5000/team/app:v1@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: Option<String>,
    repository: RepoName,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// `host[:port]`, when the reference names a registry.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The repository.
    pub fn repository(&self) -> &RepoName {
        &self.repository
    }

    /// The tag, when given.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, when given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The manifest to ask for: the digest when given (it wins over a tag), else the tag, else
    /// `latest`.
    pub fn reference(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Reference::Digest(d.clone()),
            (None, Some(t)) => Reference::Tag(t.clone()),
            (None, None) => Reference::Tag(Tag::latest()),
        }
    }
}

impl FromStr for ImageReference {
    type Err = OciError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts = ReferenceParts::split(s)?;
        Ok(ImageReference {
            registry: parts.registry.map(str::to_owned),
            repository: parts.repository.parse()?,
            tag: parts.tag.map(str::parse).transpose()?,
            digest: parts.digest.map(str::parse).transpose()?,
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.registry {
            write!(f, "{r}/")?;
        }
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}
