//! `Range`, `Content-Range` and upload `Range` headers.

use ocireg_oci::ErrorCode;
use serde_json::json;

use crate::error::ApiError;

fn unsatisfiable(message: impl Into<String>, size: u64) -> ApiError {
    ApiError::new(ErrorCode::RangeInvalid, message)
        .with_status(416)
        .with_detail(json!({ "size": size }))
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a blob `GET` `Range` header against a blob of `size` bytes (RFC 9110).
///
/// Returns `Ok(Some((start, end)))` (inclusive, `end` clamped to `size - 1`) for one satisfiable
/// range; `Ok(None)` (serve the whole blob, 200) for a unit other than `bytes` or for several
/// ranges (a server MAY ignore `Range`); 416 `RANGE_INVALID` (detail `{"size"}`; answer with
/// `Content-Range: bytes */<size>`) for a malformed range (`bytes=abc`, `bytes=5-2`), a start at
/// or past the end, a zero-length suffix, or any range of an empty blob — as Go's
/// `http.ServeContent`, which CNCF Distribution uses, does.
pub fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let header = header.trim();
    let Some((unit, set)) = header.split_once('=') else {
        return Err(unsatisfiable("malformed Range header", size));
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ok(None);
    }
    if set.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = set.split_once('-') else {
        return Err(unsatisfiable("malformed Range header", size));
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // suffix: last n bytes
        let n = parse_u64(b).ok_or_else(|| unsatisfiable("malformed Range header", size))?;
        if n == 0 || size == 0 {
            return Err(unsatisfiable("range not satisfiable", size));
        }
        let n = n.min(size);
        return Ok(Some((size - n, size - 1)));
    }
    let start = parse_u64(a).ok_or_else(|| unsatisfiable("malformed Range header", size))?;
    let end = if b.is_empty() {
        None
    } else {
        Some(parse_u64(b).ok_or_else(|| unsatisfiable("malformed Range header", size))?)
    };
    if let Some(end) = end {
        if end < start {
            return Err(unsatisfiable("range end before start", size));
        }
    }
    if start >= size {
        return Err(unsatisfiable(
            "range start beyond the end of the blob",
            size,
        ));
    }
    let end = end.map_or(size - 1, |e| e.min(size - 1));
    Ok(Some((start, end)))
}

/// Parses an upload `PATCH`/`PUT` `Content-Range`: `a-b` (the spec's form) and
/// `bytes a-b/<total or *>` / `bytes=a-b` (sent by some clients). Inclusive `(a, b)`.
/// Malformed → 400 `BLOB_UPLOAD_INVALID`; `b < a` → 416 `RANGE_INVALID`.
pub fn parse_content_range(header: &str) -> Result<(u64, u64), ApiError> {
    let malformed = || {
        let shown: String = header.chars().take(64).collect();
        ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!("malformed Content-Range {shown:?}"),
        )
    };
    let mut s = header.trim();
    if let Some(r) = s.strip_prefix("bytes") {
        s = r.trim_start_matches([' ', '=']);
        if let Some((range, total)) = s.split_once('/') {
            let total = total.trim();
            if total != "*" && parse_u64(total).is_none() {
                return Err(malformed());
            }
            s = range;
        }
    }
    let (a, b) = s.split_once('-').ok_or_else(malformed)?;
    let start = parse_u64(a).ok_or_else(malformed)?;
    let end = parse_u64(b).ok_or_else(malformed)?;
    if end < start {
        return Err(
            ApiError::new(ErrorCode::RangeInvalid, "Content-Range end before start")
                .with_status(416),
        );
    }
    Ok((start, end))
}

/// The upload `Range` header value after `offset` bytes: `0-<offset-1>`. With nothing uploaded
/// the spec's `0-<end-of-range>` has no value; like CNCF Distribution we send `0-0` (clients
/// read it as "nothing yet" from the POST/GET context; containerd and Go clients accept it).
pub fn format_upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// Parses an upload `Range` response header (`0-<end>`, optionally `bytes=0-<end>`) into the
/// next offset (`end + 1`). `0-0` is ambiguous (0 or 1 byte); it is read as 0 only when
/// `zero_is_empty` is set, as a client does right after `POST`.
pub fn parse_upload_range(header: &str, zero_is_empty: bool) -> Option<u64> {
    let s = header.trim();
    let s = s.strip_prefix("bytes=").unwrap_or(s);
    let (a, b) = s.split_once('-')?;
    if parse_u64(a)? != 0 {
        return None;
    }
    let end = parse_u64(b)?;
    if end == 0 && zero_is_empty {
        return Some(0);
    }
    end.checked_add(1)
}
