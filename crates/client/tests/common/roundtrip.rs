//! The shared round trip: blobs pushed three ways, manifests, tags, pulls, mount, catalog, delete.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use ocireg_client::{BlobSource, ClientOptions, Credentials, PushOutcome, Registry};
use ocireg_oci::{media_types, Descriptor, ErrorCode, Reference};

use super::*;

/// The blobs [`push_three_ways`] pushed.
struct Pushed {
    config: Vec<u8>,
    config_digest: Digest,
    file: std::path::PathBuf,
    file_digest: Digest,
    reader_data: Vec<u8>,
    reader_digest: Digest,
}

/// The one referrer of `subject` in `r` with `artifact_type`.
pub async fn only_referrer_of_type(
    reg: &Registry,
    r: &RepoName,
    subject: &Digest,
    artifact_type: &str,
) -> Descriptor {
    let found = reg
        .referrers(r, subject, Some(artifact_type))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{artifact_type}: {found:?}");
    found.into_iter().next().unwrap()
}

/// A client like `reg` (same registry, options and `creds`) asking for `n` entries per page.
fn with_page_size(reg: &Registry, creds: &Credentials, n: usize) -> Registry {
    let opts = ClientOptions {
        page_size: Some(n),
        ..reg.options().clone()
    };
    Registry::new(reg.base_url().as_str(), creds.clone(), opts).unwrap()
}

/// Small blob (monolithic), large file (chunked), large reader (chunked, buffered chunk).
async fn push_three_ways(reg: &Registry, r: &RepoName, work: &std::path::Path) -> Pushed {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = sha256(&config);
    // The second push finds the blob there.
    for want in [PushOutcome::Uploaded, PushOutcome::Existed] {
        let size = config.len() as u64;
        let out = reg
            .push_blob(r, &config_digest, size, config.clone().into())
            .await
            .unwrap();
        assert_eq!(out, want);
    }

    let (file, file_digest) = write_blob_file(work, "layer.bin", 5 * 1024 * 1024 + 17, 1);
    reg.push_blob(
        r,
        &file_digest,
        5 * 1024 * 1024 + 17,
        BlobSource::Path(file.clone()),
    )
    .await
    .unwrap();

    let reader_data = pseudo_random(3 * 1024 * 1024 + 5, 2);
    let reader_digest = sha256(&reader_data);
    let reader = std::io::Cursor::new(reader_data.clone());
    reg.push_blob(
        r,
        &reader_digest,
        reader_data.len() as u64,
        BlobSource::Reader(Box::new(reader)),
    )
    .await
    .unwrap();
    assert!(reg.blob_exists(r, &reader_digest).await.unwrap());

    Pushed {
        config,
        config_digest,
        file,
        file_digest,
        reader_data,
        reader_digest,
    }
}

/// A manifest under tag `v1`, fetched by tag and digest and verified; returns digest and bytes.
async fn manifest_by_tag_and_digest(reg: &Registry, r: &RepoName, p: &Pushed) -> (Digest, Vec<u8>) {
    let Pushed {
        config,
        config_digest,
        file_digest,
        reader_data,
        reader_digest,
        ..
    } = p;
    let manifest = image_manifest(
        (config_digest, config.len() as u64),
        &[
            (file_digest, 5 * 1024 * 1024 + 17),
            (reader_digest, reader_data.len() as u64),
        ],
    );
    let tag: Reference = "v1".parse().unwrap();
    let digest = reg
        .put_manifest(
            r,
            &tag,
            media_types::OCI_MANIFEST,
            Bytes::from(manifest.clone()),
        )
        .await
        .unwrap();
    assert_eq!(digest, sha256(&manifest));
    let got = reg.get_manifest(r, &tag, &[]).await.unwrap();
    assert_eq!(got.bytes.as_ref(), manifest.as_slice());
    assert_eq!(got.digest, digest);
    assert!(
        got.media_type.starts_with(media_types::OCI_MANIFEST),
        "{}",
        got.media_type
    );
    let by_digest = reg
        .get_manifest(
            r,
            &Reference::Digest(digest.clone()),
            &[media_types::OCI_MANIFEST],
        )
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, got.bytes);
    let head = reg.head_manifest(r, &tag, &[]).await.unwrap().unwrap();
    assert_eq!(
        (head.digest.clone(), head.size),
        (digest.clone(), manifest.len() as u64)
    );
    assert!(reg
        .head_manifest(r, &"nope".parse().unwrap(), &[])
        .await
        .unwrap()
        .is_none());

    (digest, manifest)
}

