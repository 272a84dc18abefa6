//! OCI image layout directories (image-spec `image-layout.md`), as `skopeo` reads and writes
//! them with `oci:DIR:TAG`: an `oci-layout` marker, `index.json` whose manifests carry their tag
//! in the `org.opencontainers.image.ref.name` annotation, and blobs under `blobs/<alg>/<hex>`.
//!
//! Every blob is written through a temporary sibling and renamed into place once complete,
//! and `index.json` is replaced the same way, so a reader never sees a partial file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ocireg_oci::{media_types, Descriptor, Digest};
use serde_json::{json, Value};

use crate::error::ClientError;

/// The annotation that names a manifest of `index.json` (its tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The content of the `oci-layout` marker file.
const LAYOUT_MARKER: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// One OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
    let context = format!("{what} {}", path.display());
    move |e| ClientError::local_io(context, e)
}

/// Writes `bytes` to `path` through a temporary sibling, synced, then renamed into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io("creating a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io("writing", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io("syncing", path))?;
    tmp.persist(path)
        .map_err(|e| ClientError::local_io(format!("writing {}", path.display()), e.error))?;
    Ok(())
}

impl OciLayout {
    /// Opens an existing layout: `root/oci-layout` and `root/index.json` must be there.
    pub fn open(root: &Path) -> Result<OciLayout, ClientError> {
        let marker = root.join("oci-layout");
        let text = fs::read_to_string(&marker).map_err(|e| {
            ClientError::local_io(
                format!(
                    "{} is not an OCI image layout (reading oci-layout)",
                    root.display()
                ),
                e,
            )
        })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ClientError::Invalid(format!("{}: {e}", marker.display())))?;
        if v.get("imageLayoutVersion")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err(ClientError::Invalid(format!(
                "{}: no imageLayoutVersion",
                marker.display()
            )));
        }
        let layout = OciLayout {
            root: root.to_path_buf(),
        };
        layout.index()?;
        Ok(layout)
    }

    /// Opens the layout at `root`, creating the directory, the marker and an empty index when
    /// they are missing (a directory holding other files is refused).
    pub fn create(root: &Path) -> Result<OciLayout, ClientError> {
        if root.join("oci-layout").exists() {
            return OciLayout::open(root);
        }
        if let Ok(mut entries) = fs::read_dir(root) {
            if entries.next().is_some() {
                return Err(ClientError::Invalid(format!(
                    "{} exists, holds other files and is not an OCI image layout",
                    root.display()
                )));
            }
        }
        fs::create_dir_all(root.join("blobs").join("sha256")).map_err(io("creating", root))?;
        write_atomic(&root.join("oci-layout"), LAYOUT_MARKER.as_bytes())?;
        let index =
            json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": []});
        write_atomic(
            &root.join("index.json"),
            &serde_json::to_vec_pretty(&index)?,
        )?;
        Ok(OciLayout {
            root: root.to_path_buf(),
        })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives: `blobs/<alg>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// True when the blob is there with the descriptor's size (its content is verified when
    /// it is read or uploaded).
    pub fn has_blob(&self, d: &Descriptor) -> bool {
        fs::metadata(self.blob_path(&d.digest)).is_ok_and(|m| m.is_file() && m.len() == d.size)
    }

    /// Reads a small blob (a manifest) whole and checks its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, ClientError> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(io("reading", &path))?;
        let actual = Digest::compute(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(ClientError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Writes a small blob (a manifest) after checking its digest.
    pub fn write_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ClientError> {
        let actual = Digest::compute(digest.algorithm(), bytes);
        if &actual != digest {
            return Err(ClientError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let path = self.blob_path(digest);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        write_atomic(&path, bytes)
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> Result<Value, ClientError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io("reading", &path))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Invalid(format!("{}: {e}", path.display())))?;
        if !v.get("manifests").is_some_and(Value::is_array) {
            return Err(ClientError::Invalid(format!(
                "{}: no manifests list",
                path.display()
            )));
        }
        Ok(v)
    }

    /// The manifests `index.json` lists.
    pub fn manifests(&self) -> Result<Vec<Descriptor>, ClientError> {
        let index = self.index()?;
        let list = index.get("manifests").cloned().unwrap_or(Value::Null);
        serde_json::from_value(list)
            .map_err(|e| ClientError::Invalid(format!("{}/index.json: {e}", self.root.display())))
    }

    /// The manifest named `tag` (`org.opencontainers.image.ref.name`); without a tag, the only
    /// manifest of the index.
    pub fn resolve(&self, tag: Option<&str>) -> Result<Descriptor, ClientError> {
        let list = self.manifests()?;
        let shown = self.root.display();
        match tag {
            Some(t) => list
                .into_iter()
                .find(|d| ref_name(d) == Some(t))
                .ok_or_else(|| ClientError::NotInLayout {
                    what: format!("{shown} has no manifest named {t:?}"),
                }),
            None => match list.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(ClientError::NotInLayout {
                    what: format!("{shown} holds no manifest"),
                }),
                _ => Err(ClientError::InvalidOption(format!(
                    "{shown} holds {} manifests; name one as oci:DIR:TAG",
                    list.len()
                ))),
            },
        }
    }

    /// Lists `desc` in `index.json` under `tag` (replacing the entry that had the tag), or
    /// untagged (once per digest) when `tag` is `None`.
    pub fn set_ref(&self, tag: Option<&str>, mut desc: Descriptor) -> Result<(), ClientError> {
        let mut index = self.index()?;
        let mut list = self.manifests()?;
        match tag {
            Some(t) => {
                list.retain(|d| ref_name(d) != Some(t));
                desc.annotations
                    .get_or_insert_with(Default::default)
                    .insert(REF_NAME.to_owned(), t.to_owned());
            }
            None => list.retain(|d| !(d.digest == desc.digest && ref_name(d).is_none())),
        }
        list.push(desc);
        index["manifests"] = serde_json::to_value(&list)?;
        write_atomic(
            &self.root.join("index.json"),
            &serde_json::to_vec_pretty(&index)?,
        )
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// Splits `oci:DIR[:TAG]` (the form `skopeo` takes) into the directory and the tag; `None` when
/// `s` does not start with `oci:`. The directory cannot contain `:`, as in skopeo.
pub fn parse_layout_ref(s: &str) -> Option<(PathBuf, Option<String>)> {
    let rest = s.strip_prefix("oci:")?;
    Some(match rest.split_once(':') {
        Some((dir, tag)) if !tag.is_empty() => (PathBuf::from(dir), Some(tag.to_owned())),
        Some((dir, _)) => (PathBuf::from(dir), None),
        None => (PathBuf::from(rest), None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocireg_oci::Algorithm;

    #[test]
    fn write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lay");
        let l = OciLayout::create(&root).unwrap();
        assert!(root.join("oci-layout").is_file());
        let body = br#"{"schemaVersion":2}"#;
        let d = Digest::compute(Algorithm::Sha256, body);
        l.write_blob(&d, body).unwrap();
        assert!(l.write_blob(&d, b"other").is_err());
        let desc = Descriptor::new(media_types::OCI_MANIFEST, d.clone(), body.len() as u64);
        assert!(l.has_blob(&desc));
        l.set_ref(Some("v1"), desc.clone()).unwrap();
        l.set_ref(Some("v1"), desc.clone()).unwrap();
        l.set_ref(None, desc.clone()).unwrap();
        let again = OciLayout::open(&root).unwrap();
        assert_eq!(again.manifests().unwrap().len(), 2);
        assert_eq!(again.resolve(Some("v1")).unwrap().digest, d);
        assert!(matches!(
            again.resolve(Some("v2")),
            Err(ClientError::NotInLayout { .. })
        ));
        assert!(again.resolve(None).is_err(), "two entries: ambiguous");
        assert_eq!(again.read_blob(&d).unwrap(), body);
        fs::write(again.blob_path(&d), b"tampered").unwrap();
        assert!(matches!(
            again.read_blob(&d),
            Err(ClientError::DigestMismatch { .. })
        ));
        // An index written by another tool keeps its other fields.
        let idx = again.index().unwrap();
        assert_eq!(idx["schemaVersion"], 2);
    }

    #[test]
    fn refuses_what_is_not_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert!(OciLayout::open(dir.path()).is_err());
        fs::write(dir.path().join("x"), b"x").unwrap();
        let err = OciLayout::create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not an OCI image layout"), "{err}");
    }

    #[test]
    fn layout_references() {
        assert_eq!(parse_layout_ref("ns/repo:v1"), None);
        assert_eq!(
            parse_layout_ref("oci:./dir:v1"),
            Some((PathBuf::from("./dir"), Some("v1".to_owned())))
        );
        assert_eq!(
            parse_layout_ref("oci:/abs/dir"),
            Some((PathBuf::from("/abs/dir"), None))
        );
    }
}
