//! The corpus format (see README.md in this directory): cases separated by `=== name` lines,
//! directives, a `---` line, then the raw request.

use std::path::Path;

use super::Fixture;

/// Where the refusal is expected to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The registry answers: 4xx with the spec's error envelope.
    Registry,
    /// hyper refuses the message itself: 4xx and a clean close (no envelope).
    Http,
}

/// One hostile request.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Allowed statuses (empty = any 4xx).
    pub(crate) statuses: Vec<u16>,
    /// A success status tolerated because the input is valid by design (documented per case).
    pub(crate) accept: Option<u16>,
    /// Allowed error codes (empty = any).
    pub(crate) codes: Vec<String>,
    /// `Some(true)` = only with auth on, `Some(false)` = only with auth off.
    only_auth: Option<bool>,
    /// The server must close the connection after answering (implied by `kind: http`).
    pub(crate) close: bool,
    /// Shut the write side down after sending (the server sees EOF: a truncated body).
    pub(crate) half_close: bool,
    /// Request lines (head, blank line, body) with placeholders and escapes unexpanded.
    lines: Vec<String>,
}

/// Every case of every `*.cases` file, in file and then corpus order.
pub(crate) fn load() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cases"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(parse(&name, &text));
    }
    let mut names: Vec<_> = out.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate case names in the corpus");
    out
}

fn parse(file: &str, text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut cur: Option<(Case, bool)> = None; // (case, in request part)
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            if let Some((c, _)) = cur.take() {
                cases.push(finish(c));
            }
            cur = Some((
                Case {
                    file: file.to_owned(),
                    name: name.trim().to_owned(),
                    kind: Kind::Registry,
                    statuses: Vec::new(),
                    accept: None,
                    codes: Vec::new(),
                    only_auth: None,
                    half_close: false,
                    close: false,
                    lines: Vec::new(),
                },
                false,
            ));
            continue;
        }
        let Some((case, in_request)) = cur.as_mut() else {
            continue; // comments before the first case
        };
        if *in_request {
            case.lines.push(line.to_owned());
        } else if line == "---" {
            *in_request = true;
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else {
            let (key, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{file}: {}: bad directive {line:?}", case.name));
            let value = value.trim();
            match key.trim() {
                "kind" => {
                    case.kind = match value {
                        "registry" => Kind::Registry,
                        "http" => Kind::Http,
                        other => panic!("{file}: {}: kind {other:?}", case.name),
                    }
                }
                "status" => {
                    case.statuses = value
                        .split_whitespace()
                        .map(|s| s.parse().unwrap())
                        .collect()
                }
                "accept" => case.accept = Some(value.parse().unwrap()),
                "codes" => case.codes = value.split_whitespace().map(str::to_owned).collect(),
                "only" => {
                    case.only_auth = Some(match value {
                        "auth" => true,
                        "noauth" => false,
                        other => panic!("{file}: {}: only {other:?}", case.name),
                    })
                }
                "half-close" => case.half_close = value == "yes",
                "close" => case.close = value == "yes",
                other => panic!("{file}: {}: unknown directive {other:?}", case.name),
            }
        }
    }
    if let Some((c, _)) = cur {
        cases.push(finish(c));
    }
    cases
}

/// Drops the blank lines that separate a case from the next `===` (a body cannot end in an
/// empty line; write `\n` for that).
fn finish(mut c: Case) -> Case {
    while c.lines.last().is_some_and(|l| l.is_empty()) {
        c.lines.pop();
    }
    assert!(!c.lines.is_empty(), "{}: {}: no request", c.file, c.name);
    c
}

impl Case {
    /// Whether the case runs on a server with (or without) auth.
    pub(crate) fn applies(&self, auth: bool) -> bool {
        self.only_auth.is_none_or(|only| only == auth)
    }

    pub(crate) fn is_head(&self) -> bool {
        self.lines[0].starts_with("HEAD ")
    }

    /// The request bytes: head lines joined by CRLF and ended by an empty line, then the body
    /// (its lines joined by LF); placeholders expanded, escapes decoded.
    pub(crate) fn render(&self, fx: &Fixture) -> Vec<u8> {
        let split = self
            .lines
            .iter()
            .position(String::is_empty)
            .unwrap_or(self.lines.len());
        let body_src = self.lines.get(split + 1..).unwrap_or(&[]).join("\n");
        let body = expand(&body_src, fx);
        let mut head = Vec::new();
        for line in &self.lines[..split] {
            if line.trim() == "{auth}" {
                if let Some(a) = &fx.auth {
                    head.extend_from_slice(a.as_bytes());
                    head.extend_from_slice(b"\r\n");
                }
                continue;
            }
            let line = line.replace("{len}", &body.len().to_string());
            head.extend(expand(&line, fx));
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head.extend(body);
        head
    }
}

/// Placeholders (`{host}`, `{blob}`, `{blob_len}`, `{manifest}`, `{session}`, `{session10}`,
/// `{rep:N:TEXT}`) and escapes (`\r`, `\n`, `\t`, `\0`, `\xHH`, `\\`).
fn expand(src: &str, fx: &Fixture) -> Vec<u8> {
    let mut text = src
        .replace("{host}", &fx.addr.to_string())
        .replace("{blob_len}", &fx.blob_len.to_string())
        .replace("{blob}", &fx.blob)
        .replace("{manifest}", &fx.manifest);
    while let Some(at) = text.find("{session10}") {
        text.replace_range(at..at + "{session10}".len(), &fx.session(10));
    }
    while let Some(at) = text.find("{session}") {
        text.replace_range(at..at + "{session}".len(), &fx.session(0));
    }
    while let Some(at) = text.find("{rep:") {
        let end = at + text[at..].find('}').expect("unclosed {rep:");
        let inner = &text[at + 5..end];
        let (n, what) = inner.split_once(':').expect("{rep:N:TEXT}");
        let n: usize = n.parse().expect("{rep:N:TEXT}");
        let rep = what.repeat(n);
        text.replace_range(at..=end, &rep);
    }
    unescape(&text)
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'0' => out.push(0),
                b'\\' => out.push(b'\\'),
                b'x' if i + 3 < b.len() + 1 => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 4;
                    continue;
                }
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
