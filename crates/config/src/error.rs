//! The crate's one error type and the per-field validation error.

use std::fmt;
use std::path::PathBuf;

/// One validation problem: where (a dotted field path from the root) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field path from the root, e.g. `registry.local.http_config.listen_port`; empty for the root.
    pub path: String,
    /// The problem, e.g. `Port must be 1-65535` (seed checks keep the seed's text).
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Everything that can go wrong loading, validating or rendering a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or stdin) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// What was being read (`-` for stdin).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file extension does not name a supported format.
    #[error("cannot tell the format of {}: use a .yaml, .yml, .toml, .json or .k file", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The text is not well-formed YAML / TOML / JSON.
    #[error("{format} syntax error in {origin}{}: {message}", location_suffix(*line, *column))]
    Parse {
        /// The format being parsed (`YAML`, `TOML`, `JSON`).
        format: &'static str,
        /// Where the text came from (a path or `<stdin>`).
        origin: String,
        /// 1-based line, when the parser reports one.
        line: Option<usize>,
        /// 1-based column, when the parser reports one.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A `.k` file was given but neither the `kcl` CLI nor Python `kcl_lib` is available.
    #[error(
        "cannot evaluate KCL file {}: no `kcl` CLI on PATH and `python3 -c 'import kcl_lib'` failed; \
         install KCL (https://kcl-lang.io, or `pip install kcl-lib`) or convert the file to YAML, TOML or JSON",
        path.display()
    )]
    KclUnavailable {
        /// The `.k` file.
        path: PathBuf,
    },
    /// KCL evaluated the file and reported an error (syntax, type or check failure).
    #[error("KCL rejected {}:\n{message}", path.display())]
    Kcl {
        /// The `.k` file.
        path: PathBuf,
        /// KCL's message, with terminal colours removed.
        message: String,
    },
    /// The configuration is well-formed but invalid; every problem found, one per line.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<FieldError>),
    /// `--schema NAME` named no schema of the seed.
    #[error("unknown schema {name:?}; valid names: {}", crate::SCHEMA_NAMES.join(", "))]
    UnknownSchema {
        /// The name given.
        name: String,
    },
    /// An artifact reference string does not have the `registry/namespace/repository` shape.
    #[error("invalid artifact reference {reference:?}: {message}")]
    Reference {
        /// The string given.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// Rendering the effective configuration failed.
    #[error("cannot render as {format}: {message}")]
    Render {
        /// The output format.
        format: &'static str,
        /// The serializer's message.
        message: String,
    },
}

impl ConfigError {
    /// The field errors when this is [`ConfigError::Invalid`], else an empty slice.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

fn join_lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn location_suffix(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_error_display() {
        let e = FieldError::new("registry.port", "Port must be 1-65535");
        assert_eq!(e.to_string(), "registry.port: Port must be 1-65535");
        assert_eq!(FieldError::new("", "boom").to_string(), "boom");
    }

    #[test]
    fn invalid_prints_one_error_per_line() {
        let e = ConfigError::Invalid(vec![FieldError::new("a", "x"), FieldError::new("b.c", "y")]);
        assert_eq!(e.to_string(), "a: x\nb.c: y");
        assert_eq!(e.field_errors().len(), 2);
    }

    #[test]
    fn parse_error_location() {
        let e = ConfigError::Parse {
            format: "JSON",
            origin: "x.json".into(),
            line: Some(3),
            column: Some(7),
            message: "expected value".into(),
        };
        assert_eq!(
            e.to_string(),
            "JSON syntax error in x.json at line 3, column 7: expected value"
        );
    }
}
