use ocireg_test_support::xorshift::Rng;

use crate::{Digest, ErrorCode, Reference, RepoName, Tag};

#[test]
fn valid_names() {
    for n in [
        "a",
        "a/b/c",
        "a__b",
        "a--b",
        "a---b",
        "a_b",
        "a.b",
        "library/ubuntu",
        "0/1",
        "blobs",
        "manifests/tags/list",
        "a-b.c_d__e/f",
    ] {
        let r: RepoName = n.parse().unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(r.as_str(), n);
        assert_eq!(r.to_string(), n);
    }
}

#[test]
fn invalid_names() {
    for n in [
        "", "A", "aB", "a//b", "../x", "..", ".", "x/..", "-a", "a-", "a.", ".a", "a..b", "a___b",
        "a._b", "a-_b", "_a", "a/", "/a", "a b", "a\\b", "a:b", "a%2fb", "ä", "a/\u{0}",
    ] {
        let err = n.parse::<RepoName>().unwrap_err();
        assert_eq!(err.code, ErrorCode::NameInvalid, "{n:?}");
    }
}

#[test]
fn name_length_limit() {
    let ok = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(ok.len(), 255);
    assert!(ok.parse::<RepoName>().is_ok());
    let too_long = format!("{ok}c");
    assert_eq!(
        too_long.parse::<RepoName>().unwrap_err().code,
        ErrorCode::NameInvalid
    );
    let huge = "a".repeat(1 << 20);
    let err = huge.parse::<RepoName>().unwrap_err();
    assert!(err.message.len() < 300);
}

#[test]
fn namespace_and_components() {
    let r: RepoName = "team/app/web".parse().unwrap();
    assert_eq!(r.namespace(), "team");
    assert_eq!(r.components().collect::<Vec<_>>(), ["team", "app", "web"]);
    let single: RepoName = "solo".parse().unwrap();
    assert_eq!(single.namespace(), "solo");
}

#[test]
fn names_match_the_spec_regex() {
    let re = regex::Regex::new(
        r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$",
    )
    .unwrap();
    let mut rng = Rng::new(0x5eed);
    let alphabet = b"ab0._-/A";
    let mut valid = 0;
    for _ in 0..200_000 {
        let s = rng.string_from(alphabet, 12);
        let expected = re.is_match(&s);
        assert_eq!(RepoName::is_valid(&s), expected, "{s:?}");
        valid += usize::from(expected);
    }
    assert!(valid > 1000, "generator should hit valid names ({valid})");
}

#[test]
fn tags() {
    let t128 = format!("a{}", "b".repeat(127));
    assert!(t128.parse::<Tag>().is_ok());
    let t129 = format!("{t128}c");
    assert_eq!(
        t129.parse::<Tag>().unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
    for t in ["latest", "v1.2.3", "_x", "A-b_c.d", "0"] {
        assert_eq!(t.parse::<Tag>().unwrap().as_str(), t);
    }
    for t in ["", ".x", "-x", "a:b", "a/b", "a+b", "a b", "é"] {
        assert!(t.parse::<Tag>().is_err(), "{t:?}");
    }
    let re = regex::Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").unwrap();
    let mut rng = Rng::new(42);
    for _ in 0..100_000 {
        let s = rng.string_from(b"aZ9._-:+", 10);
        assert_eq!(Tag::is_valid(&s), re.is_match(&s), "{s:?}");
    }
}

#[test]
fn references() {
    let d = Digest::compute(ocireg_alg(), b"x");
    let r: Reference = d.to_string().parse().unwrap();
    assert_eq!(r, Reference::Digest(d.clone()));
    assert_eq!(r.to_string(), d.to_string());
    assert_eq!(r.as_digest(), Some(&d));
    let t: Reference = "latest".parse().unwrap();
    assert_eq!(t.as_tag().unwrap().as_str(), "latest");
    assert_eq!(t.to_string(), "latest");
    assert_eq!(
        "sha256:nothex".parse::<Reference>().unwrap_err().code,
        ErrorCode::DigestInvalid
    );
    assert_eq!(
        "-bad".parse::<Reference>().unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
}

fn ocireg_alg() -> crate::Algorithm {
    crate::Algorithm::Sha256
}

#[test]
fn serde_round_trip() {
    let r: RepoName = serde_json::from_str("\"a/b\"").unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"a/b\"");
    assert!(serde_json::from_str::<RepoName>("\"A\"").is_err());
    let t: Tag = serde_json::from_str("\"v1\"").unwrap();
    assert_eq!(t.as_str(), "v1");
}
