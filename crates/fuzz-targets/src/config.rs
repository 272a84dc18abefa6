//! `config`: the config loader (`load_str` for YAML, TOML and JSON).

use ocireg_config::{
    document_from_value, load_str, render, to_json_value, Document, Format, OutputFormat,
};

/// The format and text of an input: a first byte `Y`, `T` or `J` forces YAML, TOML or JSON
/// for the rest; anything else is the whole text, format sniffed as for stdin.
fn split(data: &[u8]) -> (Format, std::borrow::Cow<'_, str>) {
    match data.first() {
        Some(b'Y') => (Format::Yaml, crate::text(&data[1..])),
        Some(b'T') => (Format::Toml, crate::text(&data[1..])),
        Some(b'J') => (Format::Json, crate::text(&data[1..])),
        _ => {
            let text = crate::text(data);
            (Format::sniff(&text), text)
        }
    }
}

fn same_content(a: &Document, b: &Document, what: &str) {
    assert_eq!(a.registry, b.registry, "{what}: registry differs");
    assert_eq!(a.pull_policy, b.pull_policy, "{what}: pull_policy differs");
    assert_eq!(a.push_policy, b.push_policy, "{what}: push_policy differs");
}

/// Loads the input with `load_str` (never panics); on success the effective document
/// (`to_json_value`) re-validates to the same content, `Document::validate` agrees, and the
/// document rendered as JSON, YAML and TOML loads back to the same content.
pub fn config(data: &[u8]) {
    let (format, text) = split(data);
    let Ok(doc) = load_str(&text, format) else {
        return;
    };
    let value = to_json_value(&doc);
    let again = document_from_value(&value);
    let again = match again {
        Ok(d) => d,
        Err(e) => panic!("effective document does not re-validate: {e}\n{value:#}"),
    };
    same_content(&doc, &again, "to_json_value");
    assert_eq!(
        to_json_value(&again),
        value,
        "effective document not idempotent"
    );
    match doc.validate() {
        Ok(v) => assert_eq!(v, doc, "Document::validate changed the document"),
        Err(e) => panic!("Document::validate failed: {e}"),
    }
    for (out, fmt) in [
        (OutputFormat::Json, Format::Json),
        (OutputFormat::Yaml, Format::Yaml),
        (OutputFormat::Toml, Format::Toml),
    ] {
        let rendered = match render(&value, out) {
            Ok(r) => r,
            Err(e) => panic!("render {fmt} failed: {e}\n{value:#}"),
        };
        match load_str(&rendered, fmt) {
            Ok(back) => same_content(&doc, &back, fmt.name()),
            Err(e) => panic!("rendered {fmt} does not load back: {e}\n{rendered}"),
        }
    }
}
