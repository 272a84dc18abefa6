//! `ocireg status`: what answers on the registry's address (whoever started it), the engine
//! that wrote the storage root, usage, and where storage goes besides artifacts.

use ocireg_config::{self as cfg, Deployment};
use ocireg_deploy::{self as deploy, Engine, EngineId, RenderOptions, RunState};
use ocireg_store::GcReport;
use serde_json::json;

use super::{engine_label, options, plan, url_of, StatusArgs};
use crate::exit::Exit;

/// `ocireg status`.
pub(super) fn run_status(args: StatusArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    match doc.registry.deployment {
        Deployment::Disabled => {
            if args.json {
                println!("{}", json!({"deployment": "disabled"}));
            } else {
                println!("registry: disabled (registry.deployment = \"disabled\")");
            }
            Ok(Exit::Ok.code())
        }
        Deployment::Remote => run_remote(&args, doc),
        Deployment::Local => run_local(&args, doc),
    }
}

fn run_remote(args: &StatusArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    let reg = &doc.registry;
    let check = match deploy::RemoteCheckOptions::from_registry(reg, &RenderOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Failed.code());
        }
    };
    let st = deploy::check_remote(&check);
    let exit = if !st.reachable || matches!(st.tls, deploy::TlsCheck::Failed { .. }) {
        Exit::Unreachable
    } else if matches!(st.credentials, deploy::CredentialCheck::Rejected { .. }) {
        Exit::AuthRefused
    } else {
        Exit::Ok
    };
    if args.json {
        let value = json!({"deployment": "remote", "type": reg.r#type.as_str(), "status": st});
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_remote(reg.r#type.as_str(), &st);
    }
    Ok(exit.code())
}

fn run_local(args: &StatusArgs, doc: &cfg::Document) -> anyhow::Result<i32> {
    if let Ok(settings) = cfg::ServeSettings::resolve(doc) {
        if settings.storage().is_object_store() {
            return run_object(args, doc, &settings);
        }
    }
    let opts = options(doc)?;
    let st = match plan(doc).and_then(|p| deploy::local_status(&p, &opts)) {
        Ok(st) => st,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Failed.code());
        }
    };
    // A built-in engine answering (whoever started it) tells its usage and, through a dry-run
    // GC, where the storage that no artifact accounts for goes.
    let builtin = st
        .answering
        .as_ref()
        .is_some_and(|a| a.engine == Some(EngineId::Builtin));
    let ask = |method: &str, path: &str, query: &[(&str, &str)]| {
        builtin
            .then(|| crate::admin_call::call_local(doc, method, path, query))
            .and_then(|r| r.map_err(|e| tracing::warn!("{path}: {e:#}")).ok())
            .flatten()
    };
    let usage = ask("GET", "usage", &[]);
    let preview: Option<GcReport> =
        ask("POST", "gc", &[("dry_run", "true")]).and_then(|v| serde_json::from_value(v).ok());
    let gap = preview.as_ref().map(Gap::of);
    if args.json {
        let value = json!({"deployment": "local", "status": st, "usage": usage, "gap": gap});
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_local(&st);
        print_usage(usage.as_ref());
        if let Some(g) = &gap {
            println!("gap:       {}", g.describe());
        }
        print_log_tail(&st);
    }
    Ok(match st.state {
        RunState::Running | RunState::Foreign => Exit::Ok,
        RunState::Crashed | RunState::NotAnswering => Exit::Failed,
        RunState::NotRunning => Exit::NotRunning,
    }
    .code())
}

