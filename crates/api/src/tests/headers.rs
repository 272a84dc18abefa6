use ocireg_oci::ErrorCode;
use ocireg_test_support::xorshift::Rng;

use crate::{format_upload_range, parse_content_range, parse_range, parse_upload_range};

#[test]
fn ranges_satisfiable() {
    assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
    assert_eq!(parse_range("bytes=10-", 100).unwrap(), Some((10, 99)));
    assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
    assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 99)));
    assert_eq!(parse_range("bytes=50-5000", 100).unwrap(), Some((50, 99)));
    assert_eq!(parse_range("bytes=99-99", 100).unwrap(), Some((99, 99)));
    assert_eq!(parse_range(" Bytes = 1 - 2 ", 100).unwrap(), Some((1, 2)));
    assert_eq!(
        parse_range("bytes=0-18446744073709551615", 10).unwrap(),
        Some((0, 9))
    );
}

#[test]
fn ranges_ignored() {
    assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
    assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
}

#[test]
fn ranges_unsatisfiable_or_malformed() {
    for (h, size) in [
        ("bytes=5-2", 100),
        ("bytes=abc", 100),
        ("bytes=a-b", 100),
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
        ("bytes=", 100),
        ("bytes=-", 100),
        ("bytes=--1", 100),
        ("bytes=+1-2", 100),
        ("bytes=1-2-3", 100),
        ("bytes=99999999999999999999999-", 100),
        ("bytes", 100),
        ("", 100),
    ] {
        let e = parse_range(h, size).unwrap_err();
        assert_eq!(e.status, 416, "{h:?}");
        assert_eq!(e.code, Some(ErrorCode::RangeInvalid), "{h:?}");
        assert_eq!(e.detail.as_ref().unwrap()["size"], size, "{h:?}");
    }
}

#[test]
fn range_property_results_are_in_bounds() {
    let mut rng = Rng::new(7);
    for _ in 0..50_000 {
        let size = rng.below(50) as u64;
        let h = format!("bytes={}", rng.string_from(b"0123456789-", 6));
        match parse_range(&h, size) {
            Ok(Some((a, b))) => assert!(a <= b && b < size, "{h} {size} -> {a}-{b}"),
            Ok(None) => panic!("single bytes range must not be ignored: {h}"),
            Err(e) => assert_eq!(e.status, 416),
        }
    }
}

#[test]
fn content_range_forms() {
    assert_eq!(parse_content_range("0-99").unwrap(), (0, 99));
    assert_eq!(parse_content_range("bytes 100-199/*").unwrap(), (100, 199));
    assert_eq!(
        parse_content_range("bytes 100-199/1000").unwrap(),
        (100, 199)
    );
    assert_eq!(parse_content_range("bytes=5-5").unwrap(), (5, 5));
    assert_eq!(parse_content_range(" 7-8 ").unwrap(), (7, 8));
    for bad in [
        "",
        "-",
        "5",
        "a-b",
        "5-",
        "-5",
        "bytes 1-2/x",
        "1-2-3",
        "0x1-2",
        "+1-2",
    ] {
        let e = parse_content_range(bad).unwrap_err();
        assert_eq!(e.status, 400, "{bad:?}");
        assert_eq!(e.code, Some(ErrorCode::BlobUploadInvalid), "{bad:?}");
    }
    let e = parse_content_range("10-5").unwrap_err();
    assert_eq!((e.status, e.code), (416, Some(ErrorCode::RangeInvalid)));
}

#[test]
fn upload_range_format() {
    assert_eq!(format_upload_range(0), "0-0");
    assert_eq!(format_upload_range(1), "0-0");
    assert_eq!(format_upload_range(100), "0-99");
    assert_eq!(parse_upload_range("0-99", false), Some(100));
    assert_eq!(parse_upload_range("bytes=0-99", false), Some(100));
    assert_eq!(parse_upload_range("0-0", true), Some(0));
    assert_eq!(parse_upload_range("0-0", false), Some(1));
    assert_eq!(parse_upload_range("5-9", false), None);
    assert_eq!(parse_upload_range("junk", false), None);
    for off in [2u64, 17, 1 << 40] {
        assert_eq!(
            parse_upload_range(&format_upload_range(off), false),
            Some(off)
        );
    }
}
