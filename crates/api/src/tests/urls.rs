use ocireg_oci::{Algorithm, Digest, RepoName};
use ocireg_test_support::xorshift::Rng;

use crate::{
    catalog_path, encode_query_value, link_header, parse_link_next, parse_pagination, query_param,
    referrers_path, tags_path, Pagination,
};

#[test]
fn pagination() {
    assert_eq!(parse_pagination(None).unwrap(), Pagination::default());
    assert_eq!(parse_pagination(Some("")).unwrap(), Pagination::default());
    assert_eq!(
        parse_pagination(Some("n=0")).unwrap(),
        Pagination {
            n: Some(0),
            last: None
        }
    );
    assert_eq!(
        parse_pagination(Some("n=10&last=v1.2")).unwrap(),
        Pagination {
            n: Some(10),
            last: Some("v1.2".into())
        }
    );
    assert_eq!(
        parse_pagination(Some("last=a%2Fb&n=3&n=7")).unwrap(),
        Pagination {
            n: Some(3),
            last: Some("a/b".into())
        }
    );
    assert_eq!(
        parse_pagination(Some("n=&last=")).unwrap(),
        Pagination::default()
    );
    assert_eq!(
        parse_pagination(Some("n=99999999999999999999999999"))
            .unwrap()
            .n,
        Some(usize::MAX)
    );
    for bad in ["n=-1", "n=abc", "n=1.5", "n=+1", "n=%2D1", "n= 1", "n=0x10"] {
        let e = parse_pagination(Some(bad)).unwrap_err();
        assert_eq!((e.status, e.code), (400, None), "{bad}");
    }
}

#[test]
fn query_params() {
    let q = Some("digest=sha256%3Aabc&mount=&from=a%2Fb&flag&artifactType=application/vnd.x+json");
    assert_eq!(query_param(q, "digest").as_deref(), Some("sha256:abc"));
    assert_eq!(query_param(q, "mount").as_deref(), Some(""));
    assert_eq!(query_param(q, "flag").as_deref(), Some(""));
    assert_eq!(query_param(q, "from").as_deref(), Some("a/b"));
    assert_eq!(
        query_param(q, "artifactType").as_deref(),
        Some("application/vnd.x+json")
    );
    assert_eq!(query_param(q, "missing"), None);
    assert_eq!(query_param(None, "digest"), None);
    assert_eq!(query_param(Some("a=%ff"), "a").as_deref(), Some("\u{fffd}"));
    assert_eq!(query_param(Some("&&a=1&&"), "a").as_deref(), Some("1"));
}

#[test]
fn builders_encode_query_values() {
    let r: RepoName = "a/b".parse().unwrap();
    assert_eq!(tags_path(&r, None, None), "/v2/a/b/tags/list");
    assert_eq!(tags_path(&r, Some(0), None), "/v2/a/b/tags/list?n=0");
    assert_eq!(
        tags_path(&r, Some(2), Some("v1.0")),
        "/v2/a/b/tags/list?n=2&last=v1.0"
    );
    assert_eq!(tags_path(&r, None, Some("x")), "/v2/a/b/tags/list?last=x");
    assert_eq!(
        catalog_path(Some(5), Some("a/b")),
        "/v2/_catalog?n=5&last=a%2Fb"
    );
    assert_eq!(catalog_path(None, None), "/v2/_catalog");
    let d = Digest::compute(Algorithm::Sha256, b"");
    assert_eq!(
        referrers_path(&r, &d, Some("application/vnd.x+json")),
        format!("/v2/a/b/referrers/{d}?artifactType=application%2Fvnd.x%2Bjson")
    );
    assert_eq!(
        referrers_path(&r, &d, None),
        format!("/v2/a/b/referrers/{d}")
    );
    // round trip through query_param
    let mut rng = Rng::new(99);
    for _ in 0..10_000 {
        let v = rng.string_from(b"aZ9/+ %&=?#-._~:", 12);
        let q = format!("x=1&v={}", encode_query_value(&v));
        assert_eq!(
            query_param(Some(&q), "v").as_deref(),
            Some(v.as_str()),
            "{v:?}"
        );
    }
}

#[test]
fn link_round_trip() {
    let r: RepoName = "a/b".parse().unwrap();
    let next = tags_path(&r, Some(2), Some("v2"));
    let h = link_header(&next);
    assert_eq!(h, format!("<{next}>; rel=\"next\""));
    assert_eq!(parse_link_next(&h).as_deref(), Some(next.as_str()));
    // other forms clients meet
    assert_eq!(
        parse_link_next("</v2/_catalog?last=b&n=1>; rel=next").as_deref(),
        Some("/v2/_catalog?last=b&n=1")
    );
    assert_eq!(
        parse_link_next(
            "<https://x/prev?a,b>; rel=\"prev\", <https://x/next>; title=\"a, b\"; REL=\"Next\""
        )
        .as_deref(),
        Some("https://x/next")
    );
    assert_eq!(
        parse_link_next("</x>; rel=\"alternate next\"").as_deref(),
        Some("/x")
    );
    for none in [
        "",
        "garbage",
        "</x>; rel=\"prev\"",
        "</x; rel=next",
        "<>",
        "rel=next",
    ] {
        assert_eq!(parse_link_next(none), None, "{none:?}");
    }
}
