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
    /// What the rule behind a seed check's terse message asks for; printed on its own
    /// `hint:` line after the error, so the seed's text stays as it is.
    pub hint: Option<String>,
}

impl FieldError {
    /// A new field error.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// The same error with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
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
    /// The file (or stdin) holds nothing but whitespace and comments.
    #[error("{origin} is empty: there is no config to read (only whitespace or comments); `ocireg config init` writes a starter config")]
    Empty {
        /// Where the text came from (a path or `<stdin>`).
        origin: String,
    },
    /// A map has the same key twice.
    #[error("{format} error in {origin}: duplicate key {key:?} at line {line}{}; each key may appear once in a map", first_suffix(*first_line))]
    DuplicateKey {
        /// The format being parsed.
        format: &'static str,
        /// Where the text came from (a path or `<stdin>`).
        origin: String,
        /// The key.
        key: String,
        /// 1-based line of the repeated key.
        line: usize,
        /// 1-based line of its first occurrence, when it can be told.
        first_line: Option<usize>,
    },
    /// The document is bigger than the parser accepts for a config file.
    #[error("{origin} is too large: {what}, the limit for a config file")]
    TooLarge {
        /// Where the text came from (a path or `<stdin>`).
        origin: String,
        /// Which limit, in words with its number, e.g. `the document has more than 250000
        /// nodes`.
        what: String,
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
        .map(|e| match &e.hint {
            Some(hint) => format!("{e}\n  hint: {hint}"),
            None => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn first_suffix(first_line: Option<usize>) -> String {
    first_line.map_or_else(String::new, |l| format!(" (first at line {l})"))
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
    fn hints_follow_their_error_on_their_own_line() {
        let e = ConfigError::Invalid(vec![
            FieldError::new("a", "Invalid tag format").with_hint("1-128 characters"),
            FieldError::new("b", "y"),
        ]);
        assert_eq!(e.field_errors()[0].to_string(), "a: Invalid tag format");
        assert_eq!(
            e.to_string(),
            "a: Invalid tag format\n  hint: 1-128 characters\nb: y"
        );
    }

    #[test]
    fn empty_duplicate_and_too_large_name_the_source() {
        let e = ConfigError::Empty {
            origin: "c.yaml".into(),
        };
        assert!(e.to_string().starts_with("c.yaml is empty: "), "{e}");
        let e = ConfigError::DuplicateKey {
            format: "YAML",
            origin: "c.yaml".into(),
            key: "registry".into(),
            line: 7,
            first_line: Some(2),
        };
        assert_eq!(
            e.to_string(),
            "YAML error in c.yaml: duplicate key \"registry\" at line 7 (first at line 2); \
             each key may appear once in a map"
        );
        let e = ConfigError::TooLarge {
            origin: "c.yaml".into(),
            what: "the document has more than 250000 nodes".into(),
        };
        assert_eq!(
            e.to_string(),
            "c.yaml is too large: the document has more than 250000 nodes, the limit for a config file"
        );
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
