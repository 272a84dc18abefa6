//! Manifest and index validation (`parse_manifest`).
//!
//! Rules applied, in order:
//! 1. The body must be a JSON object (else `MANIFEST_INVALID`).
//! 2. A schema 1 type (Content-Type or body `mediaType`) or `schemaVersion: 1` → `UNSUPPORTED`.
//! 3. `schemaVersion` must be present and equal to 2.
//! 4. If the Content-Type is one of the four manifest types and the body has a `mediaType`, they
//!    must be equal (parameters ignored). A Content-Type that is not a manifest type (e.g.
//!    `application/json`) is ignored.
//! 5. The kind is taken from the body `mediaType`, else the Content-Type, else inferred from the
//!    shape (`manifests` → OCI index, `config` → OCI manifest). An unknown body `mediaType` →
//!    `MANIFEST_INVALID`. Docker types require `mediaType` in the body (as Docker schema 2 does).
//! 6. Image manifests need `config` and `layers` (may be empty) and must not carry `manifests`;
//!    indexes need `manifests` and must not carry `config` or `layers` (the CVE-2021-41190 rule).
//! 7. Descriptors need a string `mediaType`, a valid `digest` (else `DIGEST_INVALID`) and a
//!    non-negative integer `size`; optional fields must have the right JSON types.
//!
//! Unknown fields are allowed; the caller stores the body byte-for-byte.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::descriptor::{media_types, Descriptor};
use crate::digest::Digest;
use crate::error::{ErrorCode, OciError};

