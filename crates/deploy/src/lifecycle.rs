//! `up`, `down` and `ensure_running` for a local registry.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ocireg_config::{Deployment, EngineBinary, OCIRegistryConfig};

use crate::error::DeployError;
use crate::owner::{self, EngineId};
use crate::probe::{self, Ready};
use crate::render::{render_settings, Rendered, Warnings};
use crate::settings::{
    find_on_path, is_executable, resolve, LocalSettings, NativeKind, RenderOptions,
};
use crate::state::{self, Engine, RegistryState};
use crate::{htpasswd, logs, process};

/// A local registry ready to be managed: its settings and its rendered native config.
#[derive(Clone, Debug)]
pub struct LocalPlan {
    /// Resolved settings.
    pub settings: LocalSettings,
    /// The native config `up` writes to `config_path` (with its warnings).
    pub native: Rendered,
}

impl LocalPlan {
    /// Resolves a local deployment. Errors for another deployment, for Harbor/Artifactory, and
    /// for settings a local registry cannot honour.
    pub fn from_registry(
        reg: &OCIRegistryConfig,
        opts: &RenderOptions,
    ) -> Result<Self, DeployError> {
        Self::from_registry_as(reg, opts, None)
    }

    /// As [`LocalPlan::from_registry`], rendered for `kind` instead of `registry.type` when
    /// given (`ocireg up --engine zot` on a Distribution config).
    pub fn from_registry_as(
        reg: &OCIRegistryConfig,
        opts: &RenderOptions,
        kind: Option<NativeKind>,
    ) -> Result<Self, DeployError> {
        if reg.deployment != Deployment::Local {
            return Err(DeployError::NotLocal {
                deployment: reg.deployment.as_str().to_string(),
            });
        }
        let configured =
            NativeKind::from_type(reg.r#type).ok_or_else(|| DeployError::RemoteOnly {
                kind: reg.r#type.as_str().to_string(),
            })?;
        let kind = kind.unwrap_or(configured);
        if reg.local.is_none() {
            return Err(DeployError::config(
                "registry.local",
                "required for a local deployment",
            ));
        }
        let mut warnings = Warnings::default();
        let settings = resolve(reg, kind, opts, &mut warnings.0)?;
        if settings.auth_without_user {
            return Err(DeployError::config(
                "registry.auth_required",
                "a local registry serves htpasswd (Basic) auth, which needs registry.username and registry.password_path",
            ));
        }
        if reg.tls_enabled && settings.view.tls.is_none() {
            return Err(DeployError::config(
                "registry.tls_enabled",
                "a local registry needs tls_cert_path and tls_key_path",
            ));
        }
        let native = render_settings(reg, &settings, warnings)?;
        Ok(Self { settings, native })
    }
}

/// The built-in engine: `program --config <file> serve --listen ADDR --root DIR`.
#[derive(Clone, Debug)]
pub struct BuiltinEngine {
    /// The `ocireg` executable.
    pub program: PathBuf,
    /// The effective config document it serves (JSON), written under `data_dir`.
    pub config_json: String,
    /// Its version, for `status`.
    pub version: String,
}

/// Options of `up`, `down`, `status` and `ensure_running`.
#[derive(Clone, Debug)]
pub struct LifecycleOptions {
    /// The built-in engine, used when `binary_path` is `builtin`, or unset and no native
    /// binary is found.
    pub builtin: Option<BuiltinEngine>,
    /// Start this engine whatever `binary_path` says (`ocireg up --engine`).
    pub engine: Option<EngineId>,
    /// Start even over a storage root another engine wrote (`ocireg up --force`).
    pub force: bool,
    /// `$PATH` to look for native binaries in.
    pub path_var: Option<OsString>,
    /// How long `up` waits for `/v2/` to answer.
    pub start_timeout: Duration,
    /// How long `down` waits after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        Self {
            builtin: None,
            engine: None,
            force: false,
            path_var: std::env::var_os("PATH"),
            start_timeout: Duration::from_secs(20),
            stop_timeout: Duration::from_secs(15),
        }
    }
}

/// What would serve the registry.
#[derive(Clone, Debug)]
pub enum Runner {
    /// The native binary at this path.
    Native(PathBuf),
    /// The built-in engine.
    BuiltIn(BuiltinEngine),
}

