use http::Method;
use ocireg_oci::{Algorithm, Digest, ErrorCode, Reference, RepoName};

use crate::{
    blob_path, manifest_path, parse_path, referrers_path, required_access, required_action,
    tags_path, upload_path, upload_start_path, Action, ApiError, Endpoint,
};

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn dig() -> Digest {
    Digest::compute(Algorithm::Sha256, b"x")
}

fn code_of(path: &str) -> (u16, Option<ErrorCode>) {
    let e: ApiError = parse_path(path).unwrap_err();
    (e.status, e.code)
}

#[test]
fn base_and_catalog() {
    assert_eq!(parse_path("/v2/").unwrap(), Endpoint::Base);
    assert_eq!(parse_path("/v2").unwrap(), Endpoint::Base);
    assert_eq!(parse_path("/v2/?x=1").unwrap(), Endpoint::Base);
    assert_eq!(parse_path("/v2/_catalog").unwrap(), Endpoint::Catalog);
    assert_eq!(parse_path("/v2/_catalog?n=1").unwrap(), Endpoint::Catalog);
    assert_eq!(code_of("/v2/_catalog/"), (404, None));
    for p in [
        "",
        "/",
        "/v1/",
        "/v2x",
        "/v20/",
        "v2/",
        "/V2/",
        "//v2/",
        "/v3/a/tags/list",
    ] {
        assert_eq!(code_of(p), (404, None), "{p:?}");
    }
}

#[test]
fn multi_component_names() {
    let d = dig();
    assert_eq!(
        parse_path("/v2/a/b/c/tags/list").unwrap(),
        Endpoint::Tags {
            repo: repo("a/b/c")
        }
    );
    assert_eq!(
        parse_path(&format!("/v2/team/app/web/blobs/{d}")).unwrap(),
        Endpoint::Blob {
            repo: repo("team/app/web"),
            digest: d.clone()
        }
    );
    assert_eq!(
        parse_path("/v2/library/ubuntu/manifests/latest").unwrap(),
        Endpoint::Manifest {
            repo: repo("library/ubuntu"),
            reference: Reference::Tag("latest".parse().unwrap())
        }
    );
    assert_eq!(
        parse_path(&format!("/v2/x/y/manifests/{d}")).unwrap(),
        Endpoint::Manifest {
            repo: repo("x/y"),
            reference: Reference::Digest(d.clone())
        }
    );
    assert_eq!(
        parse_path("/v2/a/b/blobs/uploads/").unwrap(),
        Endpoint::UploadStart { repo: repo("a/b") }
    );
    assert_eq!(
        parse_path("/v2/a/b/blobs/uploads").unwrap(),
        Endpoint::UploadStart { repo: repo("a/b") }
    );
    assert_eq!(
        parse_path("/v2/a/b/blobs/uploads/0f9a-xyz_1=?_state=abc").unwrap(),
        Endpoint::Upload {
            repo: repo("a/b"),
            session: "0f9a-xyz_1=".into()
        }
    );
    assert_eq!(
        parse_path(&format!("/v2/a/b/referrers/{d}?artifactType=x")).unwrap(),
        Endpoint::Referrers {
            repo: repo("a/b"),
            digest: d
        }
    );
}

#[test]
fn repos_named_like_route_keywords() {
    let d = dig();
    assert_eq!(
        parse_path(&format!("/v2/blobs/blobs/{d}")).unwrap(),
        Endpoint::Blob {
            repo: repo("blobs"),
            digest: d.clone()
        }
    );
    assert_eq!(
        parse_path("/v2/manifests/manifests/latest").unwrap(),
        Endpoint::Manifest {
            repo: repo("manifests"),
            reference: Reference::Tag("latest".parse().unwrap())
        }
    );
    assert_eq!(
        parse_path("/v2/tags/list/tags/list").unwrap(),
        Endpoint::Tags {
            repo: repo("tags/list")
        }
    );
    assert_eq!(
        parse_path("/v2/blobs/uploads/blobs/uploads/").unwrap(),
        Endpoint::UploadStart {
            repo: repo("blobs/uploads")
        }
    );
    assert_eq!(
        parse_path(&format!("/v2/a/manifests/x/blobs/{d}")).unwrap(),
        Endpoint::Blob {
            repo: repo("a/manifests/x"),
            digest: d.clone()
        }
    );
    assert_eq!(
        parse_path(&format!("/v2/referrers/referrers/{d}")).unwrap(),
        Endpoint::Referrers {
            repo: repo("referrers"),
            digest: d
        }
    );
    assert_eq!(
        parse_path("/v2/a/blobs/uploads/manifests/v1").unwrap(),
        Endpoint::Manifest {
            repo: repo("a/blobs/uploads"),
            reference: Reference::Tag("v1".parse().unwrap())
        }
    );
}

