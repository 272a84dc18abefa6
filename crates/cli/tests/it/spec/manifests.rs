//! Manifests: PUT/GET/HEAD/DELETE by tag and digest, media types, validation errors, subject.

use crate::common::*;
use serde_json::json;

/// A manifest with deliberately odd formatting, so byte-exact storage is observable.
fn odd_manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    format!(
        "{{\n   \"schemaVersion\" : 2,\n\t\"mediaType\": \"{OCI_MANIFEST}\",\n  \"layers\": [ {} ],\n  \"config\": {}  \n}}\n\n",
        desc(OCI_LAYER, layer),
        desc(OCI_CONFIG, config)
    )
    .into_bytes()
}

fn push_config_and_layer(
    srv: &Server,
    c: &reqwest::blocking::Client,
    repo: &str,
) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = random_bytes(3000);
    push_blob(srv, c, repo, &config);
    push_blob(srv, c, repo, &layer);
    (config, layer)
}

/// Asserts that `GET /v2/REPO/manifests/REFERENCE` answers 200 with exactly `want`.
fn assert_manifest(
    srv: &Server,
    c: &reqwest::blocking::Client,
    repo: &str,
    reference: &str,
    want: &[u8],
    what: &str,
) {
    let got = get(srv, c, &format!("/v2/{repo}/manifests/{reference}")).expect(200, what);
    assert!(
        got.body == want,
        "{what}: GET {reference} returned other bytes"
    );
}

/// Asserts that `GET /v2/REPO/manifests/REFERENCE` answers 404 `MANIFEST_UNKNOWN`.
fn assert_manifest_unknown(
    srv: &Server,
    c: &reqwest::blocking::Client,
    repo: &str,
    reference: &str,
    what: &str,
) {
    get(srv, c, &format!("/v2/{repo}/manifests/{reference}")).expect_error(
        404,
        "MANIFEST_UNKNOWN",
        what,
    );
}

#[test]
fn manifest_put_get_head_by_tag_and_digest() {
    let srv = Server::start();
    let c = client();
    let repo = "man/basic";
    let (config, layer) = push_config_and_layer(&srv, &c, repo);
    let m = odd_manifest(&config, &layer);
    let d = sha256(&m);

    let r = put_manifest(&srv, &c, repo, "v1", OCI_MANIFEST, &m).expect(201, "PUT manifest by tag");
    assert_eq!(r.h("Docker-Content-Digest"), d, "PUT Docker-Content-Digest");
    let loc = srv.resolve(&r.h("Location"));
    let p = location_path(&srv, &loc);
    assert!(
        p == format!("/v2/{repo}/manifests/{d}") || p == format!("/v2/{repo}/manifests/v1"),
        "manifest Location {p} must be a pullable manifest URL"
    );
    assert_eq!(
        Reply::of(c.get(&loc).header("Accept", OCI_MANIFEST).send().unwrap())
            .expect(200, "GET Location")
            .body,
        m
    );

    for reference in ["v1", d.as_str()] {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let r = get(&srv, &c, &path).expect(200, "GET manifest");
        assert_eq!(
            r.body, m,
            "GET {reference}: bytes must be exactly what was pushed"
        );
        assert_eq!(
            r.h("Content-Type"),
            OCI_MANIFEST,
            "GET {reference} Content-Type"
        );
        assert_eq!(
            r.h("Docker-Content-Digest"),
            d,
            "GET {reference} Docker-Content-Digest"
        );
        assert_eq!(r.h("Content-Length"), m.len().to_string());
        let r = head(&srv, &c, &path).expect(200, "HEAD manifest");
        assert!(r.body.is_empty());
        assert_eq!(
            r.h("Content-Type"),
            OCI_MANIFEST,
            "HEAD {reference} Content-Type"
        );
        assert_eq!(
            r.h("Docker-Content-Digest"),
            d,
            "HEAD {reference} Docker-Content-Digest"
        );
        assert_eq!(
            r.h("Content-Length"),
            m.len().to_string(),
            "HEAD {reference} Content-Length"
        );
    }

    // PUT by digest.
    let m2 = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &config), "layers": [],
        "annotations": {"n": rand_suffix()}
    }))
    .unwrap();
    let d2 = sha256(&m2);
    let r =
        put_manifest(&srv, &c, repo, &d2, OCI_MANIFEST, &m2).expect(201, "PUT manifest by digest");
    assert_eq!(r.h("Docker-Content-Digest"), d2);
    assert_manifest(&srv, &c, repo, &d2, &m2, "GET by digest");

    // Retagging: the tag moves to the new manifest.
    put_manifest(&srv, &c, repo, "v1", OCI_MANIFEST, &m2)
        .expect(201, "PUT another manifest to the same tag");
    assert_manifest(&srv, &c, repo, "v1", &m2, "GET moved tag");
    assert_manifest(&srv, &c, repo, &d, &m, "old one by digest");
}

