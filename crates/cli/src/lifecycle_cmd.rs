//! `ocireg up|down|status|logs` (the local registry's lifecycle, and a remote registry's status)
//! and `ocireg config render` (the native zot / Distribution config, nothing started).
//!
//! Wiring in main.rs: `mod lifecycle_cmd;`, a variant `#[command(flatten)]
//! Lifecycle(lifecycle_cmd::LifecycleCmd)` calling `lifecycle_cmd::run(cmd, cli.config.as_deref())`;
//! in `config_cmd::ConfigCmd` a variant `Render(crate::lifecycle_cmd::RenderArgs)` calling
//! `crate::lifecycle_cmd::run_render(args, global_config.as_deref())`.
//!
//! Exit codes (the table in `exit.rs`): `up` 0 started or already running, 9 another engine
//! wrote the storage root, 1 other failures; `down` 0; `status` (local) 0 running or answering
//! (also a registry `up` did not start), 1 crashed or not answering, 7 not running; (remote) 0
//! reachable with working TLS and credentials, 6 credentials refused, 8 unreachable or TLS
//! failing; (disabled) 0; `logs` 0, 1 without a log file. An unusable config exits as in
//! `ocireg config`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use ocireg_config as cfg;
use ocireg_deploy::{self as deploy, Engine, LocalPlan, RenderOptions};

use crate::exit::Exit;

mod status;

pub(crate) use status::human_bytes;

/// The lifecycle commands (flattened into the top-level command list).
#[derive(Debug, Subcommand)]
pub enum LifecycleCmd {
    /// Start the local registry in the background (zot, Distribution, or the built-in engine).
    Up(UpArgs),
    /// Stop the local registry (SIGTERM, then SIGKILL after --timeout).
    Down(DownArgs),
    /// Show whether the registry runs (local) or answers (remote).
    Status(StatusArgs),
    /// Print (and follow) the local registry's log file.
    Logs(LogsArgs),
}

/// `ocireg up`
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Seconds to wait for `/v2/` to answer.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    pub wait: u64,
    /// Start this engine for this run, whatever registry.local.binary_path says.
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<EngineArg>,
    /// Start even over a storage root another engine wrote (its content stays on disk, unserved).
    #[arg(long)]
    pub force: bool,
}

/// The engines `up --engine` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The built-in engine (`ocireg serve`).
    Builtin,
    /// zot (its binary on PATH, or registry.local.binary_path with type zot).
    Zot,
    /// CNCF Distribution (`registry` or `docker-registry` on PATH, or binary_path).
    Distribution,
}

impl From<EngineArg> for deploy::EngineId {
    fn from(e: EngineArg) -> Self {
        match e {
            EngineArg::Builtin => deploy::EngineId::Builtin,
            EngineArg::Zot => deploy::EngineId::Zot,
            EngineArg::Distribution => deploy::EngineId::Distribution,
        }
    }
}

/// `ocireg down`
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub timeout: u64,
}

/// `ocireg status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ocireg logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing what is appended (until interrupted).
    #[arg(short, long)]
    pub follow: bool,
    /// Print only the last N lines (default: all; 10 with --follow).
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<usize>,
}

/// `ocireg config render`
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Which registry's native config (default: registry.type).
    #[arg(long = "type", value_enum)]
    pub kind: Option<RenderType>,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The registries `config render` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RenderType {
    /// zot (JSON)
    Zot,
    /// CNCF Distribution 2.8 (YAML)
    Distribution,
}

impl From<RenderType> for deploy::NativeKind {
    fn from(t: RenderType) -> Self {
        match t {
            RenderType::Zot => deploy::NativeKind::Zot,
            RenderType::Distribution => deploy::NativeKind::Distribution,
        }
    }
}

/// Runs a lifecycle command; returns the exit code.
pub fn run(cmd: LifecycleCmd, global_config: Option<&Path>) -> anyhow::Result<i32> {
    with_document(global_config, |doc| match cmd {
        LifecycleCmd::Up(a) => run_up(a, doc),
        LifecycleCmd::Down(a) => run_down(a, doc),
        LifecycleCmd::Status(a) => status::run_status(a, doc),
        LifecycleCmd::Logs(a) => run_logs(a, doc),
    })
}

/// Runs `f` on the document; without one, the error says why (as for every other command) and
/// carries the config error's exit code.
fn with_document(
    global: Option<&Path>,
    f: impl FnOnce(&cfg::Document) -> anyhow::Result<i32>,
) -> anyhow::Result<i32> {
    f(&crate::config_cmd::load_valid_document(global)?)
}

/// The built-in engine: this executable serving the effective document.
fn builtin(doc: &cfg::Document) -> anyhow::Result<deploy::BuiltinEngine> {
    Ok(deploy::BuiltinEngine {
        program: std::env::current_exe().context("locating the ocireg executable")?,
        config_json: cfg::render_document(doc, cfg::OutputFormat::Json)?,
        version: format!("ocireg {}", env!("CARGO_PKG_VERSION")),
    })
}

fn options(doc: &cfg::Document) -> anyhow::Result<deploy::LifecycleOptions> {
    Ok(deploy::LifecycleOptions {
        builtin: Some(builtin(doc)?),
        ..deploy::LifecycleOptions::default()
    })
}

