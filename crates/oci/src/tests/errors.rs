use crate::{error_body, ErrorCode, OciError};
use serde_json::json;

#[test]
fn codes_round_trip_and_statuses() {
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        assert!(code
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_'));
        assert!(!code.message().is_empty());
        // Client errors, except that the registry itself cannot serve now.
        let server_side = code == ErrorCode::Unavailable;
        assert_eq!((400..500).contains(&code.status()), !server_side, "{code}");
    }
    assert_eq!(ErrorCode::parse("UNKNOWN"), None);
    assert_eq!(ErrorCode::TooManyRequests.as_str(), "TOOMANYREQUESTS");
    assert_eq!(ErrorCode::BlobUnknown.status(), 404);
    assert_eq!(ErrorCode::ManifestBlobUnknown.status(), 400);
    assert_eq!(ErrorCode::NameInvalid.status(), 400);
    assert_eq!(ErrorCode::Unauthorized.status(), 401);
    assert_eq!(ErrorCode::Denied.status(), 403);
    assert_eq!(ErrorCode::RangeInvalid.status(), 416);
    assert_eq!(ErrorCode::TooManyRequests.status(), 429);
    assert_eq!(ErrorCode::Unavailable.status(), 503);
}

#[test]
fn envelope_shape() {
    let errs = [
        OciError::blob_unknown("no such blob"),
        OciError::new(ErrorCode::DigestInvalid, "bad").with_detail(json!({"x": 1})),
    ];
    let body = error_body(&errs);
    assert_eq!(
        body,
        json!({"errors": [
            {"code": "BLOB_UNKNOWN", "message": "no such blob"},
            {"code": "DIGEST_INVALID", "message": "bad", "detail": {"x": 1}}
        ]})
    );
    assert_eq!(errs[0].to_string(), "BLOB_UNKNOWN: no such blob");
    assert_eq!(
        OciError::from_code(ErrorCode::NameUnknown).message,
        "repository name not known to registry"
    );
    assert_eq!(
        serde_json::to_value(ErrorCode::SizeInvalid).unwrap(),
        "SIZE_INVALID"
    );
}
