//! Reads of names, tags and digests that cannot exist are not found; writes keep their 400.

use http::Method;
use ocireg_oci::ErrorCode;

use crate::{parse_path, parse_request, ApiError};

/// Asserts that each `(method, path, code)` is refused with `status` and `code`.
fn check(cases: &[(Method, &str, ErrorCode)], status: u16) {
    for (method, path, code) in cases {
        let e: ApiError = parse_request(method, path).unwrap_err();
        assert_eq!((e.status, e.code), (status, Some(*code)), "{method} {path}");
    }
}

#[test]
fn reads_of_impossible_references_are_404_of_the_endpoints_unknown_code() {
    let bad_digest = format!("/v2/a/blobs/sha256:{}", "A".repeat(64));
    let cases: &[(&str, ErrorCode)] = &[
        // The OCI conformance suite's "nonexistent manifest".
        (
            "/v2/a/manifests/.INVALID_MANIFEST_NAME",
            ErrorCode::ManifestUnknown,
        ),
        ("/v2/a/manifests/sha256:abc", ErrorCode::ManifestUnknown),
        ("/v2/Upper/manifests/latest", ErrorCode::NameUnknown),
        ("/v2/a/../b/manifests/latest", ErrorCode::NameUnknown),
        ("/v2//manifests/latest", ErrorCode::NameUnknown),
        (&bad_digest, ErrorCode::BlobUnknown),
        (
            "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e",
            ErrorCode::BlobUnknown,
        ),
        ("/v2/-a/blobs/sha256:abc", ErrorCode::NameUnknown),
        ("/v2/Upper/tags/list", ErrorCode::NameUnknown),
    ];
    for (path, code) in cases {
        check(
            &[(Method::GET, path, *code), (Method::HEAD, path, *code)],
            404,
        );
    }
}

#[test]
fn writes_referrers_and_bad_escapes_keep_their_400() {
    let cases: &[(Method, &str, ErrorCode)] = &[
        (
            Method::PUT,
            "/v2/a/manifests/.bad",
            ErrorCode::ManifestInvalid,
        ),
        (
            Method::DELETE,
            "/v2/a/manifests/sha256:abc",
            ErrorCode::DigestInvalid,
        ),
        (
            Method::DELETE,
            "/v2/a/blobs/sha256:abc",
            ErrorCode::DigestInvalid,
        ),
        (
            Method::PUT,
            "/v2/Upper/manifests/v1",
            ErrorCode::NameInvalid,
        ),
        (
            Method::GET,
            "/v2/a/referrers/sha256:abc",
            ErrorCode::DigestInvalid,
        ),
        (
            Method::GET,
            "/v2/Upper/referrers/sha256:abc",
            ErrorCode::NameInvalid,
        ),
        (Method::GET, "/v2/a%2Fb/tags/list", ErrorCode::NameInvalid),
        (
            Method::GET,
            "/v2/Upper/blobs/uploads/abc",
            ErrorCode::NameInvalid,
        ),
    ];
    check(cases, 400);
}

#[test]
fn unknown_routes_are_unchanged_by_the_method() {
    for path in [
        "/v2/manifests/latest",
        "/v2/a/nothing/here",
        "/v2/a/manifests/",
    ] {
        let write = parse_path(path).unwrap_err();
        let read = parse_request(&Method::GET, path).unwrap_err();
        assert_eq!(read, write, "{path}");
        assert_eq!((read.status, read.code), (404, None), "{path}");
    }
}
