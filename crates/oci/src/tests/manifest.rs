use serde_json::{json, Value};

use crate::{
    media_types as mt, parse_manifest, Algorithm, Digest, ErrorCode, ManifestKind, OciError,
};

fn d(s: &str) -> String {
    Digest::compute(Algorithm::Sha256, s.as_bytes()).to_string()
}

fn desc(media: &str, seed: &str, size: u64) -> Value {
    json!({"mediaType": media, "digest": d(seed), "size": size})
}

fn oci_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": desc(mt::OCI_CONFIG, "cfg", 2),
        "layers": [desc(mt::OCI_LAYER_TAR_GZIP, "l1", 10), desc(mt::OCI_LAYER_TAR, "l2", 20)],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        "unknownField": {"kept": true}
    })
}

fn parse(v: &Value, ct: Option<&str>) -> Result<crate::ParsedManifest, OciError> {
    parse_manifest(&serde_json::to_vec(v).unwrap(), ct)
}

#[test]
fn oci_image_manifest() {
    let m = parse(&oci_manifest(), Some(mt::OCI_MANIFEST)).unwrap();
    assert_eq!(m.kind, ManifestKind::OciManifest);
    assert_eq!(m.media_type, mt::OCI_MANIFEST);
    assert_eq!(m.config.as_ref().unwrap().digest.to_string(), d("cfg"));
    assert_eq!(m.layers.len(), 2);
    assert_eq!(m.layers[1].size, 20);
    let blobs: Vec<String> = m.blob_refs().map(|x| x.digest.to_string()).collect();
    assert_eq!(blobs, vec![d("cfg"), d("l1"), d("l2")]);
    assert_eq!(m.manifest_refs().count(), 0);
    assert!(m.subject.is_none());
    assert_eq!(m.referrer_artifact_type(), Some(mt::OCI_CONFIG));
    assert_eq!(m.annotations.len(), 1);
    // content-type with parameters and no content-type both work
    assert!(parse(
        &oci_manifest(),
        Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8")
    )
    .is_ok());
    assert!(parse(&oci_manifest(), None).is_ok());
}

#[test]
fn artifact_with_subject_and_artifact_type() {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {"mediaType": mt::OCI_EMPTY, "digest": mt::OCI_EMPTY_JSON_DIGEST, "size": 2},
        "layers": [],
        "subject": desc(mt::OCI_MANIFEST, "subject", 123)
    });
    let m = parse(&v, Some(mt::OCI_MANIFEST)).unwrap();
    assert!(m.layers.is_empty());
    assert_eq!(
        m.artifact_type.as_deref(),
        Some("application/vnd.example.sbom.v1")
    );
    assert_eq!(
        m.referrer_artifact_type(),
        Some("application/vnd.example.sbom.v1")
    );
    assert_eq!(m.subject.unwrap().digest.to_string(), d("subject"));
    assert_eq!(
        Digest::compute(Algorithm::Sha256, mt::OCI_EMPTY_JSON).to_string(),
        mt::OCI_EMPTY_JSON_DIGEST
    );
    let body = serde_json::to_vec(&v).unwrap();
    let own = Digest::compute(Algorithm::Sha256, &body);
    let rd = parse_manifest(&body, None)
        .unwrap()
        .referrer_descriptor(own.clone(), body.len() as u64);
    assert_eq!(
        serde_json::to_value(&rd).unwrap(),
        json!({"mediaType": mt::OCI_MANIFEST, "digest": own.to_string(),
               "size": body.len(), "artifactType": "application/vnd.example.sbom.v1"})
    );
    // without artifactType the config media type is the referrer artifact type
    let mut v2 = v.clone();
    v2.as_object_mut().unwrap().remove("artifactType");
    let m2 = parse(&v2, None).unwrap();
    assert_eq!(m2.referrer_artifact_type(), Some(mt::OCI_EMPTY));
}

#[test]
fn oci_index_with_subject() {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [
            {"mediaType": mt::OCI_MANIFEST, "digest": d("m1"), "size": 5,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": mt::OCI_MANIFEST, "digest": d("m2"), "size": 6,
             "artifactType": "x/y", "annotations": {"a": "b"}}
        ],
        "subject": desc(mt::OCI_INDEX, "s", 9)
    });
    let m = parse(&v, Some(mt::OCI_INDEX)).unwrap();
    assert_eq!(m.kind, ManifestKind::OciIndex);
    assert!(m.kind.is_index());
    assert_eq!(m.blob_refs().count(), 0);
    assert_eq!(m.manifest_refs().count(), 2);
    assert_eq!(m.manifests[0].platform.as_ref().unwrap()["os"], "linux");
    assert_eq!(m.manifests[1].artifact_type.as_deref(), Some("x/y"));
    assert!(m.subject.is_some());
    assert_eq!(
        m.referrer_artifact_type(),
        Some("application/vnd.example.bundle")
    );
    // index without artifactType has none
    let mut v2 = v.clone();
    v2.as_object_mut().unwrap().remove("artifactType");
    assert_eq!(parse(&v2, None).unwrap().referrer_artifact_type(), None);
    // empty manifests list is allowed
    let empty = json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": []});
    assert!(parse(&empty, None).unwrap().manifests.is_empty());
}

