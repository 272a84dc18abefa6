//! Parsing `registry/namespace/repository[:tag][@digest]` into an OCIArtifactReference.

use serde_json::{Map, Value};

use ocireg_oci::{ReferenceParts, RepoName};

use crate::document::validate_schema;
use crate::error::{ConfigError, FieldError};
use crate::schemas::OCIArtifactReference;

/// Parses `registry/namespace/repo[/more]:tag@digest` into the seed's OCIArtifactReference.
///
/// The string is split by the one reference parser ([`ReferenceParts::split`]): the registry
/// is the first `/` component when it looks like a host (contains `.` or `:`, or is
/// `localhost`) and must be one, the repository path follows the OCI name grammar; its first
/// component is the namespace, the rest the repository. The tag follows the last `:` after the
/// last `/` (default `latest`). The digest must be `sha256:` + 64 or `sha512:` + 128 lowercase
/// hex. The seed's checks apply (e.g. `tag: Invalid tag format`); `full_reference` is
/// `registry/namespace/repository:tag`.
pub fn parse_artifact_reference(s: &str) -> Result<OCIArtifactReference, ConfigError> {
    let shape_error = |message: &str| ConfigError::Reference {
        reference: s.to_string(),
        message: message.to_string(),
    };
    const SHAPE: &str = "expected <registry>/<namespace>/<repository>[:<tag>][@<digest>]";
    let parts = ReferenceParts::split(s).map_err(|e| shape_error(&e.message))?;
    let Some(registry) = parts.registry else {
        return Err(shape_error(SHAPE));
    };
    if let Err(e) = parts.repository.parse::<RepoName>() {
        return Err(shape_error(&e.message));
    }
    let Some((namespace, repository)) = parts.repository.split_once('/') else {
        return Err(shape_error(SHAPE));
    };
    let (tag, digest) = (parts.tag, parts.digest);
    let mut map = Map::new();
    map.insert("registry".into(), Value::from(registry));
    map.insert("namespace".into(), Value::from(namespace));
    map.insert("repository".into(), Value::from(repository));
    if let Some(tag) = tag {
        map.insert("tag".into(), Value::from(tag));
    }
    let mut errors = Vec::new();
    if let Some(d) = digest {
        if let Some(problem) = digest_problem(d) {
            errors.push(FieldError::new("digest", problem));
        }
        map.insert("digest".into(), Value::from(d));
    }
    let value = match validate_schema("OCIArtifactReference", Value::Object(map)) {
        Ok(v) if errors.is_empty() => v,
        Ok(_) => return Err(ConfigError::Invalid(errors)),
        Err(ConfigError::Invalid(mut e)) => {
            e.extend(errors);
            return Err(ConfigError::Invalid(e));
        }
        Err(other) => return Err(other),
    };
    serde_json::from_value(value).map_err(|e| shape_error(&e.to_string()))
}

