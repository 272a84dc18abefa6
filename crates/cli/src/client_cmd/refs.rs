//! References on the command line: `[scheme://][registry/]repo[:tag][@digest]`.

use anyhow::bail;
use ocireg_oci::{ImageReference, Reference, RepoName, Tag};

/// A parsed image/artifact reference: `ocireg-oci`'s reference plus the URL scheme the
/// argument may start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// `http` / `https` when the reference started with a scheme.
    pub scheme: Option<&'static str>,
    /// `[registry/]repo[:tag][@digest]`.
    pub parsed: ImageReference,
}

impl ImageRef {
    /// `host[:port]` when the reference names a registry.
    pub fn registry(&self) -> Option<&str> {
        self.parsed.registry()
    }

    /// The repository.
    pub fn repo(&self) -> &RepoName {
        self.parsed.repository()
    }

    /// The tag, when given.
    pub fn tag(&self) -> Option<&Tag> {
        self.parsed.tag()
    }

    /// The manifest reference: the digest, else the tag, else `latest`.
    pub fn reference(&self) -> Reference {
        self.parsed.reference()
    }
}

fn strip_scheme(s: &str) -> (Option<&'static str>, &str) {
    if let Some(rest) = s.strip_prefix("https://") {
        (Some("https"), rest)
    } else if let Some(rest) = s.strip_prefix("http://") {
        (Some("http"), rest)
    } else {
        (None, s)
    }
}

/// Parses `[scheme://][registry/]repo[:tag][@digest]` (surrounding blanks ignored): the scheme
/// is this command line's addition, the rest is the Distribution reference grammar.
pub(crate) fn parse_ref(s: &str) -> anyhow::Result<ImageRef> {
    let (scheme, rest) = strip_scheme(s.trim());
    let parsed: ImageReference = rest
        .parse()
        .map_err(|e| anyhow::anyhow!("reference {s:?}: {e}"))?;
    if scheme.is_some() && parsed.registry().is_none() {
        bail!("reference {s:?}: a scheme needs a registry host");
    }
    Ok(ImageRef { scheme, parsed })
}

/// Parses a repository argument (no tag or digest).
pub(crate) fn parse_repo(s: &str) -> anyhow::Result<ImageRef> {
    let r = parse_ref(s)?;
    if r.parsed.tag().is_some() || r.parsed.digest().is_some() {
        bail!("{s:?} names a repository; drop the tag or digest");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = parse_ref("127.0.0.1:5000/ns/repo:v1@sha256:".to_owned().as_str());
        assert!(r.is_err());
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_ref(&format!("127.0.0.1:5000/ns/sub/repo:v1@{d}")).unwrap();
        assert_eq!(r.registry(), Some("127.0.0.1:5000"));
        assert_eq!(r.repo().as_str(), "ns/sub/repo");
        assert_eq!(r.tag().unwrap().as_str(), "v1");
        assert_eq!(r.reference().to_string(), d);
        let r = parse_ref("ns/repo").unwrap();
        assert_eq!(r.registry(), None);
        assert_eq!(r.reference().to_string(), "latest");
        let r = parse_ref("localhost/repo:x").unwrap();
        assert_eq!(r.registry(), Some("localhost"));
        let r = parse_ref("http://reg.example/ns/r").unwrap();
        assert_eq!(
            (r.scheme, r.registry()),
            (Some("http"), Some("reg.example"))
        );
        assert!(parse_ref("ns/Repo").is_err());
        assert!(parse_ref("ns/repo:bad tag").is_err());
        assert!(parse_repo("ns/repo:t").is_err());
    }

    /// Where this parser's rules changed to the Distribution grammar's.
    #[test]
    fn references_follow_the_distribution_grammar() {
        // `localhost` is matched exactly, as a registry name.
        assert!(parse_ref("LocalHost/repo").is_err());
        // A registry must be `host[:port]`.
        let e = parse_ref("re_g.io/ns/repo").unwrap_err().to_string();
        assert!(e.contains("invalid registry"), "{e}");
        assert!(parse_ref("reg.io:port/ns/repo").is_err());
        // The registry is kept as written (hosts are compared case-blind where they are used).
        let r = parse_ref("Reg.Example/ns/r").unwrap();
        assert_eq!(r.registry(), Some("Reg.Example"));
        assert!(parse_ref("https://ns/repo").is_err());
    }
}