#[test]
fn docker_manifest_and_list() {
    let v = json!({
        "schemaVersion": 2,
        "mediaType": mt::DOCKER_MANIFEST,
        "config": desc(mt::DOCKER_CONFIG, "c", 1),
        "layers": [desc(mt::DOCKER_LAYER_GZIP, "l", 2)]
    });
    let m = parse(&v, Some(mt::DOCKER_MANIFEST)).unwrap();
    assert_eq!(m.kind, ManifestKind::DockerManifest);
    assert_eq!(m.blob_refs().count(), 2);
    let list = json!({
        "schemaVersion": 2,
        "mediaType": mt::DOCKER_MANIFEST_LIST,
        "manifests": [desc(mt::DOCKER_MANIFEST, "x", 3)]
    });
    let l = parse(&list, Some(mt::DOCKER_MANIFEST_LIST)).unwrap();
    assert_eq!(l.kind, ManifestKind::DockerManifestList);
    assert_eq!(l.manifest_refs().count(), 1);
    // Docker types require mediaType in the body
    let mut no_mt = v.clone();
    no_mt.as_object_mut().unwrap().remove("mediaType");
    let err = parse(&no_mt, Some(mt::DOCKER_MANIFEST)).unwrap_err();
    assert_eq!(err.code, ErrorCode::ManifestInvalid);
}

#[test]
fn kind_inferred_without_media_types() {
    let mut v = oci_manifest();
    v.as_object_mut().unwrap().remove("mediaType");
    assert_eq!(parse(&v, None).unwrap().kind, ManifestKind::OciManifest);
    assert_eq!(
        parse(&v, Some("application/json")).unwrap().kind,
        ManifestKind::OciManifest
    );
    let idx = json!({"schemaVersion": 2, "manifests": []});
    assert_eq!(parse(&idx, None).unwrap().kind, ManifestKind::OciIndex);
    let neither = json!({"schemaVersion": 2});
    assert_eq!(
        parse(&neither, None).unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
}

#[test]
fn mismatched_media_type() {
    let err = parse(&oci_manifest(), Some(mt::OCI_INDEX)).unwrap_err();
    assert_eq!(err.code, ErrorCode::ManifestInvalid);
    let err = parse(&oci_manifest(), Some(mt::DOCKER_MANIFEST)).unwrap_err();
    assert_eq!(err.code, ErrorCode::ManifestInvalid);
    let mut v = oci_manifest();
    v["mediaType"] = json!("application/vnd.example.unknown+json");
    assert_eq!(
        parse(&v, None).unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
    v["mediaType"] = json!(5);
    assert_eq!(
        parse(&v, None).unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
}

#[test]
fn garbage_and_wrong_shapes() {
    for body in [
        &b""[..],
        b"not json",
        b"{",
        b"[]",
        b"\"string\"",
        b"null",
        b"{\"schemaVersion\": 2,",
        b"\xff\xfe",
    ] {
        let err = parse_manifest(body, Some(mt::OCI_MANIFEST)).unwrap_err();
        assert_eq!(err.code, ErrorCode::ManifestInvalid, "{body:?}");
    }
    // deeply nested JSON is rejected, not a stack overflow
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        parse_manifest(deep.as_bytes(), None).unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
}

/// Sets the value at a JSON pointer, creating the last key of an object if missing.
fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match v.pointer_mut(parent).unwrap() {
        Value::Object(m) => {
            m.insert(key.to_owned(), new);
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = new,
        _ => panic!("{pointer}"),
    }
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

#[test]
fn structural_errors() {
    let base = oci_manifest();
    let cases: Vec<(Value, ErrorCode)> = vec![
        (
            without(base.clone(), "schemaVersion"),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/schemaVersion", json!(3)),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/schemaVersion", json!("2")),
            ErrorCode::ManifestInvalid,
        ),
        (without(base.clone(), "config"), ErrorCode::ManifestInvalid),
        (without(base.clone(), "layers"), ErrorCode::ManifestInvalid),
        (
            with(base.clone(), "/layers", json!({})),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/size", json!(-1)),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/size", json!(1.5)),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/size", json!("10")),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/digest", json!("sha256:abc")),
            ErrorCode::DigestInvalid,
        ),
        (
            with(base.clone(), "/config/digest", json!("md5:abc")),
            ErrorCode::DigestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/digest", json!(7)),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(
                base.clone(),
                "/layers/0",
                json!({"digest": d("x"), "size": 1}),
            ),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/mediaType", json!("")),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0", json!("sha256:x")),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/subject", json!({"mediaType": "a/b"})),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/artifactType", json!(["a"])),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/platform", json!("linux")),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/urls", json!("http://x")),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/layers/0/annotations", json!({"a": 1})),
            ErrorCode::ManifestInvalid,
        ),
        (
            with(base.clone(), "/annotations", json!(["a"])),
            ErrorCode::ManifestInvalid,
        ),
    ];
    for (i, (v, code)) in cases.into_iter().enumerate() {
        let err = parse(&v, Some(mt::OCI_MANIFEST)).unwrap_err();
        assert_eq!(err.code, code, "case {i}: {err}");
        assert!(err.detail.is_some(), "case {i}");
    }
}