#[test]
fn manifest_put_by_wrong_digest_is_rejected() {
    let srv = Server::start();
    let c = client();
    let repo = "man/wrongdigest";
    let (config, layer) = push_config_and_layer(&srv, &c, repo);
    let m = odd_manifest(&config, &layer);
    let wrong = sha256(b"not this manifest");
    put_manifest(&srv, &c, repo, &wrong, OCI_MANIFEST, &m).expect_error(
        400,
        "DIGEST_INVALID",
        "PUT manifest by a mismatching digest",
    );
    get(&srv, &c, &format!("/v2/{repo}/manifests/{wrong}")).expect(404, "GET wrong digest");
    get(&srv, &c, &format!("/v2/{repo}/manifests/{}", sha256(&m))).expect(404, "GET actual digest");
}

#[test]
fn manifest_unknown() {
    let srv = Server::start();
    let c = client();
    push_image(&srv, &c, "man/unknown", "exists", 1);
    get(&srv, &c, "/v2/man/unknown/manifests/nope").expect_error(
        404,
        "MANIFEST_UNKNOWN",
        "GET unknown tag",
    );
    let d = sha256(b"no such manifest");
    get(&srv, &c, &format!("/v2/man/unknown/manifests/{d}")).expect_error(
        404,
        "MANIFEST_UNKNOWN",
        "GET unknown digest",
    );
    let r = head(&srv, &c, "/v2/man/unknown/manifests/nope").expect(404, "HEAD unknown tag");
    assert!(r.body.is_empty());
    head(&srv, &c, &format!("/v2/man/unknown/manifests/{d}")).expect(404, "HEAD unknown digest");
    delete(&srv, &c, &format!("/v2/man/unknown/manifests/{d}")).expect_error(
        404,
        "MANIFEST_UNKNOWN",
        "DELETE unknown digest",
    );
    // Unknown repository.
    get(&srv, &c, "/v2/man/no-such-repo/manifests/latest").expect_error_in(
        404,
        &["MANIFEST_UNKNOWN", "NAME_UNKNOWN"],
        "GET manifest in unknown repo",
    );
}

#[test]
fn delete_manifest_by_digest_removes_tags() {
    let srv = Server::start();
    let c = client();
    let repo = "man/deldigest";
    let img = push_image(&srv, &c, repo, "one", 2);
    put_manifest(&srv, &c, repo, "two", OCI_MANIFEST, &img.manifest).expect(201, "second tag");
    let keep = push_image(&srv, &c, repo, "keep", 1);
    delete(&srv, &c, &format!("/v2/{repo}/manifests/{}", img.digest))
        .expect(202, "DELETE manifest by digest");
    assert_manifest_unknown(&srv, &c, repo, &img.digest, "GET deleted digest");
    assert_manifest_unknown(&srv, &c, repo, "one", "GET tag of deleted manifest");
    assert_manifest_unknown(&srv, &c, repo, "two", "GET 2nd tag of deleted manifest");
    let tags = get(&srv, &c, &format!("/v2/{repo}/tags/list"))
        .expect(200, "tags list")
        .json();
    let tags: Vec<String> = serde_json::from_value(tags["tags"].clone()).unwrap_or_default();
    assert_eq!(
        tags,
        vec!["keep".to_string()],
        "tags after deleting a manifest by digest"
    );
    assert_manifest(&srv, &c, repo, "keep", &keep.manifest, "other tag");
}

