//! Which engine wrote a storage root. Engines keep incompatible layouts in the same directory
//! (the built-in engine's `repositories/` + `blobs/`, Distribution's `docker/registry/v2/`,
//! zot's one OCI layout per repository), so another engine started over a root sees none of
//! its content. `up` (for whatever it starts) and `ocireg serve` (for the built-in engine)
//! record the engine in a marker file in the root; a root with content but no marker is judged
//! by its layout.

use std::path::Path;

use crate::error::DeployError;
use crate::settings::NativeKind;
use crate::state;

/// The marker file in a storage root (a dot name: no engine lists it as content).
pub const MARKER_FILE: &str = ".ocireg-engine";

/// An engine that can serve a storage root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineId {
    /// `ocireg serve`.
    Builtin,
    /// CNCF Distribution.
    Distribution,
    /// zot.
    Zot,
}

impl EngineId {
    /// `builtin`, `distribution` or `zot` (the values of `ocireg up --engine`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::Distribution => "distribution",
            Self::Zot => "zot",
        }
    }

    /// Words for messages: "the built-in engine", "Distribution", "zot".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Builtin => "the built-in engine",
            Self::Distribution => "Distribution",
            Self::Zot => "zot",
        }
    }

    /// The engine of a native registry kind.
    pub fn of_native(kind: NativeKind) -> Self {
        match kind {
            NativeKind::Distribution => Self::Distribution,
            NativeKind::Zot => Self::Zot,
        }
    }

    /// The native kind this engine runs as (`None` for the built-in engine).
    pub fn native(self) -> Option<NativeKind> {
        match self {
            Self::Builtin => None,
            Self::Distribution => Some(NativeKind::Distribution),
            Self::Zot => Some(NativeKind::Zot),
        }
    }
}

impl std::fmt::Display for EngineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the engine of a root is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// The root's marker file names it.
    Marker,
    /// The root has no marker; its layout is that engine's.
    Layout,
}

/// The engine that wrote a storage root.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RootOwner {
    /// The engine.
    pub engine: EngineId,
    /// How it is known.
    pub evidence: Evidence,
    /// The version the marker records.
    pub version: Option<String>,
}

