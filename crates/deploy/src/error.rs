//! The one error type of this crate.

use std::path::PathBuf;

/// What can go wrong rendering, starting, stopping or inspecting a registry.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The registry is not a local deployment (`up`/`down` need `deployment = "local"`).
    #[error("registry.deployment is {deployment:?}: only a \"local\" deployment can be started or stopped here")]
    NotLocal {
        /// The configured deployment.
        deployment: String,
    },
    /// Harbor and Artifactory can only be used remote.
    #[error("registry.type {kind:?} is remote-only: ocireg cannot run a local {kind}; use type \"distribution\" or \"zot\", or deployment \"remote\"")]
    RemoteOnly {
        /// The configured type.
        kind: String,
    },
    /// The settings of the config cannot be resolved (the message names the field).
    #[error(transparent)]
    Settings(#[from] ocireg_config::ConfigError),
    /// A setting needed for this operation is missing or unusable.
    #[error("{field}: {message}")]
    Config {
        /// Field path, e.g. `registry.local`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// `binary_path` is set but there is no executable there.
    #[error("registry.local.binary_path {path:?} does not exist or is not executable")]
    BinaryMissing {
        /// The configured path.
        path: PathBuf,
    },
    /// No native binary was found on PATH and no built-in engine is available.
    #[error("no {names} binary found on PATH and no built-in engine available; set registry.local.binary_path")]
    NoEngine {
        /// The names looked for.
        names: String,
    },
    /// `--engine zot|distribution` names a binary that is not on PATH.
    #[error("no {names} binary found on PATH for --engine {engine}; install it or set registry.local.binary_path")]
    NativeNotFound {
        /// The names looked for.
        names: String,
        /// The engine asked for.
        engine: crate::owner::EngineId,
    },
    /// The built-in engine is pinned or asked for but this program cannot run it.
    #[error("the built-in engine is not available here")]
    NoBuiltin,
    /// Another engine wrote the storage root: starting this one would hide its content.
    #[error("storage root {root} was written by {evidence}; {wanted_words} would not see its content, so nothing was started. Start the engine that wrote it with `ocireg up --engine {found}`, or take the root over anyway with `ocireg up --force`", wanted_words = wanted.describe())]
    EngineConflict {
        /// The storage root.
        root: PathBuf,
        /// The engine that wrote it.
        found: crate::owner::EngineId,
        /// How that is known, in words.
        evidence: String,
        /// The engine `up` would have started.
        wanted: crate::owner::EngineId,
    },
    /// The built-in engine cannot serve a setting of this config.
    #[error("the built-in engine cannot serve {what} yet; install the {kind} binary (or set registry.local.binary_path)")]
    BuiltinUnsupported {
        /// The unsupported setting.
        what: String,
        /// The registry type whose binary would serve it.
        kind: String,
    },
    /// Something else already listens on the registry's port.
    #[error("{addr} is already in use by another process (not a registry started by ocireg); nothing was started: stop that process or change registry.local.http_config.listen_port")]
    PortInUse {
        /// The listen address.
        addr: String,
    },
    /// The registry process exited while starting.
    #[error("the registry exited while starting ({status}); last lines of {log}:\n{tail}")]
    ExitedEarly {
        /// Exit status description.
        status: String,
        /// The log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// The registry did not answer `/v2/` in time (it was stopped again).
    #[error("the registry did not answer {url} within {secs} s (stopped it again); last lines of {log}:\n{tail}")]
    StartTimeout {
        /// The probed URL.
        url: String,
        /// The wait, in seconds.
        secs: u64,
        /// The log file.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// A process we started is alive but does not answer `/v2/`.
    #[error("a registry process (pid {pid}) started by ocireg is running but does not answer {url}; run `ocireg down` first")]
    Unhealthy {
        /// Its pid.
        pid: i32,
        /// The probed URL.
        url: String,
    },
    /// A file or process operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The file (or program).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file exists but cannot be understood.
    #[error("state file {path} is corrupt ({message}); remove it if no registry is running")]
    BadState {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
    /// Serializing a native config failed.
    #[error("rendering the {kind} config: {message}")]
    Render {
        /// Native config kind.
        kind: &'static str,
        /// The serializer's message.
        message: String,
    },
    /// Sending a signal failed.
    #[error("signalling pid {pid}: {source}")]
    Signal {
        /// The pid.
        pid: i32,
        /// The OS error.
        source: std::io::Error,
    },
    /// A registry process could not be stopped.
    #[error("pid {pid} is still running after SIGKILL")]
    Unkillable {
        /// The pid.
        pid: i32,
    },
    /// Hashing the htpasswd password failed.
    #[error("hashing the password for {path}: {message}")]
    Htpasswd {
        /// The htpasswd file.
        path: PathBuf,
        /// The hashing error.
        message: String,
    },
}

impl DeployError {
    /// A file operation error.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// A config error at `field`.
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}
