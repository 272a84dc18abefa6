//! YAML parsing with the limits ocireg sets for a config file, and the parser's errors in words:
//! a duplicate key names the key and both lines, a breached limit names the limit.

use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{
    Budget, DuplicateKeyPolicy, Error, MessageFormatter, Options, UserMessageFormatter,
};

use crate::error::ConfigError;

/// Most nodes (maps, lists and scalar values) a YAML config may have.
pub(crate) const MAX_NODES: usize = 250_000;
/// Deepest nesting of maps and lists in a YAML config.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most parser events (nodes, ends of maps and lists, aliases) a YAML config may produce.
const MAX_EVENTS: usize = 1_000_000;
/// Most aliases (`*name`) in a YAML config.
const MAX_ALIASES: usize = 50_000;
/// Most anchors (`&name`) in a YAML config.
const MAX_ANCHORS: usize = 50_000;
/// Most documents (`---`) in a YAML stream.
const MAX_DOCUMENTS: usize = 1_024;
/// Most bytes of scalar text in a YAML config.
const MAX_SCALAR_BYTES: usize = 64 << 20;
/// Most merge keys (`<<`) in a YAML config.
const MAX_MERGE_KEYS: usize = 10_000;

fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_nodes = MAX_NODES;
    budget.max_depth = MAX_DEPTH;
    budget.max_events = MAX_EVENTS;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ANCHORS;
    budget.max_documents = MAX_DOCUMENTS;
    budget.max_total_scalar_bytes = MAX_SCALAR_BYTES;
    budget.max_merge_keys = MAX_MERGE_KEYS;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options
}

/// Parses YAML text (not blank: see [`is_blank`]) into a JSON value.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Value, ConfigError> {
    serde_saphyr::from_str_with_options::<Value>(text, options()).map_err(|e| {
        let loc = e.location();
        let line = loc.map(|l| usize::try_from(l.line()).unwrap_or(usize::MAX));
        let column = loc.map(|l| usize::try_from(l.column()).unwrap_or(usize::MAX));
        match original(&e) {
            Error::DuplicateMappingKey { key: Some(key), .. } => ConfigError::DuplicateKey {
                format: "YAML",
                origin: origin.to_string(),
                first_line: line.and_then(|l| first_occurrence(text, key, l, column?)),
                line: line.unwrap_or(0),
                key: key.clone(),
            },
            Error::Budget { breach, .. } => ConfigError::TooLarge {
                origin: origin.to_string(),
                what: breach_in_words(breach),
            },
            Error::MultipleDocuments { .. } => ConfigError::Parse {
                format: "YAML",
                origin: origin.to_string(),
                line,
                column,
                message: "a second YAML document (after a `---` line) starts here; a config \
                          file holds one document"
                    .to_string(),
            },
            other => ConfigError::Parse {
                format: "YAML",
                origin: origin.to_string(),
                line,
                column,
                message: first_line(&UserMessageFormatter.format_message(other)),
            },
        }
    })
}

/// The error a snippet or alias wrapper carries.
fn original(mut e: &Error) -> &Error {
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = e {
        e = error;
    }
    e
}

/// A breached parser limit, in words with the limit's number.
fn breach_in_words(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::Nodes { .. } => format!(
            "the document has more than {MAX_NODES} nodes (maps, lists and values together)"
        ),
        BudgetBreach::Depth { .. } => {
            format!("the document nests maps and lists more than {MAX_DEPTH} levels deep")
        }
        BudgetBreach::Events { .. } => format!(
            "the document has more than {MAX_EVENTS} parser events (nodes, ends of maps and lists, aliases)"
        ),
        BudgetBreach::Aliases { .. } => {
            format!("the document uses more than {MAX_ALIASES} aliases (*name)")
        }
        BudgetBreach::Anchors { .. } => {
            format!("the document defines more than {MAX_ANCHORS} anchors (&name)")
        }
        BudgetBreach::Documents { .. } => {
            format!("the file holds more than {MAX_DOCUMENTS} YAML documents")
        }
        BudgetBreach::ScalarBytes { .. } => {
            format!("the values hold more than {MAX_SCALAR_BYTES} bytes of text")
        }
        BudgetBreach::MergeKeys { .. } => {
            format!("the document has more than {MAX_MERGE_KEYS} merge keys (<<)")
        }
        BudgetBreach::AliasAnchorRatio { aliases, anchors } => format!(
            "the document uses {aliases} aliases for {anchors} anchors (more than ten uses per anchor)"
        ),
        _ => "the document exceeds the YAML parser's limits".to_string(),
    }
}

