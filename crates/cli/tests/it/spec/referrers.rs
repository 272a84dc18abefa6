//! The referrers API (spec v1.1; Distribution 2.8 has none, so every test here is v1.1-only).

use crate::common::*;
use serde_json::{json, Value};

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIG: &str = "application/vnd.example.signature.v1";
const CFG_TYPE: &str = "application/vnd.example.config.v1+json";

struct Referrers {
    srv: Server,
    repo: &'static str,
    subject: PushedImage,
    /// (digest, size, mediaType, expected artifactType, annotations)
    refs: Vec<(String, usize, &'static str, Option<&'static str>, Value)>,
}

fn subject_desc(img: &PushedImage) -> Value {
    json!({"mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len()})
}

/// A subject image plus three referrers: an artifact with artifactType, an image manifest without
/// artifactType (its config mediaType stands in), and an index with artifactType; and a client.
/// None on the reference registry (see [`start`]).
fn setup() -> Option<(Referrers, reqwest::blocking::Client)> {
    let (srv, c) = start()?;
    let repo = "ref/app";
    let subject = push_image(&srv, &c, repo, "v1", 1);
    push_blob(&srv, &c, repo, b"{}");
    let mut refs = Vec::new();

    let payload = random_bytes(200);
    push_blob(&srv, &c, repo, &payload);
    let ann = json!({"org.example.kind": "sbom", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"});
    let sbom = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM,
        "config": desc(OCI_EMPTY, b"{}"), "layers": [desc("application/json", &payload)],
        "subject": subject_desc(&subject), "annotations": ann
    }))
    .unwrap();
    let r = put_manifest(&srv, &c, repo, &sha256(&sbom), OCI_MANIFEST, &sbom)
        .expect(201, "PUT sbom referrer");
    assert_eq!(r.h("OCI-Subject"), subject.digest, "OCI-Subject");
    refs.push((sha256(&sbom), sbom.len(), OCI_MANIFEST, Some(SBOM), ann));

    let cfg = br#"{"signed":true}"#.to_vec();
    push_blob(&srv, &c, repo, &cfg);
    let ann = json!({"org.example.kind": "signature"});
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(CFG_TYPE, &cfg), "layers": [desc(OCI_EMPTY, b"{}")],
        "subject": subject_desc(&subject), "annotations": ann
    }))
    .unwrap();
    put_manifest(&srv, &c, repo, "sig-tag", OCI_MANIFEST, &sig)
        .expect(201, "PUT config-typed referrer by tag");
    refs.push((sha256(&sig), sig.len(), OCI_MANIFEST, Some(CFG_TYPE), ann));

    let other = push_image(&srv, &c, repo, "other", 1);
    let ann = json!({"org.example.kind": "bundle"});
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": SIG,
        "manifests": [subject_desc(&other)],
        "subject": subject_desc(&subject), "annotations": ann
    }))
    .unwrap();
    let r = put_manifest(&srv, &c, repo, &sha256(&idx), OCI_INDEX, &idx)
        .expect(201, "PUT index referrer");
    assert_eq!(
        r.h("OCI-Subject"),
        subject.digest,
        "OCI-Subject on an index with subject"
    );
    refs.push((sha256(&idx), idx.len(), OCI_INDEX, Some(SIG), ann));
    let t = Referrers {
        srv,
        repo,
        subject,
        refs,
    };
    Some((t, c))
}

impl Referrers {
    /// The referrers of `subject` (checked to be an OCI index).
    fn of(&self, c: &reqwest::blocking::Client, subject: &str, what: &str) -> Vec<Value> {
        let path = format!("/v2/{}/referrers/{subject}", self.repo);
        check_index(&get(&self.srv, c, &path).expect(200, what))
    }
}

fn check_index(r: &Reply) -> Vec<Value> {
    assert_eq!(r.h("Content-Type"), OCI_INDEX, "referrers Content-Type");
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("manifests array in {v}"))
        .clone()
}

/// A server and a client, or None (said on stderr) on the reference registry, which has no
/// referrers API.
fn start() -> Option<(Server, reqwest::blocking::Client)> {
    if skip_on_reference("v1.1-only: referrers API") {
        return None;
    }
    Some((Server::start(), client()))
}

#[test]
fn referrers_list_all() {
    let Some((t, c)) = setup() else { return };
    let list = t.of(&c, &t.subject.digest, "GET referrers");
    assert_eq!(list.len(), t.refs.len(), "referrers count: {list:?}");
    for (d, size, mt, at, ann) in &t.refs {
        let e = list
            .iter()
            .find(|e| e["digest"] == *d)
            .unwrap_or_else(|| panic!("referrer {d} missing from {list:?}"));
        assert_eq!(e["size"], *size, "size of {d}");
        assert_eq!(e["mediaType"], *mt, "mediaType of {d}");
        match at {
            Some(at) => assert_eq!(e["artifactType"], *at, "artifactType of {d}"),
            None => assert!(e.get("artifactType").is_none()),
        }
        assert_eq!(e["annotations"], *ann, "annotations of {d}");
    }
    // The subject's tag still resolves; referrers do not disturb it.
    get(&t.srv, &c, &format!("/v2/{}/manifests/v1", t.repo)).expect(200, "subject by tag");
}