impl Runner {
    /// The engine this runner starts for a registry of `kind`.
    pub fn engine(&self, kind: NativeKind) -> EngineId {
        match self {
            Self::Native(_) => EngineId::of_native(kind),
            Self::BuiltIn(_) => EngineId::Builtin,
        }
    }
}

/// Picks the engine: `--engine` (the kind's `binary_path`, else its names on PATH), else
/// `binary_path` (`builtin`, or a path that must exist), else the type's usual names on PATH,
/// else the built-in engine.
pub fn choose_runner(s: &LocalSettings, opts: &LifecycleOptions) -> Result<Runner, DeployError> {
    let builtin = || {
        opts.builtin
            .clone()
            .map(Runner::BuiltIn)
            .ok_or(DeployError::NoBuiltin)
    };
    let native = |path: &PathBuf| {
        if is_executable(path) {
            Ok(Runner::Native(path.clone()))
        } else {
            Err(DeployError::BinaryMissing { path: path.clone() })
        }
    };
    if let Some(engine) = opts.engine {
        let Some(kind) = engine.native() else {
            return builtin();
        };
        if kind != s.kind {
            return Err(DeployError::config(
                "registry.type",
                format!(
                    "--engine {engine} needs a plan rendered for {kind}, not {}",
                    s.kind
                ),
            ));
        }
        if let EngineBinary::Path(path) = &s.view.binary {
            return native(path);
        }
        return find_on_path(kind.binary_names(), opts.path_var.as_deref())
            .map(Runner::Native)
            .ok_or(DeployError::NativeNotFound {
                names: kind.binary_names().join(" or "),
                engine,
            });
    }
    match &s.view.binary {
        EngineBinary::Builtin => return builtin(),
        EngineBinary::Path(path) => return native(path),
        EngineBinary::Search => {}
    }
    if let Some(found) = find_on_path(s.kind.binary_names(), opts.path_var.as_deref()) {
        return Ok(Runner::Native(found));
    }
    match &opts.builtin {
        Some(b) => Ok(Runner::BuiltIn(b.clone())),
        None => Err(DeployError::NoEngine {
            names: s.kind.binary_names().join(" or "),
        }),
    }
}

/// A registry `up` started.
#[derive(Clone, Debug)]
pub struct Started {
    /// The recorded state.
    pub state: RegistryState,
    /// One-line notes for the user (stale pid file, built-in fallback, config warnings).
    pub notes: Vec<String>,
}

/// How `up` ended.
#[derive(Clone, Debug)]
pub enum UpOutcome {
    /// Started and answering.
    Started(Started),
    /// A registry started earlier is running and answering; nothing was done.
    AlreadyRunning(RegistryState),
}

/// Holds `<data_dir>/registry.lock` exclusively, so concurrent `up`s do not race.
struct Lock(#[allow(dead_code)] std::fs::File);

fn lock(data_dir: &Path) -> Result<Lock, DeployError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| DeployError::io("creating directory", data_dir, e))?;
    let path = data_dir.join("registry.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| DeployError::io("opening lock file", &path, e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| DeployError::io("locking", &path, e.into()))?;
    Ok(Lock(file))
}

fn mkdir(dir: &Path) -> Result<(), DeployError> {
    std::fs::create_dir_all(dir).map_err(|e| DeployError::io("creating directory", dir, e))
}

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or_else(|| Path::new("."))
}

/// Fails with [`DeployError::PortInUse`] when something else listens on the listen address.
fn check_port_free(s: &LocalSettings) -> Result<(), DeployError> {
    let addr = s.listen_addr();
    match TcpListener::bind(addr.as_str()) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(DeployError::PortInUse { addr }),
        Err(e) => Err(DeployError::config(
            "registry.local.http_config.listen_address",
            format!("cannot listen on {addr}: {e}"),
        )),
    }
}

fn log_tail(log: &Path) -> String {
    logs::tail(log, Some(20))
        .map(|(lines, _)| lines.join("\n"))
        .unwrap_or_default()
}

