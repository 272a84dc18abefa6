//! References (`[scheme://][registry/]repo[:tag][@digest]`), repository-name sanitising, and
//! the auto-tag format (`{version}`, `{timestamp}`).

use anyhow::{bail, Context};
use ocireg_oci::{Digest, Reference, RepoName, Tag};
use time::OffsetDateTime;

/// A parsed image/artifact reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// `host[:port]` when the reference names a registry.
    pub registry: Option<String>,
    /// `http` / `https` when the reference started with a scheme.
    pub scheme: Option<&'static str>,
    /// The repository.
    pub repo: RepoName,
    /// The tag, when given.
    pub tag: Option<Tag>,
    /// The digest, when given (it wins over the tag).
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// The manifest reference: the digest, else the tag, else `latest`.
    pub fn reference(&self) -> anyhow::Result<Reference> {
        Ok(match (&self.digest, &self.tag) {
            (Some(d), _) => Reference::Digest(d.clone()),
            (None, Some(t)) => Reference::Tag(t.clone()),
            (None, None) => Reference::Tag("latest".parse().context("tag latest")?),
        })
    }
}

/// `host/repo:tag` or `host/repo@digest`.
pub(crate) fn display(host: &str, repo: &RepoName, r: &Reference) -> String {
    match r {
        Reference::Tag(t) => format!("{host}/{repo}:{t}"),
        Reference::Digest(d) => format!("{host}/{repo}@{d}"),
    }
}

/// Docker's rule: the first component names a registry when it has a `.` or `:` or is
/// `localhost`, and more components follow.
fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first.eq_ignore_ascii_case("localhost")
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

/// Parses `[scheme://][registry/]repo[:tag][@digest]`.
pub(crate) fn parse_ref(s: &str) -> anyhow::Result<ImageRef> {
    let (scheme, rest) = strip_scheme(s.trim());
    let (name_tag, digest) = match rest.split_once('@') {
        Some((n, d)) => (
            n,
            Some(
                d.parse::<Digest>()
                    .map_err(|e| anyhow::anyhow!("reference {s:?}: bad digest {d:?}: {e}"))?,
            ),
        ),
        None => (rest, None),
    };
    let last_slash = name_tag.rfind('/');
    let (name, tag) = match name_tag.rfind(':') {
        Some(c) if last_slash.is_none_or(|sl| c > sl) => (&name_tag[..c], Some(&name_tag[c + 1..])),
        _ => (name_tag, None),
    };
    let (registry, repo) = match name.split_once('/') {
        Some((first, more)) if looks_like_registry(first) => {
            (Some(first.to_ascii_lowercase()), more)
        }
        _ if scheme.is_some() => bail!("reference {s:?}: a scheme needs a registry host"),
        _ => (None, name),
    };
    let repo: RepoName = repo
        .parse()
        .map_err(|e| anyhow::anyhow!("reference {s:?}: {e}"))?;
    let tag = tag
        .map(|t| {
            t.parse::<Tag>()
                .map_err(|e| anyhow::anyhow!("reference {s:?}: bad tag {t:?}: {e}"))
        })
        .transpose()?;
    Ok(ImageRef {
        registry,
        scheme,
        repo,
        tag,
        digest,
    })
}

/// Parses a repository argument (no tag or digest).
pub(crate) fn parse_repo(s: &str) -> anyhow::Result<ImageRef> {
    let r = parse_ref(s)?;
    if r.tag.is_some() || r.digest.is_some() {
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
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repo.as_str(), "ns/sub/repo");
        assert_eq!(r.tag.as_ref().unwrap().as_str(), "v1");
        assert_eq!(r.reference().unwrap().to_string(), d);
        let r = parse_ref("ns/repo").unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(r.reference().unwrap().to_string(), "latest");
        let r = parse_ref("localhost/repo:x").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost"));
        let r = parse_ref("http://reg.example/ns/r").unwrap();
        assert_eq!(
            (r.scheme, r.registry.as_deref()),
            (Some("http"), Some("reg.example"))
        );
        assert!(parse_ref("ns/Repo").is_err());
        assert!(parse_ref("ns/repo:bad tag").is_err());
        assert!(parse_repo("ns/repo:t").is_err());
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
