//! `manifest`: manifest and index validation (`parse_manifest`).

use ocireg_oci::{
    media_types as mt, parse_manifest, Algorithm, Descriptor, Digest, ErrorCode, ManifestKind,
    ParsedManifest,
};
use serde_json::Value;

/// `Content-Type` headers each input is parsed with.
const CONTENT_TYPES: [Option<&str>; 7] = [
    None,
    Some(mt::OCI_MANIFEST),
    Some(mt::OCI_INDEX),
    Some(mt::DOCKER_MANIFEST),
    Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
    Some(mt::DOCKER_SCHEMA1_SIGNED),
    Some("application/json"),
];

fn check_descriptor(d: &Descriptor) {
    assert!(!d.media_type.is_empty());
    assert_eq!(d.digest.hex().len(), d.digest.algorithm().hex_len());
    assert_eq!(
        d.digest.to_string().parse::<Digest>().as_ref(),
        Ok(&d.digest)
    );
    // A descriptor serialises and deserialises to itself.
    let json = serde_json::to_vec(d).unwrap_or_default();
    assert_eq!(
        serde_json::from_slice::<Descriptor>(&json).ok().as_ref(),
        Some(d)
    );
}

fn check_parsed(body: &[u8], ct: Option<&str>, m: &ParsedManifest) {
    assert_eq!(m.media_type, m.kind.media_type());
    assert_eq!(ManifestKind::from_media_type(&m.media_type), Some(m.kind));
    if m.kind.is_index() {
        assert!(m.config.is_none() && m.layers.is_empty(), "{m:?}");
    } else {
        assert!(m.config.is_some() && m.manifests.is_empty(), "{m:?}");
    }
    if !matches!(m.kind, ManifestKind::OciManifest | ManifestKind::OciIndex) {
        assert!(m.subject.is_none() && m.artifact_type.is_none(), "{m:?}");
    }
    if let Some(ct) = ct.and_then(ManifestKind::from_media_type) {
        assert_eq!(ct, m.kind, "Content-Type {ct:?} but kind {:?}", m.kind);
    }
    for d in m.blob_refs().chain(m.manifest_refs()).chain(&m.subject) {
        check_descriptor(d);
    }
    let own = Digest::compute(Algorithm::Sha256, body);
    let rd = m.referrer_descriptor(own.clone(), body.len() as u64);
    assert_eq!(rd.digest, own);
    assert_eq!(rd.media_type, m.media_type);
    assert_eq!(rd.artifact_type.as_deref(), m.referrer_artifact_type());
    check_descriptor(&rd);
}

/// Parses the input as a manifest body under several `Content-Type`s: no panic; on success
/// the result is self-consistent (kind vs. fields, valid descriptor digests, descriptors
/// round-trip through serde), does not depend on JSON formatting (re-serialising the body
/// gives the same result), and naming the detected kind as `Content-Type` changes nothing.
/// Errors use the manifest error codes.
pub fn manifest(data: &[u8]) {
    let reserialised = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| serde_json::to_vec(&v).ok());
    for ct in CONTENT_TYPES {
        let result = parse_manifest(data, ct);
        match &result {
            Ok(m) => {
                check_parsed(data, ct, m);
                let named = parse_manifest(data, Some(m.kind.media_type()));
                assert_eq!(named.as_ref(), Ok(m), "Content-Type {ct:?} vs. its kind");
            }
            Err(e) => assert!(
                matches!(
                    e.code,
                    ErrorCode::ManifestInvalid | ErrorCode::DigestInvalid | ErrorCode::Unsupported
                ),
                "unexpected error code {:?}",
                e.code
            ),
        }
        if let Some(body) = &reserialised {
            let again = parse_manifest(body, ct);
            assert_eq!(
                again.as_ref().map_err(|e| e.code),
                result.as_ref().map_err(|e| e.code),
                "re-serialised body parses differently (Content-Type {ct:?})"
            );
        }
    }
}
