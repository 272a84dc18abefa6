//! Unit tests for kinds, namespace mapping, path rules, policies and annotations.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ocireg_oci::{Algorithm, Digest};

use super::kinds::annotations as keys;
use super::manifest::manifest_annotations;
use super::paths::{confined_resolve, safe_relative};
use super::*;

fn ns(kind: &ArtifactKind, custom: &[(&str, &str)]) -> Result<String> {
    namespace_for(
        kind,
        "ext",
        "kcl",
        "plat",
        "test",
        custom.iter().map(|(k, v)| (*k, *v)),
    )
}

#[test]
fn kinds_parse_and_round_trip() {
    for s in [
        "extension",
        "kcl-package",
        "platform-image",
        "test-image",
        "custom:foo.bar-1",
    ] {
        let k = ArtifactKind::parse(s).unwrap();
        assert_eq!(k.to_string(), s);
        assert_eq!(s.parse::<ArtifactKind>().unwrap(), k);
        let back = ArtifactKind::from_artifact_type(k.artifact_type(), k.custom_key()).unwrap();
        assert_eq!(back, k);
        assert!(k.config_media_type().ends_with(".config.v1+json"));
        assert!(k
            .artifact_type()
            .starts_with("application/vnd.provisioning."));
    }
    for bad in [
        "",
        "Extension",
        "custom:",
        "custom:-x",
        "custom:a/b",
        "custom",
        "image",
    ] {
        assert!(
            matches!(ArtifactKind::parse(bad), Err(ClientError::InvalidKind(_))),
            "{bad:?} must be refused"
        );
    }
    assert_eq!(
        ArtifactKind::from_artifact_type("application/foo", None),
        None
    );
    assert_eq!(
        ArtifactKind::from_artifact_type(CUSTOM_ARTIFACT_TYPE, None),
        None
    );
}

#[test]
fn artifact_types_are_distinct_per_kind() {
    let kinds = [
        "extension",
        "kcl-package",
        "platform-image",
        "test-image",
        "custom:x",
    ]
    .map(|s| ArtifactKind::parse(s).unwrap());
    let mut types: Vec<_> = kinds.iter().map(|k| k.artifact_type()).collect();
    let mut configs: Vec<_> = kinds.iter().map(|k| k.config_media_type()).collect();
    types.sort_unstable();
    types.dedup();
    configs.sort_unstable();
    configs.dedup();
    assert_eq!(types.len(), 5);
    assert_eq!(configs.len(), 5);
}

