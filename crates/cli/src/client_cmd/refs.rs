//! References (`[scheme://][registry/]repo[:tag][@digest]`), repository-name sanitising, and
//! the auto-tag format (`{version}`, `{timestamp}`).

use anyhow::bail;
use ocireg_oci::{ImageReference, Reference, RepoName, Tag};
use time::OffsetDateTime;

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

/// Splits `NAME[:TAG]` (the tag follows the last `:` after the last `/`).
pub(crate) fn split_name_tag(s: &str) -> (&str, Option<&str>) {
    let last_slash = s.rfind('/');
    match s.rfind(':') {
        Some(c) if last_slash.is_none_or(|sl| c > sl) => (&s[..c], Some(&s[c + 1..])),
        _ => (s, None),
    }
}

/// Turns a file name into one repository-name component (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`):
/// lower-cased, other characters replaced by `-`, separator runs that the grammar rejects
/// collapsed to `-`, leading/trailing separators dropped. `None` when nothing is left.
pub(crate) fn sanitize_component(s: &str) -> Option<String> {
    let lower: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut out = String::new();
    let mut sep = String::new();
    for c in lower.chars() {
        if c.is_ascii_alphanumeric() {
            if !sep.is_empty() {
                if !out.is_empty() {
                    let ok =
                        sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
                    out.push_str(if ok { &sep } else { "-" });
                }
                sep.clear();
            }
            out.push(c);
        } else {
            sep.push(c);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `{timestamp}` form: UTC, `YYYYMMDDTHHMMSSZ`.
pub(crate) fn timestamp(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Renders `push_policy.tag_format`: `{version}` (an error when it is needed and missing) and
/// `{timestamp}`; the result must pass the seed's tag rule `^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`.
pub(crate) fn render_tag(
    format: &str,
    version: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<Tag> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            bail!("push_policy.tag_format {format:?}: unclosed '{{'");
        };
        match &after[..close] {
            "version" => match version {
                Some(v) => out.push_str(v),
                None => bail!(
                    "push_policy.tag_format {format:?} needs {{version}}: pass --version or give NAME:TAG"
                ),
            },
            "timestamp" => out.push_str(&timestamp(now)),
            other => bail!(
                "push_policy.tag_format {format:?}: unknown placeholder {{{other}}} (known: {{version}}, {{timestamp}})"
            ),
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        bail!("push_policy.tag_format {format:?}: unmatched '}}'");
    }
    out.push_str(rest);
    out.parse::<Tag>().map_err(|e| {
        anyhow::anyhow!(
            "auto tag {out:?} (from push_policy.tag_format {format:?}) is not a valid tag: {e}; tags match ^[a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}$"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

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

    #[test]
    fn names_are_sanitised() {
        assert_eq!(
            sanitize_component("My Provider_v2").as_deref(),
            Some("my-provider_v2")
        );
        assert_eq!(
            sanitize_component("--a..b__c___d--").as_deref(),
            Some("a-b__c-d")
        );
        assert_eq!(
            sanitize_component("kit.tar.gz").as_deref(),
            Some("kit.tar.gz")
        );
        assert_eq!(sanitize_component("..."), None);
        for s in ["Ünïcode Näme", "x-._y", "A__B", "1"] {
            let c = sanitize_component(s).unwrap();
            assert!(RepoName::is_valid(&c), "{s:?} -> {c:?}");
        }
    }

    #[test]
    fn tag_format() {
        let now = datetime!(2026-11-27 22:15:00 UTC);
        let t = render_tag("v{version}-{timestamp}", Some("1.2.3"), now).unwrap();
        assert_eq!(t.as_str(), "v1.2.3-20261127T221500Z");
        assert_eq!(
            render_tag("{timestamp}", None, now).unwrap().as_str(),
            "20261127T221500Z"
        );
        let e = render_tag("v{version}", None, now).unwrap_err().to_string();
        assert!(e.contains("--version"), "{e}");
        assert!(render_tag("{nope}", None, now).is_err());
        assert!(render_tag("v{version", Some("1"), now).is_err());
        let e = render_tag("v{version}", Some("1.0+b"), now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid tag"), "{e}");
        assert_eq!(split_name_tag("a/b:c"), ("a/b", Some("c")));
        assert_eq!(split_name_tag("a/b"), ("a/b", None));
    }
}