#[test]
fn delete_manifest_by_tag() {
    let srv = Server::start();
    let c = client();
    let repo = "man/deltag";
    let img = push_image(&srv, &c, repo, "a", 1);
    put_manifest(&srv, &c, repo, "b", OCI_MANIFEST, &img.manifest).expect(201, "tag b");
    let r = delete(&srv, &c, &format!("/v2/{repo}/manifests/a"));
    if (r.status == 400 || r.status == 405)
        && skip_on_reference("tag deletion is optional (400/405 allowed); ocireg deletes tags")
    {
        return;
    }
    r.expect(202, "DELETE by tag");
    assert_manifest_unknown(&srv, &c, repo, "a", "GET deleted tag");
    assert_manifest(&srv, &c, repo, "b", &img.manifest, "other tag");
    assert_manifest(
        &srv,
        &c,
        repo,
        &img.digest,
        &img.manifest,
        "deleting a tag keeps the manifest",
    );
    delete(&srv, &c, &format!("/v2/{repo}/manifests/a")).expect_error(
        404,
        "MANIFEST_UNKNOWN",
        "DELETE deleted tag",
    );
}

#[test]
fn manifest_referencing_unknown_blobs() {
    let srv = Server::start();
    let c = client();
    let repo = "man/blobunknown";
    let (config, layer) = push_config_and_layer(&srv, &c, repo);
    let missing = random_bytes(100);
    // A blob present only in another repository is unknown here.
    let elsewhere = random_bytes(64);
    push_blob(&srv, &c, "man/elsewhere", &elsewhere);
    let cases = [
        ("unknown layer", &config, vec![&layer, &missing]),
        ("unknown config", &missing, vec![&layer]),
        (
            "layer that exists only in another repository",
            &config,
            vec![&elsewhere],
        ),
    ];
    for (what, config, layers) in cases {
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc(OCI_CONFIG, config),
            "layers": layers.iter().map(|l| desc(OCI_LAYER, l)).collect::<Vec<_>>()
        }))
        .unwrap();
        put_manifest(&srv, &c, repo, "bad", OCI_MANIFEST, &m).expect_error(
            400,
            "MANIFEST_BLOB_UNKNOWN",
            what,
        );
        get(&srv, &c, &format!("/v2/{repo}/manifests/bad"))
            .expect(404, "rejected manifest not tagged");
    }
}

#[test]
fn invalid_manifests() {
    let srv = Server::start();
    let c = client();
    let repo = "man/invalid";
    push_image(&srv, &c, repo, "ok", 1);
    for (what, body) in [
        ("not JSON", b"this is not json".to_vec()),
        ("truncated JSON", br#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"#.to_vec()),
        ("empty body", Vec::new()),
        ("JSON array", b"[1,2,3]".to_vec()),
    ] {
        put_manifest(&srv, &c, repo, "bad", OCI_MANIFEST, &body).expect_error(400, "MANIFEST_INVALID", what);
    }
    get(&srv, &c, &format!("/v2/{repo}/manifests/bad")).expect(404, "invalid manifest not stored");
}

#[test]
fn oci_index_and_children() {
    let srv = Server::start();
    let c = client();
    let repo = "man/index";
    let a = push_image(&srv, &c, repo, "amd64", 1);
    let b = push_image(&srv, &c, repo, "arm64", 2);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": a.digest, "size": a.manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": b.digest, "size": b.manifest.len(), "platform": {"architecture": "arm64", "os": "linux"}}
        ]
    }))
    .unwrap();
    let r = put_manifest(&srv, &c, repo, "multi", OCI_INDEX, &index).expect(201, "PUT OCI index");
    assert_eq!(r.h("Docker-Content-Digest"), sha256(&index));
    let r = get(&srv, &c, &format!("/v2/{repo}/manifests/multi")).expect(200, "GET index");
    assert_eq!(r.body, index);
    assert_eq!(r.h("Content-Type"), OCI_INDEX);

    let missing = sha256(b"no such child manifest");
    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": a.digest, "size": a.manifest.len()},
            {"mediaType": OCI_MANIFEST, "digest": missing, "size": 123}
        ]
    }))
    .unwrap();
    put_manifest(&srv, &c, repo, "bad", OCI_INDEX, &bad).expect_error(
        400,
        "MANIFEST_BLOB_UNKNOWN",
        "index with a missing child",
    );
    get(&srv, &c, &format!("/v2/{repo}/manifests/bad")).expect(404, "rejected index not tagged");
}