impl RootOwner {
    /// "the built-in engine (marker .ocireg-engine)" / "Distribution (its layout)".
    pub fn describe(&self) -> String {
        match self.evidence {
            Evidence::Marker => format!("{} (marker {MARKER_FILE})", self.engine.describe()),
            Evidence::Layout => format!("{} (its storage layout)", self.engine.describe()),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    engine: EngineId,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    written_at: Option<String>,
}

/// The engine that wrote `root`: its marker, else its layout; `None` for a root that does not
/// exist, is empty, or whose layout no engine claims. A marker that does not parse counts as
/// absent.
pub fn root_owner(root: &Path) -> Option<RootOwner> {
    if let Some(m) = std::fs::read(root.join(MARKER_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
    {
        return Some(RootOwner {
            engine: m.engine,
            evidence: Evidence::Marker,
            version: m.version,
        });
    }
    layout_of(root).map(|engine| RootOwner {
        engine,
        evidence: Evidence::Layout,
        version: None,
    })
}

/// The engine whose layout `root` holds.
fn layout_of(root: &Path) -> Option<EngineId> {
    if root.join("docker/registry/v2").is_dir() {
        return Some(EngineId::Distribution);
    }
    let builtin = ["repositories", "blobs"]
        .iter()
        .any(|d| root.join(d).is_dir() && !root.join(d).join("oci-layout").is_file())
        || root.join(".journal").is_file();
    if builtin {
        return Some(EngineId::Builtin);
    }
    has_oci_layout(root, 3).then_some(EngineId::Zot)
}

/// True when a directory within `depth` levels below `dir` is an OCI image layout (zot keeps
/// each repository as one; repository names may have several components).
fn has_oci_layout(dir: &Path, depth: usize) -> bool {
    if depth == 0 {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        e.file_type().is_ok_and(|t| t.is_dir())
            && (p.join("oci-layout").is_file() || has_oci_layout(&p, depth - 1))
    })
}

/// Records `engine` as the writer of `root` (creating the root).
pub fn write_marker(
    root: &Path,
    engine: EngineId,
    version: Option<&str>,
) -> Result<(), DeployError> {
    let marker = Marker {
        engine,
        version: version.map(str::to_owned),
        written_at: Some(state::now().0),
    };
    let mut text = serde_json::to_string_pretty(&marker).map_err(|e| DeployError::BadState {
        path: root.join(MARKER_FILE),
        message: e.to_string(),
    })?;
    text.push('\n');
    state::write_atomic(&root.join(MARKER_FILE), text.as_bytes(), None)
}

/// For `ocireg serve`: records the built-in engine as the writer of `root` unless the root
/// names another engine; returns that other owner (the caller warns) or `None`.
pub fn claim_for_builtin(root: &Path, version: &str) -> Result<Option<RootOwner>, DeployError> {
    match root_owner(root) {
        Some(o) if o.engine != EngineId::Builtin => Ok(Some(o)),
        Some(o) if o.evidence == Evidence::Marker => Ok(None),
        _ => write_marker(root, EngineId::Builtin, Some(version)).map(|()| None),
    }
}

/// Before `up` starts `wanted` over `root`: refuses when another engine wrote it, unless
/// `force` (then returns a note saying what was taken over).
pub(crate) fn check(
    root: &Path,
    wanted: EngineId,
    force: bool,
) -> Result<Option<String>, DeployError> {
    let Some(owner) = root_owner(root) else {
        return Ok(None);
    };
    if owner.engine == wanted {
        return Ok(None);
    }
    if force {
        return Ok(Some(format!(
            "warning: --force: starting {} over {}, which {} wrote; its content stays on disk but {} does not serve it",
            wanted.describe(),
            root.display(),
            owner.describe(),
            wanted.describe()
        )));
    }
    Err(DeployError::EngineConflict {
        root: root.to_path_buf(),
        found: owner.engine,
        evidence: owner.describe(),
        wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_name_their_engine() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        assert_eq!(root_owner(&root.join("absent")), None);
        assert_eq!(root_owner(root), None);
        std::fs::create_dir_all(root.join("team/app")).unwrap();
        std::fs::write(root.join("team/app/oci-layout"), "{}").unwrap();
        assert_eq!(root_owner(root).unwrap().engine, EngineId::Zot);
        std::fs::create_dir_all(root.join("repositories")).unwrap();
        assert_eq!(root_owner(root).unwrap().engine, EngineId::Builtin);
        std::fs::create_dir_all(root.join("docker/registry/v2")).unwrap();
        let o = root_owner(root).unwrap();
        assert_eq!(
            (o.engine, o.evidence),
            (EngineId::Distribution, Evidence::Layout)
        );
    }

    #[test]
    fn the_marker_wins_and_conflicts_are_refused_unless_forced() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("storage");
        std::fs::create_dir_all(root.join("docker/registry/v2")).unwrap();
        write_marker(&root, EngineId::Builtin, Some("ocireg 0.1.0")).unwrap();
        let o = root_owner(&root).unwrap();
        assert_eq!(
            (o.engine, o.evidence),
            (EngineId::Builtin, Evidence::Marker)
        );
        assert_eq!(o.version.as_deref(), Some("ocireg 0.1.0"));
        assert!(check(&root, EngineId::Builtin, false).unwrap().is_none());
        let err = check(&root, EngineId::Distribution, false).unwrap_err();
        assert!(matches!(err, DeployError::EngineConflict { .. }), "{err}");
        let note = check(&root, EngineId::Distribution, true).unwrap().unwrap();
        assert!(note.contains("--force"), "{note}");
        // serve keeps another engine's marker and reports it.
        write_marker(&root, EngineId::Zot, None).unwrap();
        let other = claim_for_builtin(&root, "ocireg 0.1.0").unwrap().unwrap();
        assert_eq!(other.engine, EngineId::Zot);
        let fresh = d.path().join("fresh");
        assert!(claim_for_builtin(&fresh, "ocireg 0.1.0").unwrap().is_none());
        assert_eq!(root_owner(&fresh).unwrap().engine, EngineId::Builtin);
    }
}
