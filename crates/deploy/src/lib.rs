//! Local registry lifecycle for ocireg: render zot's and CNCF Distribution's native configs from
//! the seed's `OCIRegistryConfig`, start the registry in the background (or the built-in engine
//! when the binary is missing), stop it, report its status (and a remote registry's), and read
//! its log.
//!
//! ```no_run
//! # fn demo(reg: &ocireg_config::OCIRegistryConfig) -> Result<(), ocireg_deploy::DeployError> {
//! use ocireg_deploy::{up, LifecycleOptions, LocalPlan, RenderOptions, UpOutcome};
//! let plan = LocalPlan::from_registry(reg, &RenderOptions::default())?;
//! match up(&plan, &LifecycleOptions::default())? {
//!     UpOutcome::Started(s) => println!("started pid {}", s.state.pid),
//!     UpOutcome::AlreadyRunning(s) => println!("already running (pid {})", s.pid),
//! }
//! # Ok(()) }
//! ```

mod error;
mod htpasswd;
mod identify;
mod lifecycle;
mod logs;
mod owner;
mod probe;
mod process;
mod remote;
mod render;
mod settings;
mod state;
mod status;

pub use error::DeployError;
pub use htpasswd::{read_secret, write_htpasswd};
pub use identify::Answering;
pub use lifecycle::{
    choose_runner, down, ensure_running, up, BuiltinEngine, DownOutcome, EnsureOutcome,
    LifecycleOptions, LocalPlan, Runner, Started, UpOutcome,
};
pub use logs::{follow, tail};
pub use owner::{
    claim_for_builtin, root_owner, write_marker, EngineId, Evidence, RootOwner, MARKER_FILE,
};
pub use process::is_alive;
pub use remote::{check_remote, CredentialCheck, RemoteCheckOptions, RemoteStatus, TlsCheck};
pub use render::{go_duration, render, Rendered};
pub use settings::{
    find_on_path, resolve, AuthSettings, LocalSettings, NativeKind, RenderOptions, TlsFiles,
};
pub use state::{read as read_state, Engine, RegistryState};
pub use status::{dir_size, local_status, LocalStatus, RunState};
