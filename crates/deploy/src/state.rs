//! The state file under `data_dir`: which process `up` started, how, and when.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::DeployError;
use crate::settings::NativeKind;

/// What serves the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Engine {
    /// The registry's own binary (zot, Distribution).
    #[serde(rename = "native")]
    Native,
    /// `ocireg serve`, the built-in engine.
    #[serde(rename = "built-in")]
    BuiltIn,
}

impl Engine {
    /// `native` or `built-in`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::BuiltIn => "built-in",
        }
    }
}

/// The state file's content.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegistryState {
    /// Process id (also its process group id).
    pub pid: i32,
    /// Kernel start time of the process (clock ticks since boot), to detect pid reuse.
    pub proc_start: Option<u64>,
    /// The configured registry type.
    pub kind: NativeKind,
    /// What serves it.
    pub engine: Engine,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Client-facing `endpoint:port`.
    pub endpoint: String,
    /// The health URL (`…/v2/`).
    pub probe_url: String,
    /// Start time, RFC 3339 (UTC).
    pub started_at: String,
    /// Start time, Unix seconds.
    pub started_unix: i64,
    /// The config file the process reads.
    pub config_path: PathBuf,
    /// Where its output goes.
    pub log_file: PathBuf,
    /// Its storage root.
    pub root_dir: PathBuf,
}

/// Reads the state file; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<RegistryState>, DeployError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DeployError::io("reading state file", path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DeployError::BadState {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Writes the state file atomically.
pub(crate) fn write(path: &Path, state: &RegistryState) -> Result<(), DeployError> {
    let mut text = serde_json::to_string_pretty(state).map_err(|e| DeployError::BadState {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes(), None)
}

/// Removes the state file (absent is fine).
pub(crate) fn remove(path: &Path) -> Result<(), DeployError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DeployError::io("removing state file", path, e)),
    }
}

/// Writes `bytes` to a temporary file next to `path`, fsyncs it and renames it over `path`;
/// `mode` sets the permissions (e.g. 0o600) before the content is written.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
) -> Result<(), DeployError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DeployError::io("creating directory", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        if let Some(m) = mode {
            opts.mode(m);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DeployError::io("writing", path, e)
    })
}

/// The current time as (RFC 3339 UTC, Unix seconds).
pub(crate) fn now() -> (String, i64) {
    let t = time::OffsetDateTime::now_utc();
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string());
    (text, t.unix_timestamp())
}