#[test]
fn docker_schema2_manifest_and_list() {
    let srv = Server::start();
    let c = client();
    let repo = "man/docker";
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer = random_bytes(2048);
    push_blob(&srv, &c, repo, &config);
    push_blob(&srv, &c, repo, &layer);
    let m = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, &config), "layers": [desc(DOCKER_LAYER, &layer)]
    }))
    .unwrap();
    let d = sha256(&m);
    put_manifest(&srv, &c, repo, "v2", DOCKER_MANIFEST, &m)
        .expect(201, "PUT docker schema2 manifest");
    let r = get(&srv, &c, &format!("/v2/{repo}/manifests/v2")).expect(200, "GET docker manifest");
    assert_eq!(r.body, m);
    assert_eq!(r.h("Content-Type"), DOCKER_MANIFEST);
    assert_eq!(r.h("Docker-Content-Digest"), d);

    let list = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": d, "size": m.len(), "platform": {"architecture": "amd64", "os": "linux"}}]
    }))
    .unwrap();
    put_manifest(&srv, &c, repo, "list", DOCKER_LIST, &list)
        .expect(201, "PUT docker manifest list");
    let r = get(&srv, &c, &format!("/v2/{repo}/manifests/list"))
        .expect(200, "GET docker manifest list");
    assert_eq!(r.body, list);
    assert_eq!(r.h("Content-Type"), DOCKER_LIST);
    let r = head(&srv, &c, &format!("/v2/{repo}/manifests/{}", sha256(&list)))
        .expect(200, "HEAD list by digest");
    assert_eq!(r.h("Content-Type"), DOCKER_LIST);

    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": sha256(b"missing child"), "size": 10,
                       "platform": {"architecture": "arm64", "os": "linux"}}]
    }))
    .unwrap();
    put_manifest(&srv, &c, repo, "badlist", DOCKER_LIST, &bad).expect_error(
        400,
        "MANIFEST_BLOB_UNKNOWN",
        "manifest list with a missing child",
    );
}

#[test]
fn artifact_with_subject_returns_oci_subject() {
    let srv = Server::start();
    let c = client();
    let repo = "man/artifact";
    let subject = push_image(&srv, &c, repo, "app", 1);
    push_blob(&srv, &c, repo, b"{}");
    let payload = random_bytes(333);
    push_blob(&srv, &c, repo, &payload);
    let art = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": desc(OCI_EMPTY, b"{}"),
        "layers": [desc("application/vnd.example.sbom.v1+json", &payload)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len()},
        "annotations": {"org.example.kind": "sbom"}
    }))
    .unwrap();
    let d = sha256(&art);
    let r = put_manifest(&srv, &c, repo, &d, OCI_MANIFEST, &art)
        .expect(201, "PUT artifact with subject");
    assert_eq!(r.h("Docker-Content-Digest"), d);
    let got = get(&srv, &c, &format!("/v2/{repo}/manifests/{d}")).expect(200, "GET artifact");
    assert_eq!(got.body, art);
    // A subject that does not exist (yet) MUST be accepted.
    let dangling = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig.v1",
        "config": desc(OCI_EMPTY, b"{}"), "layers": [desc(OCI_EMPTY, b"{}")],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(b"future subject"), "size": 10}
    }))
    .unwrap();
    let r2 = put_manifest(&srv, &c, repo, &sha256(&dangling), OCI_MANIFEST, &dangling)
        .expect(201, "PUT referrer whose subject does not exist");
    if skip_on_reference("v1.1-only: OCI-Subject response header") {
        return;
    }
    assert_eq!(
        r.h("OCI-Subject"),
        subject.digest,
        "OCI-Subject on PUT of a manifest with subject"
    );
    assert_eq!(
        r2.h("OCI-Subject"),
        sha256(b"future subject"),
        "OCI-Subject for a dangling subject"
    );
}

