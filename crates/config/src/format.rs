//! Text formats: parsing YAML / TOML / JSON into a `serde_json::Value`, and rendering the
//! effective configuration back out.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::ConfigError;

/// A configuration file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML (`.yaml`, `.yml`); also the default for stdin.
    Yaml,
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
    /// KCL (`.k`), evaluated by the `kcl` CLI or Python `kcl_lib`.
    Kcl,
}

impl Format {
    /// The format named by a file's extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            "k" => Some(Format::Kcl),
            _ => None,
        }
    }

    /// Guesses the format of text without a file name (stdin): JSON when it starts with `{`,
    /// TOML when a line looks like `[table]` or `key = value`, else YAML.
    pub fn sniff(text: &str) -> Format {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            return Format::Json;
        }
        let toml_line = |line: &str| {
            let l = line.trim();
            if l.starts_with('#') || l.is_empty() {
                return false;
            }
            if l.starts_with('[') && l.ends_with(']') {
                return true;
            }
            l.split_once('=').is_some_and(|(k, _)| {
                let k = k.trim();
                !k.is_empty()
                    && !k.contains(':')
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c))
            })
        };
        match text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        {
            Some(first) if toml_line(first) => Format::Toml,
            _ => Format::Yaml,
        }
    }

    /// The format's display name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
            Format::Json => "JSON",
            Format::Kcl => "KCL",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Output formats for the effective configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// YAML.
    Yaml,
    /// TOML (absent optionals are simply left out; TOML has no null).
    Toml,
    /// Pretty-printed JSON.
    Json,
}

/// Parses YAML, TOML or JSON text into a JSON value. `origin` names the source in errors.
/// (KCL text cannot be parsed here: see [`crate::load_path`].)
pub fn parse_text(text: &str, format: Format, origin: &str) -> Result<Value, ConfigError> {
    let parse_error =
        |line: Option<usize>, column: Option<usize>, message: String| ConfigError::Parse {
            format: format.name(),
            origin: origin.to_string(),
            line,
            column,
            message,
        };
    match format {
        Format::Json if text.trim().is_empty() => Err(ConfigError::Empty {
            origin: origin.to_string(),
        }),
        Format::Json => crate::json::parse(text, origin),
        Format::Yaml if crate::yaml::is_blank(text) => Err(ConfigError::Empty {
            origin: origin.to_string(),
        }),
        Format::Yaml => crate::yaml::parse(text, origin),
        Format::Toml => match text.parse::<toml::Table>() {
            Ok(table) => Ok(toml_table_to_json(table)),
            Err(e) => {
                let (line, column) = e
                    .span()
                    .map(|s| line_col(text, s.start))
                    .map_or((None, None), |(l, c)| (Some(l), Some(c)));
                let key = e.span().and_then(|s| text.get(s)).map(str::trim);
                match (e.message(), key, line) {
                    ("duplicate key", Some(key), Some(line)) if !key.is_empty() => {
                        Err(ConfigError::DuplicateKey {
                            format: "TOML",
                            origin: origin.to_string(),
                            key: key.trim_matches('"').to_string(),
                            line,
                            first_line: toml_first_occurrence(text, key, line),
                        })
                    }
                    _ => Err(parse_error(line, column, e.message().to_string())),
                }
            }
        },
        Format::Kcl => Err(parse_error(
            None,
            None,
            "KCL text must be evaluated from a file (use load_path)".into(),
        )),
    }
}

/// The line where `key`, repeated at `line`, first appears in the same table: the nearest
/// line above that sets it, before the table's `[header]`.
fn toml_first_occurrence(text: &str, key: &str, line: usize) -> Option<usize> {
    let lines: Vec<&str> = text.lines().take(line.saturating_sub(1)).collect();
    for (i, l) in lines.iter().enumerate().rev() {
        let l = l.trim_start();
        if l.starts_with('[') {
            return None;
        }
        if l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(i + 1);
        }
    }
    None
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn toml_table_to_json(table: toml::Table) -> Value {
    Value::Object(
        table
            .into_iter()
            .map(|(k, v)| (k, toml_to_json(v)))
            .collect::<Map<String, Value>>(),
    )
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => toml_table_to_json(t),
    }
}

/// Renders a JSON value (an effective configuration) as text.
pub fn render(value: &Value, format: OutputFormat) -> Result<String, ConfigError> {
    let fail = |name: &'static str, message: String| ConfigError::Render {
        format: name,
        message,
    };
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| fail("JSON", e.to_string())),
        OutputFormat::Yaml => {
            serde_saphyr::to_string(value).map_err(|e| fail("YAML", e.to_string()))
        }
        OutputFormat::Toml => {
            toml::to_string_pretty(&drop_nulls(value)).map_err(|e| fail("TOML", e.to_string()))
        }
    }
}

