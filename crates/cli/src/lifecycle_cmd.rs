//! `ocireg up|down|status|logs` (the local registry's lifecycle, and a remote registry's status)
//! and `ocireg config render` (the native zot / Distribution config, nothing started).
//!
//! Wiring in main.rs: `mod lifecycle_cmd;`, a variant `#[command(flatten)]
//! Lifecycle(lifecycle_cmd::LifecycleCmd)` calling `lifecycle_cmd::run(cmd, cli.config.as_deref())`;
//! in `config_cmd::ConfigCmd` a variant `Render(crate::lifecycle_cmd::RenderArgs)` calling
//! `crate::lifecycle_cmd::run_render(args, global_config.as_deref())`.
//!
//! Exit codes: `up` 0 started or already running, 1 failed; `down` 0; `status` (local) 0
//! running, 1 crashed or not answering, 3 not running; (remote) 0 reachable with working TLS and
//! credentials, 1 otherwise; (disabled) 0; `logs` 0, 1 without a log file. An unusable config
//! exits 1 (invalid) or 2 (unreadable), as in `ocireg config`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use ocireg_config::{self as cfg, Deployment};
use ocireg_deploy::{self as deploy, Engine, LocalPlan, RenderOptions, RunState};
use serde_json::json;

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
        LifecycleCmd::Status(a) => run_status(a, doc),
        LifecycleCmd::Logs(a) => run_logs(a, doc),
    })
}

