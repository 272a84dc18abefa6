//! `status` of a local registry: running or not, crashed, pid, endpoint, engine, version,
//! storage used.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::DeployError;
use crate::identify::{identify, Answering};
use crate::lifecycle::{choose_runner, LifecycleOptions, LocalPlan, Runner};
use crate::owner::{root_owner, RootOwner};
use crate::probe::{self, Answer};
use crate::settings::NativeKind;
use crate::state::{self, Engine};
use crate::{logs, process};

/// Whether the local registry runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Running and answering `/v2/`.
    Running,
    /// Not started (no state file).
    NotRunning,
    /// The state file names a process that is gone: it crashed or was killed.
    Crashed,
    /// The process is alive but `/v2/` does not answer.
    NotAnswering,
    /// A registry answers on the address, but `up` did not start it (no state file).
    #[serde(rename = "answering-not-started-by-up")]
    Foreign,
}

impl RunState {
    /// Human words.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::NotRunning => "not running",
            Self::Crashed => "crashed",
            Self::NotAnswering => "not answering",
            Self::Foreign => "answering; not started by ocireg up",
        }
    }
}

/// Status of a local registry.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LocalStatus {
    /// Running, not running, crashed, not answering.
    pub state: RunState,
    /// Registry type.
    pub kind: NativeKind,
    /// What serves (or would serve) it; `None` when nothing can.
    pub engine: Option<Engine>,
    /// Its executable.
    pub program: Option<PathBuf>,
    /// Its version line.
    pub version: Option<String>,
    /// Process id (from the state file).
    pub pid: Option<i32>,
    /// Client-facing `endpoint:port`.
    pub endpoint: String,
    /// Health URL.
    pub probe_url: String,
    /// `Docker-Distribution-API-Version` of the `/v2/` answer.
    pub api_version: Option<String>,
    /// What answered `/v2/` (whoever started it).
    pub answering: Option<Answering>,
    /// The engine that wrote the storage root.
    pub root_owner: Option<RootOwner>,
    /// Start time (RFC 3339).
    pub started_at: Option<String>,
    /// Storage root.
    pub root_dir: PathBuf,
    /// Bytes under the storage root (`None` when it does not exist).
    pub storage_bytes: Option<u64>,
    /// The log file.
    pub log_file: PathBuf,
    /// The config file the process reads.
    pub config_path: PathBuf,
    /// Last log lines (when crashed or not answering).
    pub log_tail: Vec<String>,
    /// Why no engine is available, or other remarks.
    pub note: Option<String>,
}

/// Total size of the regular files under `dir` (symlinks not followed).
pub fn dir_size(dir: &Path) -> Option<u64> {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                walk(&entry.path(), total);
            } else if meta.is_file() {
                *total += meta.len();
            }
        }
    }
    if !dir.is_dir() {
        return None;
    }
    let mut total = 0;
    walk(dir, &mut total);
    Some(total)
}

/// The local registry's status. The state file is never changed here (a crash stays reported
/// until `up` or `down`).
pub fn local_status(plan: &LocalPlan, opts: &LifecycleOptions) -> Result<LocalStatus, DeployError> {
    let s = &plan.settings;
    let recorded = state::read(&s.state_file)?;
    let mut st = LocalStatus {
        state: RunState::NotRunning,
        kind: s.kind,
        engine: None,
        program: None,
        version: None,
        pid: None,
        endpoint: s.endpoint.clone(),
        probe_url: s.probe_url.clone(),
        api_version: None,
        answering: None,
        root_owner: None,
        started_at: None,
        root_dir: s.root_dir().to_path_buf(),
        storage_bytes: dir_size(s.root_dir()),
        log_file: s.view.log_file.clone(),
        config_path: s.view.config_path.clone(),
        log_tail: Vec::new(),
        note: None,
    };
    let builtin_version = opts.builtin.as_ref().map(|b| b.version.clone());
    match recorded {
        Some(r) => {
            st.pid = Some(r.pid);
            st.engine = Some(r.engine);
            st.started_at = Some(r.started_at.clone());
            st.probe_url = r.probe_url.clone();
            st.root_dir = r.root_dir.clone();
            st.storage_bytes = dir_size(&r.root_dir);
            st.log_file = r.log_file.clone();
            st.config_path = r.config_path.clone();
            st.version = match r.engine {
                Engine::BuiltIn => builtin_version,
                Engine::Native => process::version_of(&r.program, Duration::from_secs(5)),
            };
            st.program = Some(r.program);
            st.state = if !process::is_alive(r.pid, r.proc_start) {
                RunState::Crashed
            } else {
                match probe::probe(&r.probe_url) {
                    Answer::Registry {
                        api_version,
                        server,
                        ..
                    } => {
                        let who = identify(
                            &r.probe_url,
                            s.listen_port(),
                            server.as_deref(),
                            api_version,
                        );
                        st.api_version.clone_from(&who.api_version);
                        if who.version.is_some() {
                            st.version.clone_from(&who.version);
                        }
                        st.answering = Some(who);
                        RunState::Running
                    }
                    Answer::Other(code) => {
                        st.note = Some(format!("{} answered HTTP {code}", r.probe_url));
                        RunState::NotAnswering
                    }
                    Answer::None(why) => {
                        st.note = Some(why);
                        RunState::NotAnswering
                    }
                }
            };
            if st.state != RunState::Running {
                st.log_tail = logs::tail(&st.log_file, Some(20))?.0;
            }
        }
        None => match probe::probe(&s.probe_url) {
            Answer::Registry {
                api_version,
                server,
                ..
            } => {
                let who = identify(
                    &s.probe_url,
                    s.listen_port(),
                    server.as_deref(),
                    api_version,
                );
                st.api_version.clone_from(&who.api_version);
                st.version.clone_from(&who.version);
                st.program.clone_from(&who.program);
                st.answering = Some(who);
                st.state = RunState::Foreign;
            }
            _ => would_start(&mut st, s, opts),
        },
    }
    st.root_owner = root_owner(&st.root_dir);
    Ok(st)
}

/// Without a running registry: what `up` would start.
fn would_start(st: &mut LocalStatus, s: &crate::settings::LocalSettings, opts: &LifecycleOptions) {
    match choose_runner(s, opts) {
        Ok(Runner::Native(bin)) => {
            st.engine = Some(Engine::Native);
            st.version = process::version_of(&bin, Duration::from_secs(5));
            st.program = Some(bin);
        }
        Ok(Runner::BuiltIn(b)) => {
            st.engine = Some(Engine::BuiltIn);
            st.version = Some(b.version);
            st.program = Some(b.program);
        }
        Err(e) => st.note = Some(e.to_string()),
    }
}