/// Why `d` is not an accepted digest, or `None` when it is.
pub fn digest_problem(d: &str) -> Option<String> {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return Some("Invalid digest format: expected <algorithm>:<hex>".into());
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        other => {
            return Some(format!(
                "Unsupported digest algorithm {other:?} (sha256 or sha512)"
            ))
        }
    };
    let lower_hex = hex
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if hex.len() != want || !lower_hex {
        return Some(format!(
            "Invalid digest format: {algorithm} needs {want} lowercase hex characters"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn simple_and_defaults() {
        let r = parse_artifact_reference("reg.io/ns/repo").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.namespace.as_str(),
                r.repository.as_str(),
                r.tag.as_str()
            ),
            ("reg.io", "ns", "repo", "latest")
        );
        assert_eq!(r.digest, None);
        assert_eq!(r.full_reference, "reg.io/ns/repo:latest");
    }

    #[test]
    fn port_colon_is_not_a_tag() {
        let r = parse_artifact_reference("localhost:5000/ns/repo").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_str()),
            ("localhost:5000", "latest")
        );
        let r = parse_artifact_reference("localhost:5000/ns/repo:v1.2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_str()),
            ("localhost:5000", "v1.2")
        );
        assert_eq!(r.full_reference, "localhost:5000/ns/repo:v1.2");
    }

    #[test]
    fn nested_repository_tag_and_digest() {
        let r = parse_artifact_reference(&format!("r:443/team/a/b/c:1.0@{SHA}")).unwrap();
        assert_eq!(r.namespace, "team");
        assert_eq!(r.repository, "a/b/c");
        assert_eq!(r.tag, "1.0");
        assert_eq!(r.digest.as_deref(), Some(SHA));
        assert_eq!(r.full_reference, "r:443/team/a/b/c:1.0");
        let r = parse_artifact_reference(&format!("r.io/n/p@{SHA}")).unwrap();
        assert_eq!(r.tag, "latest");
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        assert!(parse_artifact_reference(&format!("r.io/n/p@{sha512}")).is_ok());
    }

    #[test]
    fn bad_digests() {
        for d in [
            "sha256:abc",
            "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "md5:0123",
            "nocolon",
            &format!("sha512:{}", "ab".repeat(32)),
        ] {
            let e = parse_artifact_reference(&format!("r.io/n/p:t@{d}")).unwrap_err();
            let errs = e.field_errors();
            assert_eq!(errs.len(), 1, "{d}: {e}");
            assert_eq!(errs[0].path, "digest");
        }
    }

    #[test]
    fn bad_tags() {
        let lines = |e: ConfigError| -> Vec<String> {
            e.field_errors().iter().map(ToString::to_string).collect()
        };
        let e = parse_artifact_reference("r.io/n/p:.bad").unwrap_err();
        assert_eq!(
            e.to_string(),
            "tag: Invalid tag format\n  hint: a tag has 1 to 128 characters (letters, digits, \
             \"_\", \".\" and \"-\") and does not start with \".\" or \"-\""
        );
        let long = "a".repeat(129);
        assert_eq!(
            lines(parse_artifact_reference(&format!("r.io/n/p:{long}")).unwrap_err()),
            ["tag: Invalid tag format"]
        );
        assert!(parse_artifact_reference(&format!("r.io/n/p:{}", "a".repeat(128))).is_ok());
        let e = parse_artifact_reference("r.io/n/p:").unwrap_err();
        assert_eq!(lines(e), ["tag: Tag required", "tag: Invalid tag format"]);
        let e = parse_artifact_reference("r.io/n/p:@sha256:x").unwrap_err();
        assert_eq!(e.field_errors().len(), 3, "{e}");
    }

    #[test]
    fn bad_shapes() {
        for s in ["repo", "reg/repo", "", "reg/repo:tag"] {
            assert!(
                matches!(
                    parse_artifact_reference(s),
                    Err(ConfigError::Reference { .. })
                ),
                "{s}"
            );
        }
    }

    /// The shared reference parser's rules: a registry is recognised by its form, is
    /// `host[:port]`, and the repository path follows the OCI name grammar.
    #[test]
    fn registry_and_names_follow_the_reference_grammar() {
        // The first component is a registry only when it looks like a host.
        for s in ["r/n/p", "/n/p", "r//", "LocalHost/n/p"] {
            let e = parse_artifact_reference(s).unwrap_err();
            assert!(
                e.to_string()
                    .contains("expected <registry>/<namespace>/<repository>"),
                "{s}: {e}"
            );
        }
        let r = parse_artifact_reference("localhost/n/p").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.namespace.as_str()),
            ("localhost", "n")
        );
        for s in ["re_g.io/n/p", "reg.io:x/n/p"] {
            let e = parse_artifact_reference(s).unwrap_err();
            assert!(e.to_string().contains("invalid registry"), "{s}: {e}");
        }
        for s in ["reg.io/NS/repo", "reg.io//p", "reg.io/n/p/"] {
            let e = parse_artifact_reference(s).unwrap_err();
            assert!(
                matches!(e, ConfigError::Reference { .. })
                    && e.to_string().contains("invalid repository name"),
                "{s}: {e}"
            );
        }
    }
}
