//! Naming a pushed artifact per `push_policy`: the repository name below the kind's namespace
//! and the automatic tag (`tag_format` with `{version}` and `{timestamp}`).

use std::path::Path;

use ocireg_oci::{RepoName, Tag};
use time::OffsetDateTime;

use crate::error::ClientError;

fn invalid(message: String) -> ClientError {
    ClientError::Invalid(message)
}

/// The repository name below the namespace: `given` as is (validated), else `path`'s file name
/// sanitised to the name grammar.
pub fn artifact_name(given: Option<&str>, path: &Path) -> Result<String, ClientError> {
    if let Some(n) = given.filter(|n| !n.is_empty()) {
        if !RepoName::is_valid(n) {
            return Err(invalid(format!(
                "NAME {n:?} is not a valid repository name (lowercase [a-z0-9] components separated by '.', '_', '__' or '-', joined by '/')"
            )));
        }
        return Ok(n.to_owned());
    }
    let base = match path.file_name() {
        Some(f) => f.to_string_lossy().into_owned(),
        None => std::fs::canonicalize(path)
            .map_err(|e| ClientError::local_io(format!("cannot resolve {}", path.display()), e))?
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    sanitize_component(&base).ok_or_else(|| {
        invalid(format!(
            "cannot derive a repository name from {}; give NAME",
            path.display()
        ))
    })
}

/// Turns a file name into one repository-name component (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`):
/// lower-cased, other characters replaced by `-`, separator runs that the grammar rejects
/// collapsed to `-`, leading/trailing separators dropped. `None` when nothing is left.
pub fn sanitize_component(s: &str) -> Option<String> {
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
pub fn timestamp(now: OffsetDateTime) -> String {
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
pub fn render_tag(
    format: &str,
    version: Option<&str>,
    now: OffsetDateTime,
) -> Result<Tag, ClientError> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(invalid(format!(
                "push_policy.tag_format {format:?}: unclosed '{{'"
            )));
        };
        match &after[..close] {
            "version" => match version {
                Some(v) => out.push_str(v),
                None => {
                    return Err(invalid(format!(
                        "push_policy.tag_format {format:?} needs {{version}}: pass --version or give NAME:TAG"
                    )))
                }
            },
            "timestamp" => out.push_str(&timestamp(now)),
            other => {
                return Err(invalid(format!(
                    "push_policy.tag_format {format:?}: unknown placeholder {{{other}}} (known: {{version}}, {{timestamp}})"
                )))
            }
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(invalid(format!(
            "push_policy.tag_format {format:?}: unmatched '}}'"
        )));
    }
    out.push_str(rest);
    out.parse::<Tag>().map_err(|e| {
        invalid(format!(
            "auto tag {out:?} (from push_policy.tag_format {format:?}) is not a valid tag: {e}; tags match ^[a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}$"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

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
    }

    #[test]
    fn names() {
        assert_eq!(
            artifact_name(None, Path::new("/x/My Ext")).unwrap(),
            "my-ext"
        );
        assert_eq!(artifact_name(Some("a/b"), Path::new("/x")).unwrap(), "a/b");
        assert!(artifact_name(Some("A"), Path::new("/x")).is_err());
        assert!(artifact_name(None, Path::new("/x/...")).is_err());
    }
}
