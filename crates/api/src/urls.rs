//! URL builders (client requests and `Location` headers), query parameters, pagination and
//! `Link` headers.
//!
//! Query decoding: `%XX` escapes are decoded (invalid UTF-8 is replaced lossily); `+` is kept
//! literally rather than read as a space, because no value in this API can contain a space while
//! media types (`artifactType`) contain `+`. Builders encode every byte outside the RFC 3986
//! unreserved set, `+` included, so a form-decoding server reads them correctly too.

use ocireg_oci::{Digest, Reference, RepoName};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::ApiError;

/// Bytes encoded in query values: everything but RFC 3986 unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query value.
pub fn encode_query_value(v: &str) -> String {
    utf8_percent_encode(v, QUERY_VALUE).to_string()
}

/// `/v2/<repo>/blobs/<digest>`.
pub fn blob_path(repo: &RepoName, digest: &Digest) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

/// `/v2/<repo>/manifests/<reference>`.
pub fn manifest_path(repo: &RepoName, reference: &Reference) -> String {
    format!("/v2/{repo}/manifests/{reference}")
}

/// `/v2/<repo>/blobs/uploads/`.
pub fn upload_start_path(repo: &RepoName) -> String {
    format!("/v2/{repo}/blobs/uploads/")
}

/// `/v2/<repo>/blobs/uploads/<session>` (the session id is percent-encoded if needed).
pub fn upload_path(repo: &RepoName, session: &str) -> String {
    format!(
        "/v2/{repo}/blobs/uploads/{}",
        utf8_percent_encode(session, QUERY_VALUE)
    )
}

fn with_pagination(mut base: String, n: Option<usize>, last: Option<&str>) -> String {
    let mut sep = '?';
    if let Some(n) = n {
        base.push(sep);
        base.push_str(&format!("n={n}"));
        sep = '&';
    }
    if let Some(last) = last {
        base.push(sep);
        base.push_str("last=");
        base.push_str(&encode_query_value(last));
    }
    base
}

/// `/v2/<repo>/tags/list[?n=<n>][&last=<last>]`.
pub fn tags_path(repo: &RepoName, n: Option<usize>, last: Option<&str>) -> String {
    with_pagination(format!("/v2/{repo}/tags/list"), n, last)
}

/// `/v2/_catalog[?n=<n>][&last=<last>]`.
pub fn catalog_path(n: Option<usize>, last: Option<&str>) -> String {
    with_pagination("/v2/_catalog".to_owned(), n, last)
}

/// `/v2/<repo>/referrers/<digest>[?artifactType=<encoded>]`.
pub fn referrers_path(repo: &RepoName, digest: &Digest, artifact_type: Option<&str>) -> String {
    let base = format!("/v2/{repo}/referrers/{digest}");
    match artifact_type {
        Some(a) => format!("{base}?artifactType={}", encode_query_value(a)),
        None => base,
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The first value of `key` in a raw query string (no leading `?`), percent-decoded; a key
/// without `=` has the empty value.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    let query = query?;
    query.split('&').filter(|p| !p.is_empty()).find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == key).then(|| decode(v))
    })
}

/// `n` and `last` of a tags or catalog request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pagination {
    /// Maximum number of results; `Some(0)` asks for an empty list (spec).
    pub n: Option<usize>,
    /// Return results strictly after this value.
    pub last: Option<String>,
}

/// Parses `n` and `last`. `n` must be a plain decimal integer (no sign); values above
/// `usize::MAX` saturate (the server clamps to its own maximum). An empty `n=` or empty
/// `last=` counts as absent. Malformed `n` → 400 without a spec code.
pub fn parse_pagination(query: Option<&str>) -> Result<Pagination, ApiError> {
    let n = match query_param(query, "n").as_deref() {
        None | Some("") => None,
        Some(s) => {
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                let shown: String = s.chars().take(64).collect();
                return Err(ApiError::bad_request(format!(
                    "invalid pagination parameter n={shown:?}: must be a non-negative integer"
                )));
            }
            Some(s.parse::<usize>().unwrap_or(usize::MAX))
        }
    };
    let last = query_param(query, "last").filter(|l| !l.is_empty());
    Ok(Pagination { n, last })
}

/// A `Link` header value pointing at the next page: `<path_with_query>; rel="next"`.
pub fn link_header(path_with_query: &str) -> String {
    format!("<{path_with_query}>; rel=\"next\"")
}

/// The URI of the `rel="next"` link in a `Link` header value (several comma-separated links
/// and extra parameters allowed; `rel` may be unquoted and list several relation types).
pub fn parse_link_next(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        let after_open = rest.strip_prefix('<')?;
        let close = after_open.find('>')?;
        let uri = &after_open[..close];
        let mut params = &after_open[close + 1..];
        // Parameters run until a comma outside quotes.
        let mut end = params.len();
        let mut in_quotes = false;
        for (i, c) in params.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let (these, next) = params.split_at(end);
        params = these;
        let is_next = params.split(';').any(|p| {
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(uri.to_owned());
        }
        rest = next;
    }
}