#[test]
fn manifest_sha512() {
    if skip_on_reference("v1.1-only: sha512 digests") {
        return;
    }
    let srv = Server::start();
    let c = client();
    let repo = "man/sha512";
    let img = push_image(&srv, &c, repo, "base", 1);
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &img.config), "layers": [desc(OCI_LAYER, &img.layers[0])],
        "annotations": {"algo": "sha512"}
    }))
    .unwrap();
    let d = sha512(&m);
    let r = put_manifest(&srv, &c, repo, &d, OCI_MANIFEST, &m)
        .expect(201, "PUT manifest by sha512 digest");
    assert_eq!(
        r.h("Docker-Content-Digest"),
        d,
        "Docker-Content-Digest must equal the client's sha512 digest"
    );
    let r =
        get(&srv, &c, &format!("/v2/{repo}/manifests/{d}")).expect(200, "GET manifest by sha512");
    assert_eq!(r.body, m);
    head(&srv, &c, &format!("/v2/{repo}/manifests/{d}")).expect(200, "HEAD manifest by sha512");
    // A manifest referencing a sha512 blob.
    let blob = random_bytes(999);
    let bd = sha512(&blob);
    push_blob_as(&srv, &c, repo, &blob, &bd);
    let m2 = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &img.config),
        "layers": [{"mediaType": OCI_LAYER, "digest": bd, "size": blob.len()}]
    }))
    .unwrap();
    put_manifest(&srv, &c, repo, "sha512-layer", OCI_MANIFEST, &m2)
        .expect(201, "manifest with a sha512 layer");
    delete(&srv, &c, &format!("/v2/{repo}/manifests/{d}")).expect(202, "DELETE sha512 manifest");
    get(&srv, &c, &format!("/v2/{repo}/manifests/{d}")).expect(404, "GET deleted sha512 manifest");
}

#[test]
fn large_manifests() {
    let srv = Server::start();
    let c = client();
    let repo = "man/large";
    let img = push_image(&srv, &c, repo, "base", 1);
    let make = |pad: usize| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc(OCI_CONFIG, &img.config), "layers": [desc(OCI_LAYER, &img.layers[0])],
            "annotations": {"pad": "x".repeat(pad)}
        }))
        .unwrap()
    };
    // Spec: registries SHOULD accept manifests of at least 4 megabytes.
    let ok = make(3_900_000);
    put_manifest(&srv, &c, repo, "big", OCI_MANIFEST, &ok).expect(201, "PUT 3.9 MB manifest");
    assert_manifest(&srv, &c, repo, "big", &ok, "GET big");
    // Far over any sane limit: rejected (413 preferred), not stored, server fine.
    if skip_on_replicas(
        "HAProxy drops the client's connection when a replica answers before the body is sent",
    ) {
        return;
    }
    let huge = make(64 * 1024 * 1024);
    let head_line = format!(
        "PUT /v2/{repo}/manifests/huge HTTP/1.1\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}",
        huge.len()
    );
    let r = crate::common::raw::send(srv.addr, &head_line, &huge, false)
        .unwrap_or_else(|e| panic!("PUT 64 MiB manifest: no HTTP response ({e})"));
    assert!(
        r.status == 413 || r.status == 400,
        "PUT 64 MiB manifest: expected 413 (or 400 MANIFEST_INVALID), got {}",
        r.status
    );
    get(&srv, &c, &format!("/v2/{repo}/manifests/huge")).expect(404, "huge manifest not stored");
    let mut srv = srv;
    srv.assert_alive();
}

#[test]
fn content_type_parameters_are_ignored() {
    let srv = Server::start();
    let c = client();
    let repo = "man/ctparams";
    let img = push_image(&srv, &c, repo, "base", 1);
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, &img.config), "layers": [desc(OCI_LAYER, &img.layers[0])],
        "annotations": {"ct": "params"}
    }))
    .unwrap();
    let ct = format!("{OCI_MANIFEST}; charset=utf-8");
    put_manifest(&srv, &c, repo, "p", &ct, &m).expect(201, "PUT with Content-Type parameters");
    let r = get(&srv, &c, &format!("/v2/{repo}/manifests/p")).expect(200, "GET");
    assert_eq!(r.body, m);
    let got = r.h("Content-Type");
    if got != OCI_MANIFEST
        && skip_on_reference("Distribution 2.8.2 keeps Content-Type parameters (SHOULD NOT)")
    {
        return;
    }
    assert_eq!(
        got, OCI_MANIFEST,
        "registry SHOULD NOT return Content-Type parameters"
    );
}