/// A registry on object storage: no process of `ocireg up` and no storage directory to look
/// at; what answers on the configured address (a replica, or the balancer in front of them)
/// tells whether it runs, and its usage endpoint what the bucket holds.
fn run_object(
    args: &StatusArgs,
    doc: &cfg::Document,
    settings: &cfg::ServeSettings,
) -> anyhow::Result<i32> {
    let url = settings.local.probe_url();
    let storage = settings.storage();
    let (state, usage, note) = match crate::admin_call::call_local(doc, "GET", "usage", &[]) {
        Ok(Some(usage)) => (RunState::Running, Some(usage), None),
        Ok(None) => (
            RunState::NotRunning,
            None,
            Some("start `ocireg serve` (one per replica); `ocireg up` manages a registry on a local directory only".to_owned()),
        ),
        Err(e) => (RunState::NotAnswering, None, Some(format!("{e:#}"))),
    };
    if args.json {
        let value = json!({
            "deployment": "local",
            "status": {
                "state": state,
                "probe_url": url,
                "backend": storage.kind().as_str(),
                "storage": storage.location(),
                "note": note,
            },
            "usage": usage,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "registry:  local built-in engine on {} storage",
            storage.kind()
        );
        println!("state:     {}", state.as_str());
        println!("endpoint:  {}", url.trim_end_matches("/v2/"));
        println!("storage:   {}", storage.location());
        print_usage(usage.as_ref());
        if let Some(note) = &note {
            println!("note:      {note}");
        }
    }
    Ok(match state {
        RunState::Running => Exit::Ok,
        RunState::NotRunning => Exit::NotRunning,
        _ => Exit::Failed,
    }
    .code())
}

/// Storage that no artifact accounts for, from a dry-run GC.
#[derive(Debug, serde::Serialize)]
struct Gap {
    /// Open upload sessions and their bytes.
    upload_sessions: u64,
    upload_session_bytes: u64,
    /// Those idle longer than the upload TTL (gc removes them).
    stale_upload_sessions: u64,
    stale_upload_bytes: u64,
    upload_ttl_secs: u64,
    /// Unreferenced data gc would remove now.
    reclaimable_bytes: u64,
    /// Unreferenced data younger than the grace period (or in use): kept for now.
    young_unreferenced_bytes: u64,
}

impl Gap {
    fn of(r: &GcReport) -> Self {
        Self {
            upload_sessions: r.upload_sessions,
            upload_session_bytes: r.upload_session_bytes,
            stale_upload_sessions: r.uploads.len() as u64,
            stale_upload_bytes: r.uploads.iter().map(|u| u.bytes).sum(),
            upload_ttl_secs: r.upload_ttl_secs,
            reclaimable_bytes: r.blobs.iter().map(|b| b.bytes).sum(),
            young_unreferenced_bytes: r.kept_young_bytes,
        }
    }

    /// "12.0 MiB in 3 open upload sessions; 40.0 MiB unreferenced, reclaimable by gc".
    fn describe(&self) -> String {
        let mut sessions = format!(
            "{} in {} open upload session{}",
            human_bytes(self.upload_session_bytes),
            self.upload_sessions,
            if self.upload_sessions == 1 { "" } else { "s" }
        );
        if self.stale_upload_sessions > 0 {
            sessions.push_str(&format!(
                " ({} idle longer than {}: {} reclaimable by gc)",
                self.stale_upload_sessions,
                crate::gc_cmd::human_secs(self.upload_ttl_secs),
                human_bytes(self.stale_upload_bytes)
            ));
        }
        let mut out = format!(
            "{sessions}; {} unreferenced, reclaimable by gc",
            human_bytes(self.reclaimable_bytes)
        );
        if self.young_unreferenced_bytes > 0 {
            out.push_str(&format!(
                "; {} unreferenced but within the grace period",
                human_bytes(self.young_unreferenced_bytes)
            ));
        }
        out
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
    let engine = match st.state {
        // Nothing of ours runs: the engine shown is the one `up` would start.
        RunState::NotRunning | RunState::Foreign => match st.engine {
            Some(_) => format!(
                "{} (`ocireg up` would start {})",
                st.kind,
                engine_label(st.kind, st.engine)
            ),
            None => st.kind.to_string(),
        },
        _ => engine_label(st.kind, st.engine),
    };
    println!("registry:  local {engine}");
    println!("state:     {state}");
    if let Some(a) = &st.answering {
        println!("answering: {}", a.describe());
    }
    if let Some(pid) = st.pid {
        println!("pid:       {pid}");
    }
    println!("endpoint:  {}", url_of(&st.probe_url, &st.endpoint));
    if st.state != RunState::Foreign {
        match (&st.version, &st.program) {
            (Some(v), _) => println!("version:   {v}"),
            (None, Some(p)) => println!("version:   unknown ({})", p.display()),
            (None, None) => {}
        }
    }
    if let Some(api) = &st.api_version {
        println!("api:       {api}");
    }
    let owner = st
        .root_owner
        .as_ref()
        .map(|o| format!(" (written by {})", o.describe()))
        .unwrap_or_default();
    match st.storage_bytes {
        Some(n) => println!(
            "storage:   {} in {}{owner}",
            human_bytes(n),
            st.root_dir.display()
        ),
        None => println!("storage:   none yet ({})", st.root_dir.display()),
    }
    if let Some(t) = &st.started_at {
        println!("started:   {t}");
    }
    println!("config:    {}", st.config_path.display());
    println!("log:       {}", st.log_file.display());
    if st.state == RunState::Foreign {
        println!("note:      `ocireg down` does not stop a registry `ocireg up` did not start");
    }
    if st.state == RunState::NotRunning {
        if let Some(note) = &st.note {
            println!("note:      {note}");
        }
        let next = st.engine.map(|e| match e {
            Engine::BuiltIn => EngineId::Builtin,
            Engine::Native => EngineId::of_native(st.kind),
        });
        if let (Some(next), Some(owner)) = (next, &st.root_owner) {
            if owner.engine != next {
                println!(
                    "note:      `ocireg up` refuses to start {} over this storage; `ocireg up --engine {}` serves it",
                    next.describe(),
                    owner.engine
                );
            }
        }
    }
}

/// The log lines `status` shows for a registry that crashed or does not answer.
fn print_log_tail(st: &deploy::LocalStatus) {
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