#[test]
fn referrers_filter_by_artifact_type() {
    let Some((t, c)) = setup() else { return };
    for (at, want) in [
        (SBOM, 1usize),
        (CFG_TYPE, 1),
        (SIG, 1),
        ("application/vnd.none", 0),
    ] {
        let url = with_query(
            &t.srv
                .url(&format!("/v2/{}/referrers/{}", t.repo, t.subject.digest)),
            "artifactType",
            at,
        );
        let r = Reply::of(c.get(&url).send().unwrap()).expect(200, "GET referrers?artifactType=");
        assert_eq!(
            r.ho("OCI-Filters-Applied").as_deref(),
            Some("artifactType"),
            "OCI-Filters-Applied for artifactType={at}"
        );
        let list = check_index(&r);
        assert_eq!(list.len(), want, "filtered by {at}: {list:?}");
        for e in list {
            assert_eq!(e["artifactType"], at);
        }
    }
}

#[test]
fn referrers_of_unknown_subject_is_empty() {
    let Some((srv, c)) = start() else { return };
    push_image(&srv, &c, "ref/empty", "v1", 1);
    let d = sha256(b"no such subject");
    let r = get(&srv, &c, &format!("/v2/ref/empty/referrers/{d}"))
        .expect(200, "referrers of an unknown subject");
    assert!(check_index(&r).is_empty());
    // A repository that does not exist: 200 empty or 404 NAME_UNKNOWN are both defensible;
    // a 5xx is not.
    get(&srv, &c, &format!("/v2/ref/no-repo/referrers/{d}"))
        .expect_in(&[200, 404], "referrers in an unknown repo");
}

#[test]
fn referrers_invalid_digest_is_400() {
    let Some((srv, c)) = start() else { return };
    push_image(&srv, &c, "ref/bad", "v1", 1);
    for bad in [
        "sha256:XYZ",
        "latest",
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        get(&srv, &c, &format!("/v2/ref/bad/referrers/{bad}")).expect_error_in(
            400,
            &["DIGEST_INVALID", "UNSUPPORTED"],
            &format!("referrers/{bad}"),
        );
    }
}

#[test]
fn referrers_track_deletes_and_early_pushes() {
    let Some((t, c)) = setup() else { return };
    let (gone, ..) = t.refs[0].clone();
    delete(&t.srv, &c, &format!("/v2/{}/manifests/{gone}", t.repo))
        .expect(202, "DELETE a referrer");
    let list = t.of(&c, &t.subject.digest, "referrers");
    assert_eq!(
        list.len(),
        t.refs.len() - 1,
        "deleted referrer must disappear: {list:?}"
    );
    assert!(list.iter().all(|e| e["digest"] != gone));

    // A referrer pushed before its subject is listed once the subject exists (and before).
    let future = random_bytes(50);
    let future_cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","n":"{}"}}"#,
        rand_suffix()
    )
    .into_bytes();
    let future_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &future_cfg), "layers": [desc(OCI_LAYER, &future)]
    }))
    .unwrap();
    let fd = sha256(&future_manifest);
    let early = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM,
        "config": desc(OCI_EMPTY, b"{}"), "layers": [desc(OCI_EMPTY, b"{}")],
        "subject": {"mediaType": OCI_MANIFEST, "digest": fd, "size": future_manifest.len()}
    }))
    .unwrap();
    let r = put_manifest(&t.srv, &c, t.repo, &sha256(&early), OCI_MANIFEST, &early)
        .expect(201, "early referrer");
    assert_eq!(r.h("OCI-Subject"), fd);
    assert_eq!(t.of(&c, &fd, "referrers before subject").len(), 1);
    push_blob(&t.srv, &c, t.repo, &future_cfg);
    push_blob(&t.srv, &c, t.repo, &future);
    put_manifest(&t.srv, &c, t.repo, "future", OCI_MANIFEST, &future_manifest)
        .expect(201, "subject pushed late");
    let list = t.of(&c, &fd, "referrers after subject");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], sha256(&early));
}

#[test]
fn referrers_are_scoped_to_the_repository() {
    let Some((t, c)) = setup() else { return };
    // Push the same subject into a second repository (mount its blobs) without referrers.
    let other = "ref/other";
    for b in std::iter::once(&t.subject.config).chain(t.subject.layers.iter()) {
        push_blob(&t.srv, &c, other, b);
    }
    put_manifest(&t.srv, &c, other, "v1", OCI_MANIFEST, &t.subject.manifest)
        .expect(201, "subject in other repo");
    let r = get(
        &t.srv,
        &c,
        &format!("/v2/{other}/referrers/{}", t.subject.digest),
    )
    .expect(200, "referrers other repo");
    assert!(
        check_index(&r).is_empty(),
        "referrers from another repository must not leak"
    );
}