fn drop_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_from_extension() {
        assert_eq!(Format::from_path(Path::new("a.yml")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("a.YAML")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("a.toml")), Some(Format::Toml));
        assert_eq!(Format::from_path(Path::new("a.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("a.k")), Some(Format::Kcl));
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
        assert_eq!(Format::from_path(Path::new("noext")), None);
    }

    #[test]
    fn sniffing() {
        assert_eq!(Format::sniff("  {\"registry\": {}}"), Format::Json);
        assert_eq!(
            Format::sniff("# c\n[registry]\nendpoint = \"x\"\n"),
            Format::Toml
        );
        assert_eq!(Format::sniff("a = 1\n"), Format::Toml);
        assert_eq!(Format::sniff("registry:\n  endpoint: x\n"), Format::Yaml);
        assert_eq!(Format::sniff("- a\n"), Format::Yaml);
        assert_eq!(Format::sniff("url: a=b\n"), Format::Yaml);
    }

    #[test]
    fn parse_all_three_to_the_same_value() {
        let want = json!({"registry": {"port": 5000, "tags": ["a"], "ok": true, "f": 2.5}});
        let y = parse_text(
            "registry:\n  port: 5000\n  tags: [a]\n  ok: true\n  f: 2.5\n",
            Format::Yaml,
            "y",
        )
        .unwrap();
        let t = parse_text(
            "[registry]\nport = 5000\ntags = [\"a\"]\nok = true\nf = 2.5\n",
            Format::Toml,
            "t",
        )
        .unwrap();
        let j = parse_text(&want.to_string(), Format::Json, "j").unwrap();
        assert_eq!(y, want);
        assert_eq!(t, want);
        assert_eq!(j, want);
    }

    #[test]
    fn parse_errors_carry_location() {
        let e = parse_text("{\n  \"a\": ,\n}", Format::Json, "x.json").unwrap_err();
        let ConfigError::Parse {
            format,
            line,
            column,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*format, *line, *column), ("JSON", Some(2), Some(8)));
        let e = parse_text("a = 1\nb = = 2\n", Format::Toml, "x.toml").unwrap_err();
        let ConfigError::Parse { line, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*line, Some(2));
        let e = parse_text("[r]\na = 1\nb = 2\na = 3\n", Format::Toml, "x.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "TOML error in x.toml: duplicate key \"a\" at line 4 (first at line 2); \
             each key may appear once in a map"
        );
        let e = parse_text("a: [1, 2\nb: 3\n", Format::Yaml, "x.yaml").unwrap_err();
        assert!(
            matches!(e, ConfigError::Parse { format: "YAML", .. }),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("YAML syntax error in x.yaml"),
            "{e}"
        );
        let e = parse_text("a: 1\na: 2\n", Format::Yaml, "-").unwrap_err();
        assert_eq!(
            e.to_string(),
            "YAML error in -: duplicate key \"a\" at line 2 (first at line 1); \
             each key may appear once in a map"
        );
    }

    #[test]
    fn yaml_null_and_empty() {
        for (text, format) in [
            ("", Format::Yaml),
            ("# nothing\n\n", Format::Yaml),
            (" \n", Format::Json),
        ] {
            let e = parse_text(text, format, "c.yaml").unwrap_err();
            assert!(matches!(e, ConfigError::Empty { .. }), "{e}");
            assert!(e.to_string().starts_with("c.yaml is empty: "), "{e}");
        }
        // An empty TOML text is an empty table, as TOML defines it.
        assert_eq!(parse_text("", Format::Toml, "-").unwrap(), json!({}));
        assert_eq!(parse_text("~\n", Format::Yaml, "-").unwrap(), Value::Null);
        assert_eq!(
            parse_text("a: ~\nb: null\n", Format::Yaml, "-").unwrap(),
            json!({"a": null, "b": null})
        );
        assert_eq!(
            parse_text("a: ~/x\n", Format::Yaml, "-").unwrap(),
            json!({"a": "~/x"})
        );
    }

    #[test]
    fn render_round_trips() {
        let v = json!({"registry": {"endpoint": "x", "port": 5000, "namespaces": {"a": "b"}, "retry_backoff": 2.0, "l": ["x"]}, "z": {"q": true}});
        for f in [OutputFormat::Json, OutputFormat::Yaml, OutputFormat::Toml] {
            let text = render(&v, f).unwrap();
            let back = parse_text(
                &text,
                match f {
                    OutputFormat::Json => Format::Json,
                    OutputFormat::Yaml => Format::Yaml,
                    OutputFormat::Toml => Format::Toml,
                },
                "r",
            )
            .unwrap();
            assert_eq!(back, v, "{f:?}: {text}");
        }
    }

    #[test]
    fn toml_render_keeps_order_and_drops_null() {
        let v = json!({"b": 1, "a": {"y": 1, "x": null}});
        let text = render(&v, OutputFormat::Toml).unwrap();
        assert_eq!(text, "b = 1\n\n[a]\ny = 1\n");
    }
}