/// Starts the registry in the background and waits until `/v2/` answers. Running and
/// answering already: [`UpOutcome::AlreadyRunning`]. A stale state file (process gone) is
/// removed with a note. Nothing is started when the port is taken by another process.
pub fn up(plan: &LocalPlan, opts: &LifecycleOptions) -> Result<UpOutcome, DeployError> {
    let s = &plan.settings;
    let _lock = lock(&s.view.data_dir)?;
    let mut notes = Vec::new();
    if let Some(running) = previous_run(s, &mut notes)? {
        return Ok(UpOutcome::AlreadyRunning(running));
    }
    let runner = choose_runner(s, opts)?;
    // Authentication is served by the built-in engine itself (`ocireg serve` reads the same
    // document: the seed's single user, or registry.local.auth_config). TLS is not yet wired
    // through the fallback's readiness probe.
    if matches!(runner, Runner::BuiltIn(_)) && s.view.tls.is_some() {
        return Err(DeployError::BuiltinUnsupported {
            what: "TLS (registry.tls_enabled)".into(),
            kind: s.kind.to_string(),
        });
    }
    let engine = runner.engine(s.kind);
    notes.extend(owner::check(s.root_dir(), engine, opts.force)?);
    check_port_free(s)?;
    for dir in [
        s.view.data_dir.as_path(),
        s.root_dir(),
        parent(&s.view.log_file),
        parent(&s.view.config_path),
    ] {
        mkdir(dir)?;
    }
    let version = match &runner {
        Runner::BuiltIn(b) => Some(b.version.clone()),
        Runner::Native(_) => None,
    };
    if matches!(runner, Runner::BuiltIn(_))
        && opts.engine.is_none()
        && s.view.binary == EngineBinary::Search
    {
        notes.push(format!(
            "no {} binary found on PATH: serving with the built-in engine instead",
            s.kind.binary_names().join("/")
        ));
    }
    let launch = prepare_launch(plan, runner, &mut notes)?;
    owner::write_marker(s.root_dir(), engine, version.as_deref())?;
    start(s, launch, opts, notes)
}

/// The state a previous `up` left: `Some` when that registry runs and answers; a stale file
/// (process gone) is removed with a note; a running process that does not answer is an error.
fn previous_run(
    s: &LocalSettings,
    notes: &mut Vec<String>,
) -> Result<Option<RegistryState>, DeployError> {
    let Some(old) = state::read(&s.state_file)? else {
        return Ok(None);
    };
    if process::is_alive(old.pid, old.proc_start) {
        return if probe::probe(&old.probe_url).is_registry() {
            Ok(Some(old))
        } else {
            Err(DeployError::Unhealthy {
                pid: old.pid,
                url: old.probe_url,
            })
        };
    }
    state::remove(&s.state_file)?;
    notes.push(format!(
        "removed a stale pid file: pid {} (started {}) is no longer running",
        old.pid, old.started_at
    ));
    Ok(None)
}

/// What `up` runs: the engine, its program and arguments, and the config file it reads.
struct Launch {
    engine: Engine,
    program: PathBuf,
    args: Vec<OsString>,
    config_path: PathBuf,
}

/// Writes the config the runner reads (and the htpasswd file of a native registry).
fn prepare_launch(
    plan: &LocalPlan,
    runner: Runner,
    notes: &mut Vec<String>,
) -> Result<Launch, DeployError> {
    let s = &plan.settings;
    match runner {
        Runner::Native(program) => {
            state::write_atomic(
                &s.view.config_path,
                plan.native.text.as_bytes(),
                Some(0o600),
            )?;
            if let Some(auth) = &s.auth {
                notes.extend(htpasswd::prepare(auth)?);
            }
            notes.extend(plan.native.warnings.iter().map(|w| format!("warning: {w}")));
            Ok(Launch {
                engine: Engine::Native,
                program,
                args: vec![
                    OsString::from("serve"),
                    s.view.config_path.clone().into_os_string(),
                ],
                config_path: s.view.config_path.clone(),
            })
        }
        Runner::BuiltIn(b) => {
            let config = s.view.data_dir.join("builtin-config.json");
            state::write_atomic(&config, b.config_json.as_bytes(), Some(0o600))?;
            let args = [
                "--config".into(),
                config.clone().into_os_string(),
                "serve".into(),
                "--listen".into(),
                s.listen_addr().into(),
                "--root".into(),
                s.root_dir().as_os_str().to_owned(),
            ]
            .to_vec();
            Ok(Launch {
                engine: Engine::BuiltIn,
                program: b.program,
                args,
                config_path: config,
            })
        }
    }
}