/// Tags, paginated two at a time.
async fn tags_paginated(
    reg: &Registry,
    creds: &Credentials,
    r: &RepoName,
    manifest: &[u8],
    sorted_tag_pages: bool,
) {
    for t in ["a", "b", "c", "d"] {
        reg.put_manifest(
            r,
            &t.parse().unwrap(),
            media_types::OCI_MANIFEST,
            Bytes::from(manifest.to_vec()),
        )
        .await
        .unwrap();
    }
    let paged = with_page_size(reg, creds, 2);
    if sorted_tag_pages {
        assert_eq!(paged.tags(r).await.unwrap(), vec!["a", "b", "c", "d", "v1"]);
        let (first, more) = paged.tags_page(r, Some(2), None).await.unwrap();
        assert_eq!((first, more), (vec!["a".to_owned(), "b".to_owned()], true));
        let (last, more) = paged.tags_page(r, Some(2), Some("d")).await.unwrap();
        assert_eq!((last, more), (vec!["v1".to_owned()], false));
    } else {
        // Distribution 2.8 ignores `n` on tag lists and does not sort them: compare as sets.
        // Its catalog does paginate; that is checked below.
        let mut tags = paged.tags(r).await.unwrap();
        tags.sort();
        assert_eq!(tags, vec!["a", "b", "c", "d", "v1"]);
    }
}

/// Pull back byte-exact: to a writer and to a file.
async fn pull_back(reg: &Registry, r: &RepoName, work: &std::path::Path, p: &Pushed) {
    let mut buf = Vec::new();
    let n = reg.pull_blob(r, &p.reader_digest, &mut buf).await.unwrap();
    assert_eq!(n, p.reader_data.len() as u64);
    assert_eq!(buf, p.reader_data);
    let dest = work.join("pulled.bin");
    reg.pull_blob_to_file(r, &p.file_digest, &dest)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&p.file).unwrap()
    );
}

/// Cross-repository mount, then the catalog shows both repositories (also one per page).
async fn mount_and_catalog(reg: &Registry, creds: &Credentials, r: &RepoName, p: &Pushed) {
    let other = repo("team/other");
    assert!(reg.mount_blob(&other, &p.file_digest, r).await.unwrap());
    assert!(reg.blob_exists(&other, &p.file_digest).await.unwrap());
    let missing = sha256(b"never pushed");
    assert!(!reg.mount_blob(&other, &missing, r).await.unwrap());
    let catalog = reg.catalog().await.unwrap();
    assert_eq!(catalog, vec!["team/app", "team/other"]);
    let one_per_page = with_page_size(reg, creds, 1);
    assert_eq!(one_per_page.catalog().await.unwrap(), catalog);
}

/// Pushes blobs three ways, a manifest, tags; pulls everything back byte-exact; mounts; deletes.
pub async fn full_round_trip(
    reg: &Registry,
    creds: &Credentials,
    work: &std::path::Path,
    sorted_tag_pages: bool,
) {
    let r = repo("team/app");
    reg.ping().await.unwrap();
    let pushed = push_three_ways(reg, &r, work).await;
    let (digest, manifest) = manifest_by_tag_and_digest(reg, &r, &pushed).await;
    tags_paginated(reg, creds, &r, &manifest, sorted_tag_pages).await;
    pull_back(reg, &r, work, &pushed).await;
    mount_and_catalog(reg, creds, &r, &pushed).await;
    // Delete by digest; then the manifest is unknown, with the registry's code.
    reg.delete_manifest(&r, &Reference::Digest(digest.clone()))
        .await
        .unwrap();
    let err = reg
        .get_manifest(&r, &Reference::Digest(digest), &[])
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.error_code(), Some(ErrorCode::ManifestUnknown), "{err}");
}

/// A subject manifest for referrer tests: an image whose config is the empty JSON blob, pushed
/// under tag `base`. Returns the empty blob's digest, the subject's digest and its size.
pub async fn push_subject(client: &Registry, r: &RepoName) -> (Digest, Digest, usize) {
    let empty = media_types::OCI_EMPTY_JSON;
    let empty_digest = sha256(empty);
    client
        .push_blob(r, &empty_digest, 2, Bytes::from_static(empty).into())
        .await
        .unwrap();
    let subject = image_manifest((&empty_digest, 2), &[]);
    let len = subject.len();
    let subject_digest = client
        .put_manifest(
            r,
            &"base".parse().unwrap(),
            media_types::OCI_MANIFEST,
            Bytes::from(subject),
        )
        .await
        .unwrap();
    (empty_digest, subject_digest, len)
}

/// One artifact manifest per `artifact_types` entry, each with `subject` set to the subject and
/// an annotation `n` = its position; pushed by digest. Returns their digests in push order.
pub async fn push_referrers(
    client: &Registry,
    r: &RepoName,
    empty_digest: &Digest,
    subject: (&Digest, usize),
    artifact_types: &[&str],
) -> Vec<Digest> {
    let mut ids = Vec::new();
    for (i, kind) in artifact_types.iter().enumerate() {
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "artifactType": kind,
            "config": {"mediaType": media_types::OCI_EMPTY, "digest": empty_digest, "size": 2},
            "layers": [{"mediaType": media_types::OCI_EMPTY, "digest": empty_digest, "size": 2}],
            "subject": {"mediaType": media_types::OCI_MANIFEST, "digest": subject.0, "size": subject.1},
            "annotations": {"n": i.to_string()},
        }))
        .unwrap();
        let d = sha256(&body);
        client
            .put_manifest(
                r,
                &Reference::Digest(d.clone()),
                media_types::OCI_MANIFEST,
                Bytes::from(body),
            )
            .await
            .unwrap();
        ids.push(d);
    }
    ids
}