#[test]
fn missing_name_or_reference_is_not_found() {
    for p in [
        "/v2/tags/list",
        "/v2/manifests/latest",
        "/v2/blobs/uploads/",
        "/v2/a/manifests/",
        "/v2/a/blobs/",
        "/v2/a/tags/list/",
        "/v2/a/tags",
        "/v2/a",
        "/v2/a/",
        "/v2/a/b/c",
        "/v2/a/blobs/uploads/abc/",
        "/v2/a/referrers/",
    ] {
        assert_eq!(code_of(p), (404, None), "{p:?}");
    }
}

#[test]
fn invalid_names_digests_tags() {
    let d = dig();
    let cases = [
        ("/v2/A/tags/list".to_owned(), 400, ErrorCode::NameInvalid),
        ("/v2/a//b/tags/list".to_owned(), 400, ErrorCode::NameInvalid),
        ("/v2//a/tags/list".to_owned(), 400, ErrorCode::NameInvalid),
        ("/v2/../x/tags/list".to_owned(), 400, ErrorCode::NameInvalid),
        (
            "/v2/a/../b/tags/list".to_owned(),
            400,
            ErrorCode::NameInvalid,
        ),
        ("/v2/-a/tags/list".to_owned(), 400, ErrorCode::NameInvalid),
        (format!("/v2/a./blobs/{d}"), 400, ErrorCode::NameInvalid),
        (
            "/v2/a/blobs/sha256:abc".to_owned(),
            400,
            ErrorCode::DigestInvalid,
        ),
        (
            format!("/v2/a/blobs/{}", d.to_string().to_uppercase()),
            400,
            ErrorCode::DigestInvalid,
        ),
        (
            format!("/v2/a/blobs/blake3:{}", d.hex()),
            400,
            ErrorCode::DigestInvalid,
        ),
        (
            "/v2/a/blobs/latest".to_owned(),
            400,
            ErrorCode::DigestInvalid,
        ),
        (
            "/v2/a/referrers/latest".to_owned(),
            400,
            ErrorCode::DigestInvalid,
        ),
        (
            "/v2/a/manifests/sha256:zz".to_owned(),
            400,
            ErrorCode::DigestInvalid,
        ),
        (
            "/v2/a/manifests/-tag".to_owned(),
            400,
            ErrorCode::ManifestInvalid,
        ),
        (
            format!("/v2/a/manifests/{}", "t".repeat(129)),
            400,
            ErrorCode::ManifestInvalid,
        ),
        (
            "/v2/a/blobs/uploads/..".to_owned(),
            404,
            ErrorCode::BlobUploadUnknown,
        ),
        (
            "/v2/a/blobs/uploads/%2e%2e".to_owned(),
            404,
            ErrorCode::BlobUploadUnknown,
        ),
        (
            format!("/v2/a/blobs/uploads/{}", "s".repeat(257)),
            404,
            ErrorCode::BlobUploadUnknown,
        ),
        (
            "/v2/a/blobs/uploads/.x".to_owned(),
            404,
            ErrorCode::BlobUploadUnknown,
        ),
        (
            "/v2/a/blobs/uploads/-x".to_owned(),
            404,
            ErrorCode::BlobUploadUnknown,
        ),
    ];
    for (p, status, code) in cases {
        assert_eq!(code_of(&p), (status, Some(code)), "{p}");
    }
    // the name is checked before the reference
    assert_eq!(
        code_of("/v2/A/manifests/-x").1,
        Some(ErrorCode::NameInvalid)
    );
}

#[test]
fn percent_encoding_policy() {
    // decodable printable characters are decoded, then validated
    assert_eq!(
        parse_path(&format!("/v2/a/blobs/sha256%3A{}", dig().hex())).unwrap(),
        Endpoint::Blob {
            repo: repo("a"),
            digest: dig()
        }
    );
    assert_eq!(
        parse_path("/v2/%61/tags/list").unwrap(),
        Endpoint::Tags { repo: repo("a") }
    );
    // traversal through escapes
    for p in [
        "/v2/%2e%2e/x/tags/list",
        "/v2/%2E%2E/tags/list",
        "/v2/a/%2e%2e/tags/list",
        "/v2/a%2Fb/tags/list",
        "/v2/a%2fb/tags/list",
        "/v2/a%5cb/tags/list",
        "/v2/a%00/tags/list",
        "/v2/a%/tags/list",
        "/v2/a%2/tags/list",
        "/v2/a%zz/tags/list",
        "/v2/a%25/tags/list",
        "/v2/a%C3%A4/tags/list",
        "/v2/a/manifests/%2e%2e%2fetc",
    ] {
        let (status, code) = code_of(p);
        assert_eq!(status, 400, "{p}");
        assert!(
            matches!(
                code,
                Some(ErrorCode::NameInvalid) | Some(ErrorCode::ManifestInvalid)
            ),
            "{p}: {code:?}"
        );
    }
    // an encoded slash never turns into a route separator
    assert!(parse_path("/v2/a/manifests%2Flatest").is_err());
}

