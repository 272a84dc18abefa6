//! Full references. The cases marked "was:" are where the two parsers this one replaced
//! disagreed (the configuration's artifact references and the client commands' references);
//! each now follows the Distribution grammar.

use crate::{split_tag, ErrorCode, ImageReference, Reference, ReferenceParts};

const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn parse(s: &str) -> ImageReference {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn parts(s: &str) -> (Option<&str>, &str, Option<&str>, Option<&str>) {
    let p = ReferenceParts::split(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    (p.registry, p.repository, p.tag, p.digest)
}

#[test]
fn full_references() {
    let r = parse(&format!("127.0.0.1:5000/ns/sub/repo:v1@{SHA}"));
    assert_eq!(r.registry(), Some("127.0.0.1:5000"));
    assert_eq!(r.repository().as_str(), "ns/sub/repo");
    assert_eq!(r.tag().map(|t| t.as_str()), Some("v1"));
    assert_eq!(r.digest().map(ToString::to_string).as_deref(), Some(SHA));
    assert_eq!(
        r.reference().to_string(),
        SHA,
        "the digest wins over the tag"
    );
    assert_eq!(
        r.to_string(),
        format!("127.0.0.1:5000/ns/sub/repo:v1@{SHA}")
    );

    let r = parse("ns/repo");
    assert_eq!((r.registry(), r.tag()), (None, None));
    assert_eq!(r.reference(), Reference::Tag("latest".parse().unwrap()));
    assert_eq!(r.to_string(), "ns/repo");

    let r = parse("repo:t");
    assert_eq!((r.registry(), r.repository().as_str()), (None, "repo"));
    assert_eq!(r.reference().to_string(), "t");
}

#[test]
fn a_port_is_not_a_tag() {
    assert_eq!(
        parts("localhost:5000/ns/repo"),
        (Some("localhost:5000"), "ns/repo", None, None)
    );
    assert_eq!(
        parts("localhost:5000/ns/repo:v1.2"),
        (Some("localhost:5000"), "ns/repo", Some("v1.2"), None)
    );
    assert_eq!(split_tag("a/b:c"), ("a/b", Some("c")));
    assert_eq!(split_tag("a:1/b"), ("a:1/b", None));
    assert_eq!(split_tag("a/b"), ("a/b", None));
    assert_eq!(
        parts("[::1]:5000/r:t"),
        (Some("[::1]:5000"), "r", Some("t"), None)
    );
}

/// was: the configuration took the first component as the registry whatever it looked like
/// (`r/n/p` had registry `r`); the client commands used the hostname rule.
#[test]
fn registry_only_when_it_looks_like_a_host() {
    assert_eq!(parts("r/n/p"), (None, "r/n/p", None, None));
    assert_eq!(parts("reg.io/n/p"), (Some("reg.io"), "n/p", None, None));
    assert_eq!(parts("r:443/n/p"), (Some("r:443"), "n/p", None, None));
    assert_eq!(parts("localhost/p"), (Some("localhost"), "p", None, None));
    // A single component is a repository even when it looks like a host.
    assert_eq!(parts("reg.io"), (None, "reg.io", None, None));
}

/// was: the client commands also took `LocalHost` (any case) as a registry.
#[test]
fn localhost_is_matched_exactly() {
    assert_eq!(parts("LocalHost/p"), (None, "LocalHost/p", None, None));
    let e = "LocalHost/p".parse::<ImageReference>().unwrap_err();
    assert_eq!(e.code, ErrorCode::NameInvalid);
}

/// was: neither parser checked the registry; the grammar's `domain` is `host[:port]`.
#[test]
fn registry_must_be_host_and_port() {
    for bad in [
        "re_g.io/n/p",
        "reg.io:/n/p",
        "reg.io:x1/n/p",
        "a:1:2/n/p",
        "-reg.io/n/p",
        "reg..io/n/p",
        "[::1/n/p",
        "[nope]:5000/n/p",
        "[::1]x/n/p",
    ] {
        let e = ReferenceParts::split(bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::NameInvalid, "{bad}");
        assert!(e.message.contains("registry"), "{bad}: {e}");
    }
    for good in [
        "Reg.IO/n/p",
        "r-1.io:65536/n/p",
        "[fe80::1]/n/p",
        "a.b.c.d:1/n/p",
    ] {
        assert!(ReferenceParts::split(good).is_ok(), "{good}");
    }
}

/// was: the configuration accepted any namespace and repository text (`reg.io/NS/Repo`).
#[test]
fn repository_follows_the_name_grammar() {
    for bad in [
        "reg.io/NS/repo",
        "reg.io/ns//repo",
        "reg.io/ns/repo/",
        "/n/p",
        "ns/Repo",
    ] {
        let e = bad.parse::<ImageReference>().unwrap_err();
        assert_eq!(e.code, ErrorCode::NameInvalid, "{bad}");
    }
    let e = ReferenceParts::split("reg.io/:t").unwrap_err();
    assert!(e.message.contains("no repository"), "{e}");
    assert!(ReferenceParts::split("").is_err());
}

#[test]
fn tags_and_digests_are_checked() {
    for bad in ["r:", "r:.x", "r:bad tag", &format!("r:{}", "a".repeat(129))] {
        let e = bad.parse::<ImageReference>().unwrap_err();
        assert_eq!(e.code, ErrorCode::ManifestInvalid, "{bad}");
    }
    for bad in ["r@", "r@sha256:abc", "r:t@md5:00", &format!("r@{SHA}@x")] {
        let e = bad.parse::<ImageReference>().unwrap_err();
        assert_eq!(e.code, ErrorCode::DigestInvalid, "{bad}");
    }
    assert_eq!(parts("r:@"), (None, "r", Some(""), Some("")));
    // The tag is looked for before the digest only.
    assert_eq!(parts(&format!("r/p@{SHA}")), (None, "r/p", None, Some(SHA)));
}

#[test]
fn display_round_trips() {
    for s in [
        "a",
        "localhost/a:b",
        "reg.io:5000/a/b/c:1.0",
        &format!("reg.io/a@{SHA}"),
        &format!("[::1]:80/a:t@{SHA}"),
    ] {
        assert_eq!(parse(s).to_string(), s);
        assert_eq!(parse(&parse(s).to_string()), parse(s));
    }
}
