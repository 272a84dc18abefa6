//! `range`: blob `Range`, upload `Content-Range` and upload `Range` headers.

use ocireg_api::{format_upload_range, parse_content_range, parse_range, parse_upload_range};
use ocireg_oci::ErrorCode;

/// Blob sizes every `Range` header is checked against (plus one taken from the input).
const SIZES: [u64; 6] = [0, 1, 2, 100, 1 << 32, u64::MAX];

fn check_range(header: &str, size: u64) {
    match parse_range(header, size) {
        Ok(Some((start, end))) => {
            assert!(start <= end, "{header:?}/{size}: {start} > {end}");
            assert!(end < size, "{header:?}/{size}: end {end} past the blob");
            for again in [format!("bytes={start}-{end}"), format!("bytes={start}-")] {
                let back = parse_range(&again, size);
                let want = if again.ends_with('-') {
                    (start, size - 1)
                } else {
                    (start, end)
                };
                assert_eq!(back, Ok(Some(want)), "{again:?}/{size} (from {header:?})");
            }
            let suffix = format!("bytes=-{}", size - start);
            assert_eq!(
                parse_range(&suffix, size),
                Ok(Some((start, size - 1))),
                "{suffix:?}/{size}"
            );
        }
        Ok(None) => {}
        Err(e) => {
            assert_eq!(e.status, 416, "{header:?}/{size}: {e}");
            assert_eq!(e.code, Some(ErrorCode::RangeInvalid));
            let detail_size = e.detail.as_ref().and_then(|d| d["size"].as_u64());
            assert_eq!(detail_size, Some(size), "{header:?}: detail {:?}", e.detail);
        }
    }
}

fn check_content_range(header: &str) {
    match parse_content_range(header) {
        Ok((start, end)) => {
            assert!(start <= end, "{header:?}: {start} > {end}");
            for again in [
                format!("{start}-{end}"),
                format!("bytes {start}-{end}/*"),
                format!("bytes {start}-{end}/{}", end.saturating_add(1)),
                format!("bytes={start}-{end}"),
            ] {
                assert_eq!(parse_content_range(&again), Ok((start, end)), "{again:?}");
            }
        }
        Err(e) => {
            let want = if e.status == 416 {
                ErrorCode::RangeInvalid
            } else {
                ErrorCode::BlobUploadInvalid
            };
            assert_eq!(e.code, Some(want), "{header:?}: {e}");
            assert!(e.status == 400 || e.status == 416, "{header:?}: {e}");
        }
    }
}

fn check_upload_range(header: &str) {
    for zero_is_empty in [false, true] {
        if let Some(offset) = parse_upload_range(header, zero_is_empty) {
            let formatted = format_upload_range(offset);
            assert_eq!(
                parse_upload_range(&formatted, offset == 0),
                Some(offset),
                "{header:?} -> {offset} -> {formatted:?}"
            );
            if offset == 0 {
                assert!(zero_is_empty, "{header:?}: offset 0 without zero_is_empty");
            }
        }
    }
}

/// Parses the input (each line, and the whole text) as `Range`, `Content-Range` and upload
/// `Range` headers: accepted ranges satisfy `start <= end` (and `end < size` for blob ranges),
/// and the canonical spellings parse back to the same range; errors carry the right code,
/// status and detail. A line `size=<n>` adds `n` to the blob sizes tried.
pub fn range(data: &[u8]) {
    let s = crate::text(data);
    let extra = s
        .lines()
        .find_map(|l| l.strip_prefix("size="))
        .and_then(|n| n.trim().parse::<u64>().ok());
    let mut headers: Vec<&str> = s.lines().collect();
    headers.push(&s);
    for header in headers {
        for size in SIZES.iter().copied().chain(extra) {
            check_range(header, size);
        }
        check_content_range(header);
        check_upload_range(header);
    }
}