/// Spawns the launch, records its state and waits for `/v2/` to answer.
fn start(
    s: &LocalSettings,
    launch: Launch,
    opts: &LifecycleOptions,
    notes: Vec<String>,
) -> Result<UpOutcome, DeployError> {
    let Launch {
        engine,
        program,
        args,
        config_path,
    } = launch;
    let (started_at, started_unix) = state::now();
    append_log_marker(
        &s.view.log_file,
        &format!("ocireg up: starting {} at {started_at}", program.display()),
    );
    let mut child = process::spawn_detached(&program, &args, &s.view.log_file, &s.view.data_dir)?;
    let pid = i32::try_from(child.id()).unwrap_or(-1);
    let record = RegistryState {
        pid,
        proc_start: process::start_ticks(pid),
        kind: s.kind,
        engine,
        program,
        args: args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        endpoint: s.endpoint.clone(),
        probe_url: s.probe_url.clone(),
        started_at,
        started_unix,
        config_path,
        log_file: s.view.log_file.clone(),
        root_dir: s.root_dir().to_path_buf(),
    };
    if let Err(e) = state::write(&s.state_file, &record) {
        let _ = process::signal(pid, rustix::process::Signal::KILL);
        let _ = child.wait();
        return Err(e);
    }
    match probe::wait_ready(&s.probe_url, &mut child, opts.start_timeout) {
        Ready::Yes => Ok(UpOutcome::Started(Started {
            state: record,
            notes,
        })),
        Ready::Exited(status) => {
            state::remove(&s.state_file)?;
            Err(DeployError::ExitedEarly {
                status,
                log: s.view.log_file.clone(),
                tail: log_tail(&s.view.log_file),
            })
        }
        Ready::Timeout => {
            let _ = process::terminate(pid, record.proc_start, Duration::from_secs(5));
            let _ = child.wait();
            state::remove(&s.state_file)?;
            Err(DeployError::StartTimeout {
                url: s.probe_url.clone(),
                secs: opts.start_timeout.as_secs(),
                log: s.view.log_file.clone(),
                tail: log_tail(&s.view.log_file),
            })
        }
    }
}

fn append_log_marker(log: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "--- {text} ---");
    }
}

/// How `down` ended.
#[derive(Clone, Debug)]
pub enum DownOutcome {
    /// No state file: nothing was running.
    NotRunning,
    /// The state file named a process that was already gone; the file was removed.
    Stale(RegistryState),
    /// Stopped (`forced`: SIGKILL was needed).
    Stopped {
        /// What was running.
        state: RegistryState,
        /// SIGTERM was not enough.
        forced: bool,
    },
}

/// Stops the registry `up` started: SIGTERM to its process group, a bounded wait, then
/// SIGKILL; removes the state file.
pub fn down(plan: &LocalPlan, opts: &LifecycleOptions) -> Result<DownOutcome, DeployError> {
    let s = &plan.settings;
    let _lock = lock(&s.view.data_dir)?;
    let Some(st) = state::read(&s.state_file)? else {
        return Ok(DownOutcome::NotRunning);
    };
    if !process::is_alive(st.pid, st.proc_start) {
        state::remove(&s.state_file)?;
        return Ok(DownOutcome::Stale(st));
    }
    let forced = process::terminate(st.pid, st.proc_start, opts.stop_timeout)?;
    state::remove(&s.state_file)?;
    Ok(DownOutcome::Stopped { state: st, forced })
}

/// What `ensure_running` did.
#[derive(Clone, Debug)]
pub enum EnsureOutcome {
    /// Not a local deployment: nothing to start.
    NotLocal,
    /// `local.auto_start` is false: nothing was checked or started.
    AutoStartOff,
    /// It was running already.
    AlreadyRunning(RegistryState),
    /// It was started now.
    Started(Started),
}

/// For client commands: when the registry is local with `auto_start = true` and not running,
/// start it (as `up` does).
pub fn ensure_running(
    reg: &OCIRegistryConfig,
    render: &RenderOptions,
    opts: &LifecycleOptions,
) -> Result<EnsureOutcome, DeployError> {
    if reg.deployment != Deployment::Local {
        return Ok(EnsureOutcome::NotLocal);
    }
    if !reg.local.as_ref().is_some_and(|l| l.auto_start) {
        return Ok(EnsureOutcome::AutoStartOff);
    }
    let plan = LocalPlan::from_registry(reg, render)?;
    Ok(match up(&plan, opts)? {
        UpOutcome::Started(s) => EnsureOutcome::Started(s),
        UpOutcome::AlreadyRunning(s) => EnsureOutcome::AlreadyRunning(s),
    })
}

#[cfg(test)]
mod tests;