/// The four manifest kinds the registry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`.
    OciIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`.
    DockerManifestList,
}

impl ManifestKind {
    /// The canonical media type of the kind.
    pub fn media_type(&self) -> &'static str {
        match self {
            ManifestKind::OciManifest => media_types::OCI_MANIFEST,
            ManifestKind::OciIndex => media_types::OCI_INDEX,
            ManifestKind::DockerManifest => media_types::DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => media_types::DOCKER_MANIFEST_LIST,
        }
    }

    /// The kind of a media type (parameters ignored, case-insensitive).
    pub fn from_media_type(media_type: &str) -> Option<ManifestKind> {
        let e = media_types::essence(media_type);
        [
            ManifestKind::OciManifest,
            ManifestKind::OciIndex,
            ManifestKind::DockerManifest,
            ManifestKind::DockerManifestList,
        ]
        .into_iter()
        .find(|k| k.media_type().eq_ignore_ascii_case(e))
    }

    /// True for OCI index and Docker manifest list.
    pub fn is_index(&self) -> bool {
        matches!(
            self,
            ManifestKind::OciIndex | ManifestKind::DockerManifestList
        )
    }
}

/// The parts of a validated manifest the registry needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// Which of the four kinds.
    pub kind: ManifestKind,
    /// The effective media type (canonical spelling of `kind`).
    pub media_type: String,
    /// Config descriptor (image manifests).
    pub config: Option<Descriptor>,
    /// Layer descriptors (image manifests).
    pub layers: Vec<Descriptor>,
    /// Child manifest descriptors (indexes).
    pub manifests: Vec<Descriptor>,
    /// `subject` descriptor (OCI kinds).
    pub subject: Option<Descriptor>,
    /// Top-level `artifactType` (OCI kinds).
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ParsedManifest {
    /// Blobs the manifest references: config, then layers.
    pub fn blob_refs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter())
    }

    /// Manifests the index references (empty for image manifests).
    pub fn manifest_refs(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter()
    }

    /// The descriptor a referrers response lists for this manifest, given the manifest's own
    /// digest and size: `mediaType`, `artifactType` (per [`Self::referrer_artifact_type`]) and
    /// the manifest's annotations (omitted when empty).
    pub fn referrer_descriptor(&self, digest: Digest, size: u64) -> Descriptor {
        let mut d = Descriptor::new(self.media_type.clone(), digest, size);
        d.artifact_type = self.referrer_artifact_type().map(str::to_owned);
        if !self.annotations.is_empty() {
            d.annotations = Some(self.annotations.clone());
        }
        d
    }

    /// The `artifactType` a referrers response lists for this manifest: its `artifactType`,
    /// else (image manifests) its config's `mediaType`.
    pub fn referrer_artifact_type(&self) -> Option<&str> {
        match &self.artifact_type {
            Some(a) if !a.is_empty() => Some(a.as_str()),
            _ => self.config.as_ref().map(|c| c.media_type.as_str()),
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> OciError {
    let reason = reason.into();
    let message = if field.is_empty() {
        format!("manifest invalid: {reason}")
    } else {
        format!("manifest invalid: {field}: {reason}")
    };
    OciError::new(ErrorCode::ManifestInvalid, message)
        .with_detail(json!({ "field": field, "reason": reason }))
}

fn opt_string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, OciError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(&join(path, key), "must be a string")),
    }
}

fn opt_string_map(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<BTreeMap<String, String>>, OciError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    _ => {
                        return Err(invalid(
                            &format!("{}.{k}", join(path, key)),
                            "annotation values must be strings",
                        ))
                    }
                }
            }
            Ok(Some(out))
        }
        Some(_) => Err(invalid(&join(path, key), "must be an object")),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_descriptor(v: &Value, path: &str) -> Result<Descriptor, OciError> {
    let Value::Object(obj) = v else {
        return Err(invalid(path, "descriptor must be an object"));
    };
    let media_type = match obj.get("mediaType") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(invalid(&join(path, "mediaType"), "is empty")),
        Some(_) => return Err(invalid(&join(path, "mediaType"), "must be a string")),
        None => return Err(invalid(&join(path, "mediaType"), "is required")),
    };
    let digest: Digest = match obj.get("digest") {
        Some(Value::String(s)) => s.parse().map_err(|e: OciError| {
            OciError::new(
                ErrorCode::DigestInvalid,
                format!("{}: {}", join(path, "digest"), e.message),
            )
            .with_detail(json!({ "field": join(path, "digest"), "reason": e.message }))
        })?,
        Some(_) => return Err(invalid(&join(path, "digest"), "must be a string")),
        None => return Err(invalid(&join(path, "digest"), "is required")),
    };
    let size = match obj.get("size") {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| invalid(&join(path, "size"), "must be a non-negative integer"))?,
        Some(_) => {
            return Err(invalid(
                &join(path, "size"),
                "must be a non-negative integer",
            ))
        }
        None => return Err(invalid(&join(path, "size"), "is required")),
    };
    let urls = match obj.get("urls") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut out = Vec::with_capacity(a.len());
            for (i, u) in a.iter().enumerate() {
                match u {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        return Err(invalid(
                            &format!("{}[{i}]", join(path, "urls")),
                            "must be a string",
                        ))
                    }
                }
            }
            Some(out)
        }
        Some(_) => return Err(invalid(&join(path, "urls"), "must be an array")),
    };
    let platform = match obj.get("platform") {
        None | Some(Value::Null) => None,
        Some(p @ Value::Object(_)) => Some(p.clone()),
        Some(_) => return Err(invalid(&join(path, "platform"), "must be an object")),
    };
    Ok(Descriptor {
        media_type,
        digest,
        size,
        urls,
        annotations: opt_string_map(obj, "annotations", path)?,
        artifact_type: opt_string(obj, "artifactType", path)?,
        platform,
        data: opt_string(obj, "data", path)?,
    })
}

fn parse_descriptor_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<Descriptor>, OciError> {
    match obj.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_descriptor(v, &format!("{key}[{i}]")))
            .collect(),
        Some(_) => Err(invalid(key, "must be an array")),
        None => Err(invalid(key, "is required")),
    }
}

fn determine_kind(
    obj: &Map<String, Value>,
    body_media_type: Option<&str>,
    content_type: Option<&str>,
) -> Result<ManifestKind, OciError> {
    let ct_kind = content_type.and_then(ManifestKind::from_media_type);
    if let Some(mt) = body_media_type {
        let body_kind = ManifestKind::from_media_type(mt).ok_or_else(|| {
            invalid(
                "mediaType",
                format!("unsupported manifest media type {mt:?}"),
            )
        })?;
        if let Some(ct) = ct_kind {
            if ct != body_kind {
                return Err(invalid(
                    "mediaType",
                    format!(
                        "mediaType {mt:?} does not match Content-Type {:?}",
                        ct.media_type()
                    ),
                ));
            }
        }
        return Ok(body_kind);
    }
    let kind = match ct_kind {
        Some(k) => k,
        None if obj.contains_key("manifests") => ManifestKind::OciIndex,
        None if obj.contains_key("config") => ManifestKind::OciManifest,
        None => {
            return Err(invalid(
                "mediaType",
                "cannot determine the manifest type: no mediaType, no manifest Content-Type",
            ))
        }
    };
    if matches!(
        kind,
        ManifestKind::DockerManifest | ManifestKind::DockerManifestList
    ) {
        return Err(invalid("mediaType", "is required for Docker manifests"));
    }
    Ok(kind)
}

/// Validates a manifest body and extracts its references. `content_type` is the request's
/// `Content-Type` header, if any. See the module docs for the exact rules.
pub fn parse_manifest(body: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, OciError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("", format!("body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(invalid("", "body must be a JSON object"));
    };

    let body_media_type = opt_string(&obj, "mediaType", "")?;
    let schema1 = content_type.is_some_and(media_types::is_schema1_media_type)
        || body_media_type
            .as_deref()
            .is_some_and(media_types::is_schema1_media_type)
        || obj.get("schemaVersion").and_then(Value::as_i64) == Some(1);
    if schema1 {
        return Err(OciError::new(
            ErrorCode::Unsupported,
            "Docker schema 1 manifests are not supported",
        ));
    }
    match obj.get("schemaVersion") {
        Some(v) if v.as_i64() == Some(2) => {}
        Some(_) => return Err(invalid("schemaVersion", "must be 2")),
        None => return Err(invalid("schemaVersion", "is required")),
    }

    let kind = determine_kind(&obj, body_media_type.as_deref(), content_type)?;
    let oci = matches!(kind, ManifestKind::OciManifest | ManifestKind::OciIndex);

    let (config, layers, manifests) = if kind.is_index() {
        for key in ["config", "layers"] {
            if obj.contains_key(key) {
                return Err(invalid(key, "not allowed in an index"));
            }
        }
        (None, Vec::new(), parse_descriptor_list(&obj, "manifests")?)
    } else {
        if obj.contains_key("manifests") {
            return Err(invalid("manifests", "not allowed in an image manifest"));
        }
        let config = match obj.get("config") {
            Some(v) => parse_descriptor(v, "config")?,
            None => return Err(invalid("config", "is required")),
        };
        (
            Some(config),
            parse_descriptor_list(&obj, "layers")?,
            Vec::new(),
        )
    };

    let (subject, artifact_type) = if oci {
        let subject = match obj.get("subject") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_descriptor(v, "subject")?),
        };
        (subject, opt_string(&obj, "artifactType", "")?)
    } else {
        (None, None)
    };

    Ok(ParsedManifest {
        kind,
        media_type: kind.media_type().to_owned(),
        config,
        layers,
        manifests,
        subject,
        artifact_type,
        annotations: opt_string_map(&obj, "annotations", "")?.unwrap_or_default(),
    })
}
