//! Loading a document from a file, text or stdin; KCL evaluation; the config lookup order.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::document::{document_from_value, Document};
use crate::error::ConfigError;
use crate::format::{parse_text, Format};

/// Environment variable naming the config file (second in the lookup order).
pub const CONFIG_ENV: &str = "OCIREG_CONFIG";
/// The default config location (third in the lookup order), `~` expanded at use.
pub const DEFAULT_CONFIG_PATH: &str = "~/.provisioning/oci-registry/ocireg.yaml";

/// Loads and validates a document from text in the given format (not [`Format::Kcl`]).
pub fn load_str(text: &str, format: Format) -> Result<Document, ConfigError> {
    document_from_value(&parse_text(text, format, "<input>")?)
}

/// Loads and validates a document from a file, by extension (`.yaml`/`.yml`, `.toml`,
/// `.json`, `.k`).
pub fn load_path(path: &Path) -> Result<Document, ConfigError> {
    document_from_value(&read_value(path)?)
}

/// Reads a file into a JSON value (no schema validation), by extension; `.k` files are
/// evaluated with KCL.
pub fn read_value(path: &Path) -> Result<Value, ConfigError> {
    let format = Format::from_path(path).ok_or_else(|| ConfigError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    if format == Format::Kcl {
        if !path.is_file() {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        return evaluate_kcl(path);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text(&text, format, &path.display().to_string())
}

/// Reads a whole reader (stdin) and parses it; the format is `format`, or sniffed from the
/// text when `None` (see [`Format::sniff`]).
pub fn read_value_from(
    mut reader: impl Read,
    format: Option<Format>,
) -> Result<Value, ConfigError> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|source| ConfigError::Io {
            path: PathBuf::from("-"),
            source,
        })?;
    let format = format.unwrap_or_else(|| Format::sniff(&text));
    parse_text(&text, format, "<stdin>")
}

/// Loads and validates a document from a reader (stdin); see [`read_value_from`].
pub fn load_reader(reader: impl Read, format: Option<Format>) -> Result<Document, ConfigError> {
    document_from_value(&read_value_from(reader, format)?)
}

/// The config file to use: `cli` (`--config FILE`), else `$OCIREG_CONFIG` when set and
/// non-empty, else `~/.provisioning/oci-registry/ocireg.yaml` when it exists, else `None`
/// (use [`crate::default_document`]).
pub fn resolve_config_path(cli: Option<&Path>) -> Option<PathBuf> {
    let env = std::env::var_os(CONFIG_ENV).map(PathBuf::from);
    resolve_with(cli, env, &expand_home(DEFAULT_CONFIG_PATH))
}

fn resolve_with(cli: Option<&Path>, env: Option<PathBuf>, default: &Path) -> Option<PathBuf> {
    if let Some(p) = cli {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return Some(p);
    }
    default.is_file().then(|| default.to_path_buf())
}

/// Expands a leading `~` (alone or followed by `/`) to `$HOME`; anything else, or no `HOME`,
/// is returned unchanged. Validation never expands; code expands paths when it uses them.
pub fn expand_home(path: &str) -> PathBuf {
    expand_home_in(path, None)
}

/// [`expand_home`] with `~` standing for `home` (`None`: `$HOME`).
pub fn expand_home_in(path: &str, home: Option<&Path>) -> PathBuf {
    match home {
        Some(h) => expand_home_with(path, Some(h)),
        None => {
            let env = std::env::var_os("HOME").filter(|h| !h.is_empty());
            expand_home_with(path, env.as_deref().map(Path::new))
        }
    }
}

fn expand_home_with(path: &str, home: Option<&Path>) -> PathBuf {
    match (home, path.strip_prefix('~')) {
        (Some(h), Some("")) => h.to_path_buf(),
        (Some(h), Some(rest)) if rest.starts_with('/') => h.join(rest.trim_start_matches('/')),
        _ => PathBuf::from(path),
    }
}

const PY_KCL: &str = r#"
import json, os, sys
try:
    import kcl_lib.api as api
except Exception:
    sys.exit(3)
path = sys.argv[1]
try:
    r = api.API().exec_program(api.ExecProgramArgs(
        k_filename_list=[path], work_dir=os.path.dirname(path) or "."))
except Exception as e:
    sys.stderr.write(str(e)); sys.exit(1)
if r.err_message:
    sys.stderr.write(r.err_message); sys.exit(1)
sys.stdout.write(r.json_result or "{}")
"#;

/// Evaluates a `.k` file to JSON: with `kcl run FILE --format json` when `kcl` is on PATH,
/// else through Python's `kcl_lib` (`python3`), else [`ConfigError::KclUnavailable`].
pub fn evaluate_kcl(path: &Path) -> Result<Value, ConfigError> {
    evaluate_kcl_with(path, "kcl", "python3")
}

/// [`evaluate_kcl`] with explicit program names (tests).
pub(crate) fn evaluate_kcl_with(
    path: &Path,
    kcl: &str,
    python: &str,
) -> Result<Value, ConfigError> {
    let abs = std::fs::canonicalize(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let kcl_out = Command::new(kcl)
        .arg("run")
        .arg(&abs)
        .args(["--format", "json"])
        .current_dir(&dir)
        .output();
    let out = match kcl_out {
        Ok(out) => out,
        Err(_) => {
            let py = Command::new(python)
                .arg("-c")
                .arg(PY_KCL)
                .arg(&abs)
                .current_dir(&dir)
                .output();
            match py {
                Ok(out) if out.status.code() != Some(3) => out,
                _ => {
                    return Err(ConfigError::KclUnavailable {
                        path: path.to_path_buf(),
                    })
                }
            }
        }
    };
    if !out.status.success() {
        let mut message = strip_ansi(&String::from_utf8_lossy(&out.stderr));
        if message.trim().is_empty() {
            message = strip_ansi(&String::from_utf8_lossy(&out.stdout));
        }
        return Err(ConfigError::Kcl {
            path: path.to_path_buf(),
            message: dedupe_blocks(&message),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_text(
        &text,
        Format::Json,
        &format!("KCL output of {}", path.display()),
    )
}

/// KCL repeats diagnostics; keep each blank-line-separated block once, in order.
fn dedupe_blocks(message: &str) -> String {
    let mut seen = Vec::new();
    for block in message
        .split("\n\n")
        .map(|b| b.trim_matches('\n').trim_end())
        .filter(|b| !b.trim().is_empty())
    {
        if !seen.contains(&block) {
            seen.push(block);
        }
    }
    seen.join("\n\n").trim().to_string()
}

/// Removes terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_expansion() {
        let h = Some(Path::new("/home/u"));
        assert_eq!(expand_home_with("~", h), PathBuf::from("/home/u"));
        assert_eq!(expand_home_with("~/a/b", h), PathBuf::from("/home/u/a/b"));
        assert_eq!(expand_home_with("~other/a", h), PathBuf::from("~other/a"));
        assert_eq!(expand_home_with("/abs", h), PathBuf::from("/abs"));
        assert_eq!(expand_home_with("~/a", None), PathBuf::from("~/a"));
    }

    #[test]
    fn lookup_order() {
        let dir = std::env::temp_dir().join(format!("ocireg-cfg-lookup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let default = dir.join("ocireg.yaml");
        let _ = std::fs::remove_file(&default);
        let cli = Path::new("/cli.yaml");
        let env = PathBuf::from("/env.yaml");
        assert_eq!(
            resolve_with(Some(cli), Some(env.clone()), &default),
            Some(cli.into())
        );
        assert_eq!(resolve_with(None, Some(env.clone()), &default), Some(env));
        assert_eq!(resolve_with(None, Some(PathBuf::new()), &default), None);
        assert_eq!(resolve_with(None, None, &default), None);
        std::fs::write(&default, "x").unwrap();
        assert_eq!(resolve_with(None, None, &default), Some(default.clone()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn repeated_diagnostics_are_dropped() {
        assert_eq!(dedupe_blocks("a\n b\n\n\nc\n\na\n b\n"), "a\n b\n\nc");
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(strip_ansi("\u{1b}[1;38;5;9mError\u{1b}[0m: x"), "Error: x");
    }
}