#[test]
fn unknown_fields_and_nulls_allowed() {
    let v = with(oci_manifest(), "/unknownField", json!(null));
    assert!(parse(&v, None).is_ok());
    let v = with(oci_manifest(), "/layers/0/x-vendor", json!({"any": [1, 2]}));
    assert!(parse(&v, None).is_ok());
    let v = with(oci_manifest(), "/subject", json!(null));
    assert!(parse(&v, None).unwrap().subject.is_none());
}

#[test]
fn ambiguous_manifests_rejected() {
    // CVE-2021-41190: a manifest must not also look like an index, and vice versa.
    let mut v = oci_manifest();
    v["manifests"] = json!([]);
    assert_eq!(
        parse(&v, None).unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
    let idx = json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": [],
                     "layers": []});
    assert_eq!(
        parse(&idx, None).unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
    let idx = json!({"schemaVersion": 2, "manifests": [], "config": desc(mt::OCI_CONFIG, "c", 1)});
    assert_eq!(
        parse(&idx, None).unwrap_err().code,
        ErrorCode::ManifestInvalid
    );
}

#[test]
fn schema1_is_unsupported() {
    let v = json!({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []});
    assert_eq!(parse(&v, None).unwrap_err().code, ErrorCode::Unsupported);
    assert_eq!(
        parse(&v, Some(mt::DOCKER_SCHEMA1_SIGNED)).unwrap_err().code,
        ErrorCode::Unsupported
    );
    assert_eq!(
        parse(&oci_manifest(), Some(mt::DOCKER_SCHEMA1))
            .unwrap_err()
            .code,
        ErrorCode::Unsupported
    );
}

#[test]
fn sha512_descriptors() {
    let dig = Digest::compute(Algorithm::Sha512, b"layer");
    let v = with(oci_manifest(), "/layers/0/digest", json!(dig.to_string()));
    let m = parse(&v, None).unwrap();
    assert_eq!(m.layers[0].digest, dig);
}

#[test]
fn media_type_helpers() {
    assert!(mt::is_manifest_media_type(mt::OCI_MANIFEST));
    assert!(mt::is_manifest_media_type(
        "Application/Vnd.OCI.Image.Index.v1+json ; x=y"
    ));
    assert!(mt::is_manifest_media_type(mt::DOCKER_MANIFEST_LIST));
    assert!(!mt::is_manifest_media_type(mt::DOCKER_SCHEMA1));
    assert!(!mt::is_manifest_media_type(mt::OCI_CONFIG));
    assert!(mt::is_schema1_media_type(mt::DOCKER_SCHEMA1_SIGNED));
    assert_eq!(mt::essence(" a/b ; q=1"), "a/b");
    assert_eq!(
        ManifestKind::from_media_type(mt::DOCKER_MANIFEST),
        Some(ManifestKind::DockerManifest)
    );
}

#[test]
fn descriptor_serde_is_camel_case_and_skips_none() {
    let desc = crate::Descriptor::new(mt::OCI_MANIFEST, Digest::compute(Algorithm::Sha256, b""), 0);
    let v = serde_json::to_value(&desc).unwrap();
    assert_eq!(
        v,
        json!({"mediaType": mt::OCI_MANIFEST, "digest": d(""), "size": 0})
    );
    let mut full = desc.clone();
    full.artifact_type = Some("a/b".into());
    let v = serde_json::to_value(&full).unwrap();
    assert_eq!(v["artifactType"], "a/b");
    let back: crate::Descriptor = serde_json::from_value(v).unwrap();
    assert_eq!(back, full);
}
