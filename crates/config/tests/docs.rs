#![allow(clippy::unwrap_used, clippy::expect_used)]
//! docs/config.md carries the field tables generated from the model (so they cannot drift),
//! and names every check message of the seed.

use std::path::Path;

use ocireg_config::spec::{DefaultSpec, SchemaSpec};
use ocireg_config::SCHEMAS;

fn table(spec: &SchemaSpec) -> String {
    let mut out = format!(
        "### {}\n\n{}\n\n| field | type | default |\n| --- | --- | --- |\n",
        spec.name,
        spec.description().lines().next().unwrap_or_default()
    );
    for f in &spec.fields {
        let name = if f.optional {
            format!("`{}?`", f.key)
        } else {
            format!("`{}`", f.key)
        };
        let default = match f.default {
            Some(DefaultSpec::Const(make)) => format!("`{}`", make()),
            Some(DefaultSpec::Computed(_, how)) => format!("`{how}` (computed)"),
            None if f.required() => "**required**".to_string(),
            None => "—".to_string(),
        };
        let ty = f.ty.to_string().replace('|', "\\|");
        out.push_str(&format!("| {name} | `{ty}` | {default} |\n"));
    }
    out
}

fn generated() -> String {
    SCHEMAS
        .iter()
        .map(|(_, spec)| table(&spec()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn docs() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn docs_field_tables_match_the_model() {
    if std::env::var_os("OCIREG_PRINT_DOC_TABLES").is_some() {
        println!("{}", generated());
    }
    let docs = docs();
    for (name, spec) in SCHEMAS {
        let t = table(&spec());
        assert!(
            docs.contains(&t),
            "docs/config.md is out of date for {name}; regenerate with \
             OCIREG_PRINT_DOC_TABLES=1 cargo test -p ocireg-config --test docs -- --nocapture\n{t}"
        );
    }
}

#[test]
fn docs_name_every_check_message() {
    let seed = include_str!("../src/checks.rs");
    let docs = docs();
    // Every string literal that is a check message in checks.rs (capitalised, no braces).
    let mut count = 0;
    for piece in seed.split('"').skip(1).step_by(2) {
        let is_message = piece.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && piece.contains(' ')
            && !piece.contains('{');
        if is_message {
            count += 1;
            assert!(
                docs.contains(piece),
                "docs/config.md lacks check message {piece:?}"
            );
        }
    }
    assert!(count >= 35, "found only {count} messages");
}
