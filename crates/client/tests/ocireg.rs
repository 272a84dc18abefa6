//! Round trips against the real `ocireg serve` binary (build it first: `cargo build -p ocireg`):
//! blobs, manifests, sorted paginated tags, catalog, mount, the referrers API, deletes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::roundtrip::{full_round_trip, only_referrer_of_type, push_referrers, push_subject};
use common::*;
use ocireg_client::{ClientError, Credentials};
use ocireg_oci::{media_types, Reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip() {
    let reg = start_ocireg();
    let client = reg.client(Credentials::Anonymous, small_chunks());
    let work = tempfile::tempdir().unwrap();
    full_round_trip(&client, &Credentials::Anonymous, work.path(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_api_and_blob_delete() {
    let reg = start_ocireg();
    let client = reg.client(Credentials::Anonymous, fast_options());
    let r = repo("refs");
    let (ed, sd, subject_len) = push_subject(&client, &r).await;
    let mut ids = push_referrers(
        &client,
        &r,
        &ed,
        (&sd, subject_len),
        &[
            "application/vnd.example.sbom",
            "application/vnd.example.sig",
        ],
    )
    .await;
    let mut got: Vec<_> = client
        .referrers(&r, &sd, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.digest)
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    let sbom = only_referrer_of_type(&client, &r, &sd, "application/vnd.example.sbom").await;
    assert_eq!(
        sbom.artifact_type.as_deref(),
        Some("application/vnd.example.sbom")
    );
    // The registry answered OCI-Subject, so no fallback tag was written.
    assert_eq!(client.tags(&r).await.unwrap(), vec!["base"]);

    // A digest reference that does not match the bytes is refused before sending.
    let err = client
        .put_manifest(
            &r,
            &Reference::Digest(ed.clone()),
            media_types::OCI_MANIFEST,
            Bytes::from(image_manifest((&ed, 2), &[])),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::DigestMismatch { .. }), "{err:?}");

    let loose = pseudo_random(1000, 8);
    let ld = sha256(&loose);
    client.push_blob(&r, &ld, 1000, loose.into()).await.unwrap();
    client.delete_blob(&r, &ld).await.unwrap();
    assert!(!client.blob_exists(&r, &ld).await.unwrap());
}