/// For client commands: when the registry is local with `auto_start = true` and not running,
/// start it (saying so on stderr). Does nothing otherwise.
pub fn ensure_running(doc: &cfg::Document) -> anyhow::Result<()> {
    let outcome = deploy::ensure_running(&doc.registry, &RenderOptions::default(), &options(doc)?)
        .context("auto-starting the local registry (registry.local.auto_start)")?;
    if let deploy::EnsureOutcome::Started(s) = outcome {
        for note in &s.notes {
            eprintln!("{note}");
        }
        eprintln!(
            "started the local {} registry (pid {}) at {}",
            s.state.kind,
            s.state.pid,
            url_of(&s.state.probe_url, &s.state.endpoint)
        );
    }
    Ok(())
}

/// `scheme://endpoint` from the probe URL's scheme.
fn url_of(probe_url: &str, endpoint: &str) -> String {
    let scheme = probe_url.split("://").next().unwrap_or("http");
    format!("{scheme}://{endpoint}")
}

pub(crate) fn plan(doc: &cfg::Document) -> Result<LocalPlan, deploy::DeployError> {
    LocalPlan::from_registry(&doc.registry, &RenderOptions::default())
}

fn engine_label(kind: deploy::NativeKind, engine: Option<Engine>) -> String {
    match engine {
        Some(Engine::BuiltIn) => format!("{kind} (built-in engine)"),
        _ => kind.to_string(),
    }
}

/// `ocireg up`.
fn run_up(args: UpArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    let mut opts = options(doc)?;
    opts.start_timeout = Duration::from_secs(args.wait);
    opts.engine = args.engine.map(Into::into);
    opts.force = args.force;
    let kind = opts.engine.and_then(deploy::EngineId::native);
    let result = LocalPlan::from_registry_as(&doc.registry, &RenderOptions::default(), kind)
        .and_then(|p| deploy::up(&p, &opts));
    match result {
        Ok(deploy::UpOutcome::Started(s)) => {
            for note in &s.notes {
                eprintln!("{note}");
            }
            println!(
                "started {} (pid {}) at {}; log: {}",
                engine_label(s.state.kind, Some(s.state.engine)),
                s.state.pid,
                url_of(&s.state.probe_url, &s.state.endpoint),
                s.state.log_file.display()
            );
            Ok(0)
        }
        Ok(deploy::UpOutcome::AlreadyRunning(s)) => {
            let running = match s.engine {
                Engine::BuiltIn => deploy::EngineId::Builtin,
                Engine::Native => deploy::EngineId::of_native(s.kind),
            };
            if let Some(want) = opts.engine.filter(|w| *w != running) {
                eprintln!(
                    "note: --engine {want} not applied: {} already runs (`ocireg down` first)",
                    running.describe()
                );
            }
            println!(
                "already running: {} (pid {}) at {}, started {}",
                engine_label(s.kind, Some(s.engine)),
                s.pid,
                url_of(&s.probe_url, &s.endpoint),
                s.started_at
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(match e {
                deploy::DeployError::EngineConflict { .. } => Exit::Conflict,
                _ => Exit::Failed,
            }
            .code())
        }
    }
}

/// `ocireg down`.
fn run_down(args: DownArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    let mut opts = options(doc)?;
    opts.stop_timeout = Duration::from_secs(args.timeout);
    match plan(doc).and_then(|p| deploy::down(&p, &opts)) {
        Ok(deploy::DownOutcome::NotRunning) => println!("not running"),
        Ok(deploy::DownOutcome::Stale(s)) => println!(
            "not running (pid {} had already exited; removed its pid file)",
            s.pid
        ),
        Ok(deploy::DownOutcome::Stopped { state, forced }) => println!(
            "stopped {} (pid {}{})",
            engine_label(state.kind, Some(state.engine)),
            state.pid,
            if forced {
                ", killed after SIGTERM timed out"
            } else {
                ""
            }
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    }
    Ok(0)
}

/// `ocireg logs`.
fn run_logs(args: LogsArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    let plan = match plan(doc) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let log = match deploy::read_state(&plan.settings.state_file) {
        Ok(Some(s)) => s.log_file,
        _ => plan.settings.view.log_file.clone(),
    };
    if !log.is_file() && !args.follow {
        eprintln!("no log file yet at {}", log.display());
        return Ok(1);
    }
    let n = args.lines.or(if args.follow { Some(10) } else { None });
    let (lines, end) = deploy::tail(&log, n)?;
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if args.follow {
        deploy::follow(&log, end, &mut out, Duration::from_millis(250), &|| true)?;
    }
    Ok(0)
}

/// `ocireg config render`: prints (or writes) the native config; warnings go to stderr.
pub fn run_render(args: RenderArgs, global_config: Option<&Path>) -> anyhow::Result<i32> {
    with_document(global_config, |doc| render(args, doc))
}

fn render(args: RenderArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    let kind = match args.kind {
        Some(k) => k.into(),
        None => match deploy::NativeKind::from_type(doc.registry.r#type) {
            Some(k) => k,
            None => {
                eprintln!(
                    "error: registry.type {:?} has no native config ocireg renders; pass --type zot or --type distribution",
                    doc.registry.r#type.as_str()
                );
                return Ok(2);
            }
        },
    };
    let rendered = match deploy::render(&doc.registry, kind, &RenderOptions::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
    match &args.output {
        Some(path) => std::fs::write(path, &rendered.text)
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{}", rendered.text),
    }
    Ok(0)
}