#[test]
fn extensions() {
    assert_eq!(
        parse_path("/v2/_ocireg/gc/run?x=1").unwrap(),
        Endpoint::Extension {
            path: "gc/run".into()
        }
    );
    assert_eq!(
        parse_path("/v2/_ocireg").unwrap(),
        Endpoint::Extension {
            path: String::new()
        }
    );
    assert_eq!(
        parse_path("/v2/_ocireg/").unwrap(),
        Endpoint::Extension {
            path: String::new()
        }
    );
    assert_eq!(
        code_of("/v2/_other/tags/list"),
        (400, Some(ErrorCode::NameInvalid))
    );
}

#[test]
fn huge_inputs() {
    let long_name = vec!["abcdefgh"; 40_000].join("/");
    assert_eq!(
        code_of(&format!("/v2/{long_name}/tags/list")),
        (400, Some(ErrorCode::NameInvalid))
    );
    let slashes = "/".repeat(1 << 20);
    assert!(parse_path(&format!("/v2{slashes}")).is_err());
    let pct = "%41".repeat(100_000);
    assert!(parse_path(&format!("/v2/{pct}/tags/list")).is_err());
    let e = parse_path(&format!("/v2/a/manifests/{}", "x".repeat(1 << 20))).unwrap_err();
    assert!(e.message.len() < 500);
}

#[test]
fn builders_round_trip_through_the_parser() {
    let r = repo("a/blobs/c");
    let d = Digest::compute(Algorithm::Sha512, b"y");
    assert_eq!(
        parse_path(&blob_path(&r, &d)).unwrap(),
        Endpoint::Blob {
            repo: r.clone(),
            digest: d.clone()
        }
    );
    let reference: Reference = "v1.0".parse().unwrap();
    assert_eq!(
        parse_path(&manifest_path(&r, &reference)).unwrap(),
        Endpoint::Manifest {
            repo: r.clone(),
            reference
        }
    );
    assert_eq!(
        parse_path(&upload_start_path(&r)).unwrap(),
        Endpoint::UploadStart { repo: r.clone() }
    );
    assert_eq!(
        parse_path(&upload_path(&r, "abc-123")).unwrap(),
        Endpoint::Upload {
            repo: r.clone(),
            session: "abc-123".into()
        }
    );
    assert_eq!(
        parse_path(&tags_path(&r, Some(5), Some("v1"))).unwrap(),
        Endpoint::Tags { repo: r.clone() }
    );
    assert_eq!(
        parse_path(&referrers_path(&r, &d, Some("application/vnd.x+json"))).unwrap(),
        Endpoint::Referrers { repo: r, digest: d }
    );
}

#[test]
fn actions() {
    let r = repo("a/b");
    let m = Endpoint::Manifest {
        repo: r.clone(),
        reference: "v1".parse().unwrap(),
    };
    assert_eq!(required_action(&Method::GET, &m), Action::Pull);
    assert_eq!(required_action(&Method::HEAD, &m), Action::Pull);
    assert_eq!(required_action(&Method::PUT, &m), Action::Push);
    assert_eq!(required_action(&Method::DELETE, &m), Action::Delete);
    let b = Endpoint::Blob {
        repo: r.clone(),
        digest: dig(),
    };
    assert_eq!(required_action(&Method::DELETE, &b), Action::Delete);
    assert_eq!(required_action(&Method::GET, &b), Action::Pull);
    let u = Endpoint::Upload {
        repo: r.clone(),
        session: "s".into(),
    };
    for m in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
        assert_eq!(required_action(&m, &u), Action::Push);
    }
    let t = Endpoint::Tags { repo: r.clone() };
    assert_eq!(required_action(&Method::GET, &t), Action::Pull);
    assert_eq!(required_action(&Method::DELETE, &t), Action::Delete);
    assert_eq!(required_action(&Method::GET, &Endpoint::Base), Action::None);
    assert_eq!(
        required_action(&Method::GET, &Endpoint::Catalog),
        Action::None
    );
    assert!(m.allows(&Method::PUT));
    assert!(!t.allows(&Method::PUT));
    assert!(!b.allows(&Method::PUT));
    assert!(Endpoint::UploadStart { repo: r.clone() }.allows(&Method::POST));
    assert_eq!(m.repo(), Some(&r));
    assert_eq!(Endpoint::Catalog.repo(), None);
}

#[test]
fn mount_needs_pull_on_source() {
    let ep = Endpoint::UploadStart { repo: repo("dst") };
    let q = format!("mount={}&from=src%2Fapp", dig());
    let access = required_access(&Method::POST, &ep, Some(&q));
    assert_eq!(access.len(), 2);
    assert_eq!(
        (access[0].repo.as_str(), access[0].action),
        ("dst", Action::Push)
    );
    assert_eq!(
        (access[1].repo.as_str(), access[1].action),
        ("src/app", Action::Pull)
    );
    let bad = required_access(&Method::POST, &ep, Some("mount=x&from=BAD"));
    assert_eq!(bad.len(), 1);
    assert!(required_access(&Method::GET, &Endpoint::Base, None).is_empty());
}