/// The first line of a YAML error, without its own `error:` and `line N column M:` prefixes.
pub(crate) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((loc, msg)) if loc.split(' ').count() == 3 && loc.contains(" column ") => {
            msg.to_string()
        }
        _ => line.to_string(),
    }
}

/// Text with nothing but whitespace, comments and document markers (`---`, `...`).
pub(crate) fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    })
}

/// The line where `key`, repeated at (`line`, `column`) of a block mapping, first appears in
/// that mapping: the nearest line above at the same key column before the mapping ends (a
/// line indented less). `None` for flow mappings (`{a: 1, a: 2}`) and quoted keys.
fn first_occurrence(text: &str, key: &str, line: usize, column: usize) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let col = column.checked_sub(1)?;
    for i in (0..line.checked_sub(1)?.min(lines.len())).rev() {
        let l = lines[i];
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = l.len() - trimmed.len();
        let (key_col, rest) = key_start(l);
        if key_col == col && starts_with_key(rest, key) {
            return Some(i + 1);
        }
        if indent < col || key_col < col {
            return None;
        }
    }
    None
}

/// Where a line's mapping key starts, past indentation and list-item dashes (`- - key:`).
fn key_start(l: &str) -> (usize, &str) {
    let mut rest = l.trim_start();
    let mut col = l.len() - rest.len();
    while let Some(after) = rest.strip_prefix('-') {
        let trimmed = after.trim_start();
        if trimmed.len() == after.len() {
            break;
        }
        col += rest.len() - trimmed.len();
        rest = trimmed;
    }
    (col, rest)
}

fn starts_with_key(rest: &str, key: &str) -> bool {
    rest.strip_prefix(key)
        .is_some_and(|after| after.trim_start().starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_name_the_key_and_both_lines() {
        let text = "# c\nregistry:\n  a: 1\n  b:\n    - x: 1\n      y: 2\n      x: 3\n  a: 2\n";
        let e = parse(text, "c.yaml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "YAML error in c.yaml: duplicate key \"x\" at line 7 (first at line 5); \
             each key may appear once in a map"
        );
        let e = parse("registry: 1\nother: 2\nregistry: 3\n", "c.yaml").unwrap_err();
        assert!(
            e.to_string()
                .contains("duplicate key \"registry\" at line 3 (first at line 1)"),
            "{e}"
        );
        let e = parse("a: 1\nb:\n  c: 1\n  c: 2\n", "-").unwrap_err();
        assert!(
            e.to_string().contains("\"c\" at line 4 (first at line 3)"),
            "{e}"
        );
        let e = parse("x: {a: 1, a: 2}\n", "-").unwrap_err();
        assert!(
            e.to_string().contains("duplicate key \"a\" at line 1;"),
            "flow maps name the line only: {e}"
        );
        assert!(!e.to_string().contains("DuplicateKeyPolicy"), "{e}");
    }

    #[test]
    fn the_node_limit_is_named_with_its_number() {
        let items = vec!["1"; MAX_NODES + 1].join(",");
        let e = parse(&format!("x: [{items}]\n"), "big.yaml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "big.yaml is too large: the document has more than 250000 nodes (maps, lists and \
             values together), the limit for a config file"
        );
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = parse(&deep, "deep.yaml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "deep.yaml is too large: the document nests maps and lists more than 64 levels \
             deep, the limit for a config file"
        );
        let items = vec!["1"; MAX_NODES - 10].join(",");
        assert!(parse(&format!("x: [{items}]\n"), "ok.yaml").is_ok());
    }

    #[test]
    fn other_errors_are_worded_for_users() {
        let e = parse("a: 1\n---\nb: 2\n", "m.yaml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "YAML syntax error in m.yaml at line 3, column 1: a second YAML document (after a \
             `---` line) starts here; a config file holds one document"
        );
        let e = parse("a: [1, 2\nb: 3\n", "u.yaml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("YAML syntax error in u.yaml at line "),
            "{e}"
        );
    }

    #[test]
    fn blank_text() {
        assert!(is_blank(""));
        assert!(is_blank("  \n# only a comment\n---\n"));
        assert!(!is_blank("a: 1\n"));
        assert!(!is_blank("~\n"));
    }
}