#[test]
fn namespace_mapping() {
    let custom = [("tools", "team-tools"), ("ml", "ml-models")];
    assert_eq!(ns(&ArtifactKind::Extension, &custom).unwrap(), "ext");
    assert_eq!(ns(&ArtifactKind::KclPackage, &custom).unwrap(), "kcl");
    assert_eq!(ns(&ArtifactKind::PlatformImage, &custom).unwrap(), "plat");
    assert_eq!(ns(&ArtifactKind::TestImage, &custom).unwrap(), "test");
    assert_eq!(
        ns(&ArtifactKind::parse("custom:ml").unwrap(), &custom).unwrap(),
        "ml-models"
    );
    let err = ns(&ArtifactKind::parse("custom:nope").unwrap(), &custom).unwrap_err();
    match &err {
        ClientError::UnknownCustomNamespace { key, known } => {
            assert_eq!(key, "nope");
            assert_eq!(known, &["ml".to_owned(), "tools".to_owned()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("ml, tools"), "{err}");
    let err = ns(&ArtifactKind::parse("custom:x").unwrap(), &[]).unwrap_err();
    assert!(err.to_string().contains("none"), "{err}");
    // Works with a map type too.
    let map: BTreeMap<String, String> = [("a".to_owned(), "ns-a".to_owned())].into();
    let got = namespace_for(
        &ArtifactKind::parse("custom:a").unwrap(),
        "e",
        "k",
        "p",
        "t",
        &map,
    );
    assert_eq!(got.unwrap(), "ns-a");
}

#[test]
fn safe_relative_rules() {
    let ok = |p: &str| safe_relative(Path::new(p)).unwrap();
    assert_eq!(ok("a/b/c"), ["a", "b", "c"].map(OsString::from).to_vec());
    assert_eq!(ok("./a//b/"), ["a", "b"].map(OsString::from).to_vec());
    assert!(ok("./").is_empty());
    assert!(safe_relative(Path::new("/etc/passwd")).is_err());
    assert!(safe_relative(Path::new("a/../../x")).is_err());
    assert!(safe_relative(Path::new("..")).is_err());
}

#[test]
fn confined_resolution_follows_links_physically() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("d/e")).unwrap();
    // d/up -> .. (the root): fine on its own.
    std::os::unix::fs::symlink("..", root.join("d/up")).unwrap();
    let d: Vec<OsString> = vec!["d".into()];
    assert!(confined_resolve(root, &d, Path::new(".."))
        .unwrap()
        .is_empty());
    assert_eq!(
        confined_resolve(root, &d, Path::new("e/../e")).unwrap(),
        vec![OsString::from("d"), OsString::from("e")]
    );
    // Lexically "d/up/.." is "d", but physically it is the root's parent: refused.
    assert!(confined_resolve(root, &[], Path::new("d/up/..")).is_err());
    assert!(confined_resolve(root, &[], Path::new("/etc")).is_err());
    assert!(confined_resolve(root, &[], Path::new("../x")).is_err());
    // Dangling targets inside are fine.
    assert!(confined_resolve(root, &[], Path::new("missing/file")).is_ok());
    // Loops are refused.
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    let err = confined_resolve(root, &[], Path::new("loop/x")).unwrap_err();
    assert!(err.contains("loop"), "{err}");
}

#[test]
fn pull_policy_table() {
    let d = Digest::compute(Algorithm::Sha256, b"m");
    let fresh = RefLookup::Fresh(d.clone());
    let expired = RefLookup::Expired {
        digest: d.clone(),
        age: Duration::from_secs(7200),
        ttl: Duration::from_secs(3600),
        fetched_at: SystemTime::UNIX_EPOCH,
    };
    let absent = RefLookup::Absent;
    let use_cache = PullDecision::UseCache(d.clone());
    let r = "reg/repo:tag";

    for l in [&fresh, &expired, &absent] {
        assert_eq!(
            decide(PullPolicy::Always, l, r).unwrap(),
            PullDecision::Fetch
        );
    }
    assert_eq!(
        decide(PullPolicy::IfNotPresent, &fresh, r).unwrap(),
        use_cache
    );
    assert_eq!(
        decide(PullPolicy::IfNotPresent, &expired, r).unwrap(),
        PullDecision::Fetch
    );
    assert_eq!(
        decide(PullPolicy::IfNotPresent, &absent, r).unwrap(),
        PullDecision::Fetch
    );
    assert_eq!(decide(PullPolicy::Never, &fresh, r).unwrap(), use_cache);
    let e = decide(PullPolicy::Never, &expired, r).unwrap_err();
    assert!(matches!(
        e,
        ClientError::CacheExpired {
            age_secs: 7200,
            ttl_secs: 3600,
            ..
        }
    ));
    let e = decide(PullPolicy::Never, &absent, r).unwrap_err();
    assert!(matches!(e, ClientError::NotCached { .. }));
    assert!(e.to_string().contains(r), "{e}");

    assert!(PullPolicy::Never.on_blob_miss(&d).is_err());
    assert!(PullPolicy::IfNotPresent.on_blob_miss(&d).is_ok());
    assert!(!PullPolicy::Always.uses_cache());
    for p in [
        PullPolicy::Always,
        PullPolicy::IfNotPresent,
        PullPolicy::Never,
    ] {
        assert_eq!(p.as_str().parse::<PullPolicy>().unwrap(), p);
    }
    assert!("sometimes".parse::<PullPolicy>().is_err());
}

#[test]
fn signing_is_refused_clearly() {
    assert!(check_push_signing(false).is_ok());
    let e = check_push_signing(true).unwrap_err();
    assert!(matches!(e, ClientError::SigningUnsupported));
    assert!(e.to_string().contains("require_signing"), "{e}");
}

#[test]
fn annotations_merge_and_reserved_prefix() {
    let kind = ArtifactKind::parse("custom:tools").unwrap();
    let extra: BTreeMap<String, String> = [
        (keys::TITLE.to_owned(), "Pretty".to_owned()),
        (
            "org.opencontainers.image.source".to_owned(),
            "git".to_owned(),
        ),
    ]
    .into();
    let a = manifest_annotations(&kind, "n", Some("1.0"), None, &extra).unwrap();
    assert_eq!(a[keys::TITLE], "Pretty");
    assert_eq!(a[keys::VERSION], "1.0");
    assert_eq!(a[keys::KIND], "custom:tools");
    assert_eq!(a[keys::CUSTOM_KEY], "tools");
    assert!(!a.contains_key(keys::CREATED));
    let bad: BTreeMap<String, String> = [(keys::KIND.to_owned(), "x".to_owned())].into();
    assert!(matches!(
        manifest_annotations(&kind, "n", None, None, &bad),
        Err(ClientError::InvalidOption(_))
    ));
}