/// Runs `f` on the document; without one, reports why and returns the config error's exit code.
fn with_document(
    global: Option<&Path>,
    f: impl FnOnce(&cfg::Document) -> anyhow::Result<i32>,
) -> anyhow::Result<i32> {
    match crate::config_cmd::load_document(global) {
        Ok(doc) => f(&doc),
        Err(e) => {
            eprintln!("error: invalid config:\n{e}");
            Ok(crate::config_cmd::exit_code(&e))
        }
    }
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
    let result = plan(doc).and_then(|p| deploy::up(&p, &opts));
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
            Ok(1)
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

/// `ocireg status`.
fn run_status(args: StatusArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    let reg = &doc.registry;
    match reg.deployment {
        Deployment::Disabled => {
            if args.json {
                println!("{}", json!({"deployment": "disabled"}));
            } else {
                println!("registry: disabled (registry.deployment = \"disabled\")");
            }
            Ok(0)
        }
        Deployment::Remote => {
            let check =
                match deploy::RemoteCheckOptions::from_registry(reg, &RenderOptions::default()) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(1);
                    }
                };
            let st = deploy::check_remote(&check);
            let ok = st.reachable
                && !matches!(st.tls, deploy::TlsCheck::Failed { .. })
                && !matches!(st.credentials, deploy::CredentialCheck::Rejected { .. });
            if args.json {
                let value =
                    json!({"deployment": "remote", "type": reg.r#type.as_str(), "status": st});
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_remote(reg.r#type.as_str(), &st);
            }
            Ok(if ok { 0 } else { 1 })
        }
        Deployment::Local => {
            let opts = options(doc)?;
            let st = match plan(doc).and_then(|p| deploy::local_status(&p, &opts)) {
                Ok(st) => st,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(1);
                }
            };
            // Storage usage and quota limits of a running built-in engine (`GET _ocireg/usage`).
            let usage = (st.engine == Some(Engine::BuiltIn) && st.state == RunState::Running)
                .then(|| crate::admin_call::call_local(doc, "GET", "usage", &[]))
                .and_then(|r| r.map_err(|e| tracing::warn!("storage usage: {e:#}")).ok())
                .flatten();
            if args.json {
                let value = json!({"deployment": "local", "status": st, "usage": usage});
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_local(&st);
                print_usage(usage.as_ref());
            }
            Ok(match st.state {
                RunState::Running => 0,
                RunState::Crashed | RunState::NotAnswering => 1,
                RunState::NotRunning => 3,
            })
        }
    }
}

/// `n` bytes in binary units, as the status and gc reports print them (`1.5 MiB`).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The usage lines of `ocireg status` (from `GET /v2/_ocireg/usage`).
fn print_usage(usage: Option<&serde_json::Value>) {
    let Some(u) = usage else {
        return;
    };
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    let limits = u.get("limits").filter(|l| !l.is_null());
    let of = |limit: Option<u64>, bytes: bool| match limit {
        Some(l) if bytes => format!(" of {}", human_bytes(l)),
        Some(l) => format!(" of {l}"),
        None => String::new(),
    };
    let total = num(u, "total_bytes").unwrap_or(0);
    let artifacts = num(u, "artifacts").unwrap_or(0);
    println!(
        "usage:     {}{} stored, {artifacts}{} artifacts",
        human_bytes(total),
        of(limits.and_then(|l| num(l, "storage_limit_bytes")), true),
        of(limits.and_then(|l| num(l, "artifact_limit")), false),
    );
    if let Some(space) = u.get("storage").filter(|s| !s.is_null()) {
        let (free, reserve) = (
            num(space, "available_bytes").unwrap_or(0),
            num(space, "reserve_bytes").unwrap_or(0),
        );
        let warning = if free < reserve {
            " — below the reserve: new uploads are refused (delete content and run `ocireg gc`)"
        } else {
            ""
        };
        println!(
            "storage:   {} free of {} (uploads stop at {} free){warning}",
            human_bytes(free),
            human_bytes(num(space, "capacity_bytes").unwrap_or(0)),
            human_bytes(reserve),
        );
    }
    if let Some(namespaces) = u.get("namespaces").and_then(serde_json::Value::as_object) {
        for (ns, n) in namespaces {
            let limit = limits
                .and_then(|l| l.get("namespaces"))
                .and_then(|m| m.get(ns));
            println!(
                "  {ns}: {}{}, {}{} artifacts",
                human_bytes(num(n, "bytes").unwrap_or(0)),
                of(limit.and_then(|l| num(l, "storage_limit_bytes")), true),
                num(n, "artifacts").unwrap_or(0),
                of(limit.and_then(|l| num(l, "artifact_limit")), false),
            );
        }
    }
}

fn print_local(st: &deploy::LocalStatus) {
    let state = match st.state {
        RunState::Crashed => format!(
            "crashed: pid {} is gone (its pid file remains until `ocireg up` or `ocireg down`)",
            st.pid.unwrap_or_default()
        ),
        RunState::NotAnswering => format!(
            "not answering: pid {} runs but {} does not answer ({})",
            st.pid.unwrap_or_default(),
            st.probe_url,
            st.note.as_deref().unwrap_or("no answer")
        ),
        other => other.as_str().to_string(),
    };
    println!("registry:  local {}", engine_label(st.kind, st.engine));
    println!("state:     {state}");
    if let Some(pid) = st.pid {
        println!("pid:       {pid}");
    }
    println!("endpoint:  {}", url_of(&st.probe_url, &st.endpoint));
    match (&st.version, &st.program) {
        (Some(v), _) => println!("version:   {v}"),
        (None, Some(p)) => println!("version:   unknown ({})", p.display()),
        (None, None) => {}
    }
    if let Some(api) = &st.api_version {
        println!("api:       {api}");
    }
    match st.storage_bytes {
        Some(n) => println!("storage:   {} in {}", human_bytes(n), st.root_dir.display()),
        None => println!("storage:   none yet ({})", st.root_dir.display()),
    }
    if let Some(t) = &st.started_at {
        println!("started:   {t}");
    }
    println!("config:    {}", st.config_path.display());
    println!("log:       {}", st.log_file.display());
    if st.state == RunState::NotRunning {
        if let Some(note) = &st.note {
            println!("note:      {note}");
        }
    }
    if !st.log_tail.is_empty() {
        println!("last log lines:");
        for line in &st.log_tail {
            println!("  {line}");
        }
    }
}

fn print_remote(kind: &str, st: &deploy::RemoteStatus) {
    println!("registry:    remote {kind}");
    println!("url:         {}", st.url);
    match (st.reachable, st.http_status, &st.error) {
        (true, Some(code), _) => println!("reachable:   yes (HTTP {code})"),
        (_, _, Some(e)) => println!("reachable:   no ({e})"),
        _ => println!("reachable:   no"),
    }
    if let Some(v) = &st.api_version {
        println!("api version: {v}");
    }
    let tls = match &st.tls {
        deploy::TlsCheck::NotUsed => "not used".to_string(),
        deploy::TlsCheck::Verified => "verified".to_string(),
        deploy::TlsCheck::NotVerified => "not verified (remote.verify_ssl = false)".to_string(),
        deploy::TlsCheck::Unchecked => "not checked".to_string(),
        deploy::TlsCheck::Failed { message } => format!("FAILED to verify: {message}"),
    };
    println!("tls:         {tls}");
    let creds = match &st.credentials {
        deploy::CredentialCheck::NotConfigured => "none configured".to_string(),
        deploy::CredentialCheck::Accepted => "accepted".to_string(),
        deploy::CredentialCheck::Rejected { message } => format!("REJECTED ({message})"),
        deploy::CredentialCheck::Unknown { message } => format!("not checked ({message})"),
    };
    println!("credentials: {creds}");
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
