//! `bench`: runs the same registry workloads against ocireg and CNCF Distribution 2.8.2,
//! side by side, and reports each metric with the ratio ocireg/reference.

mod cleanup;
mod cli;
mod clients;
mod http;
mod moto;
mod pagecache;
mod report;
mod server;
mod stats;
mod work;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use clap::Parser;

use crate::cli::{Args, Backend, Only, Plan};
use crate::http::Registry;
use crate::report::{Measure, Report, TargetRun, WorkloadRun};
use crate::server::{Kind, Server, Storage};

/// Buckets of an S3 run, one per registry.
const REFERENCE_BUCKET: &str = "distribution";
/// See [`REFERENCE_BUCKET`].
const OCIREG_BUCKET: &str = "ocireg";
use crate::stats::Errors;
use crate::work::{blobs, listing, manifests, mixed, Ctx};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Dropping `run` on a signal drops the servers, which kills them and removes their roots.
    let res = tokio::select! {
        r = run(args) => r,
        s = signal() => Err(anyhow!("interrupted by {s}; servers stopped")),
    };
    match res {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!(
                "bench: finished with {errors} errors (see the error lines above and the JSON)"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut i), Ok(mut t), Ok(mut h)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = i.recv() => "SIGINT",
        _ = t.recv() => "SIGTERM",
        _ = h.recv() => "SIGHUP",
    }
}

fn version(bin: &Path) -> String {
    let out = std::process::Command::new(bin).arg("--version").output();
    let v = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown version".into(),
    };
    format!("{} ({v})", bin.display())
}

fn seed_of(kind: Kind) -> u64 {
    match kind {
        Kind::Reference => 0x1111_0000_0000_0000,
        Kind::Ocireg => 0x2222_0000_0000_0000,
    }
}

async fn run_workload(name: &str, ctx: &Ctx) -> Vec<Measure> {
    match name {
        "push" => blobs::push(ctx).await,
        "pull" => blobs::pull(ctx).await,
        "manifest" => manifests::run(ctx).await,
        "tags" => listing::tags(ctx).await,
        "catalog" => listing::catalog(ctx).await,
        "mixed" => mixed::run(ctx).await,
        other => {
            ctx.errors
                .record("bench", &anyhow!("unknown workload {other}"));
            Vec::new()
        }
    }
}

/// Runs one workload on one server, with its CPU and memory bookkeeping.
async fn one(
    w: &str,
    wi: usize,
    round: u64,
    s: &mut Server,
    reg: &Arc<Registry>,
    plan: &Arc<Plan>,
) -> (Vec<Measure>, WorkloadRun) {
    let errors = Arc::new(Errors::default());
    let mut wr = WorkloadRun {
        name: w.to_string(),
        wall_secs: 0.0,
        server_cpu_secs: None,
        server_peak_rss_kib: None,
        errors: 0,
        error_samples: Vec::new(),
    };
    if !s.alive() {
        wr.errors = 1;
        wr.error_samples.push(format!(
            "{} is not running; log: {}",
            s.kind.label(),
            s.log_tail()
        ));
        return (Vec::new(), wr);
    }
    if plan.rounds > 1 {
        eprintln!("bench: [{}] {w} (round {}) ...", s.kind.label(), round + 1);
    } else {
        eprintln!("bench: [{}] {w} ...", s.kind.label());
    }
    work::sync_disks().await;
    let reset = s.reset_peak();
    let cpu0 = s.cpu_secs().ok();
    let t0 = Instant::now();
    let ctx = Ctx {
        reg: reg.clone(),
        server: s.probe(),
        plan: plan.clone(),
        errors: errors.clone(),
        // Each round pushes new content (bits 40-43 vary by blob size in the push workload).
        seed: seed_of(s.kind) ^ ((wi as u64) << 48) ^ (round << 44),
    };
    let measures = run_workload(w, &ctx).await;
    wr.wall_secs = t0.elapsed().as_secs_f64();
    wr.server_cpu_secs = cpu0.and_then(|c0| s.cpu_secs().ok().map(|c1| c1 - c0));
    wr.server_peak_rss_kib = s.memory().ok().filter(|_| reset).map(|m| m.hwm_kib);
    if !s.alive() {
        errors.record(
            w,
            &anyhow!(
                "{} exited during the workload; log: {}",
                s.kind.label(),
                s.log_tail()
            ),
        );
    }
    wr.errors = errors.count();
    wr.error_samples = errors.samples();
    eprintln!(
        "bench: [{}] {w} done in {:.1} s, {} errors",
        s.kind.label(),
        wr.wall_secs,
        wr.errors
    );
    for e in wr.error_samples.iter().take(3) {
        eprintln!("bench:   error: {e}");
    }
    (measures, wr)
}

/// Starts each registry to compare, with an empty run record per registry.
async fn start_servers(
    args: &Args,
    kinds: &[Kind],
    workdir: &std::path::Path,
    moto: Option<&moto::Moto>,
) -> Result<(Vec<Server>, Vec<TargetRun>)> {
    let mut servers = Vec::new();
    let mut runs = Vec::new();
    let storage = |bucket: &str| match moto {
        Some(m) => Storage::S3 {
            endpoint: m.endpoint.clone(),
            bucket: bucket.to_string(),
        },
        None => Storage::Filesystem,
    };
    for &k in kinds {
        let (s, v) = match k {
            Kind::Reference => (
                Server::start_reference(&args.reference_bin, workdir, &storage(REFERENCE_BUCKET))
                    .await?,
                version(&args.reference_bin),
            ),
            Kind::Ocireg => (
                Server::start_ocireg(&args.ocireg_bin, workdir, &storage(OCIREG_BUCKET)).await.map_err(|e| {
                    anyhow!("{e:#}\n(hint: build it with `cargo build --release -p ocireg`, or use --only reference)")
                })?,
                version(&args.ocireg_bin),
            ),
        };
        eprintln!("bench: {} pid {} at {}", k.label(), s.pid, s.base);
        servers.push(s);
        runs.push(TargetRun {
            kind: k,
            version: v,
            measures: Vec::new(),
            workloads: Vec::new(),
        });
    }
    Ok((servers, runs))
}

/// The server-side figures of the whole run: idle and peak memory, CPU seconds.
fn add_server_measures(servers: &[Server], runs: &mut [TargetRun], idle: &[Option<u64>]) {
    let mib = |k: u64| k as f64 / 1024.0;
    for (i, s) in servers.iter().enumerate() {
        let end = s.memory().ok();
        let peak = runs[i]
            .workloads
            .iter()
            .filter_map(|w| w.server_peak_rss_kib)
            .chain(end.map(|m| m.hwm_kib))
            .max();
        let cpu = s.cpu_secs().ok();
        runs[i].measures.push(Measure::new(
            "server memory",
            "idle RSS MiB (after start)",
            false,
            idle[i].map(mib),
        ));
        runs[i].measures.push(Measure::new(
            "server memory",
            "peak RSS MiB (whole run)",
            false,
            peak.map(mib),
        ));
        runs[i].measures.push(Measure::new(
            "server CPU",
            "CPU seconds (whole run)",
            false,
            cpu,
        ));
    }
}

async fn run(args: Args) -> Result<u64> {
    let plan = Arc::new(args.plan()?);
    let workdir = args.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let kinds: Vec<Kind> = match args.only {
        None => vec![Kind::Reference, Kind::Ocireg],
        Some(Only::Reference) => vec![Kind::Reference],
        Some(Only::Ocireg) => vec![Kind::Ocireg],
    };
    let command = std::env::var("OCIREG_BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    let t_start = Instant::now();
    let machine = report::machine(&workdir);
    let load_start = report::load_average();
    // Kept until the end of the run; dropping it stops moto.
    let s3_server = match plan.backend {
        Backend::Filesystem => None,
        Backend::S3 => {
            let bin = args.moto_bin.clone().unwrap_or_else(moto::default_bin);
            let m = moto::Moto::start(&bin, &[REFERENCE_BUCKET, OCIREG_BUCKET]).await?;
            eprintln!("bench: moto pid {:?} at {}", m.pid(), m.endpoint);
            Some(m)
        }
    };
    let (mut servers, mut runs) =
        start_servers(&args, &kinds, &workdir, s3_server.as_ref()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle: Vec<Option<u64>> = servers
        .iter()
        .map(|s| s.memory().ok().map(|m| m.rss_kib))
        .collect();
    let regs: Vec<Arc<Registry>> = servers
        .iter()
        .map(|s| Registry::new(&s.base, plan.small_timeout, plan.big_timeout).map(Arc::new))
        .collect::<Result<_>>()?;
    let mut per_round: Vec<Vec<Vec<Measure>>> = vec![Vec::new(); servers.len()];
    for round in 0..plan.rounds {
        let mut measures: Vec<Vec<Measure>> = vec![Vec::new(); servers.len()];
        for (wi, w) in plan.workloads.iter().enumerate() {
            // Odd rounds run the registries in the opposite order.
            let mut order: Vec<usize> = (0..servers.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (m, wr) = one(w, wi, round, &mut servers[i], &regs[i], &plan).await;
                measures[i].extend(m);
                runs[i].workloads.push(wr);
            }
        }
        for (i, m) in measures.into_iter().enumerate() {
            per_round[i].push(m);
        }
    }
    for (i, rounds) in per_round.into_iter().enumerate() {
        runs[i].measures = report::merge_rounds(rounds);
    }
    add_server_measures(&servers, &mut runs, &idle);
    let mut dirs = Vec::new();
    for s in servers {
        let label = s.kind.label();
        if let Some(p) = s.stop().await {
            dirs.push((label, p));
        }
    }
    let written = write_report(&args, &plan, command, machine, load_start, runs);
    remove_dirs(dirs, args.keep_data).await;
    eprintln!("bench: {:.0} s in all", t_start.elapsed().as_secs_f64());
    written
}

/// Writes the JSON, prints the Markdown; returns the number of errors counted.
fn write_report(
    args: &Args,
    plan: &Plan,
    command: String,
    machine: report::Machine,
    load_start: String,
    runs: Vec<TargetRun>,
) -> Result<u64> {
    let now = time::OffsetDateTime::now_utc();
    let date = now.format(&time::format_description::well_known::Rfc3339)?;
    let day = date.get(..10).unwrap_or("undated").to_string();
    let rows = report::rows(&runs);
    let errors: u64 = runs
        .iter()
        .flat_map(|r| &r.workloads)
        .map(|w| w.errors)
        .sum();
    let rep = Report {
        date,
        command,
        machine,
        load_average: [load_start, report::load_average()],
        plan: plan.clone(),
        targets: runs,
        rows,
    };
    let path = report::write_json(&rep, &args.results_dir, &day)?;
    println!("{}", report::markdown(&rep));
    eprintln!("bench: wrote {}", path.display());
    Ok(errors)
}

/// Removes (or keeps) the servers' directories.
async fn remove_dirs(dirs: Vec<(&'static str, std::path::PathBuf)>, keep: bool) {
    for (label, dir) in dirs {
        if keep {
            eprintln!("bench: kept {label} data in {}", dir.display());
            continue;
        }
        let (d, t0) = (dir.clone(), Instant::now());
        match tokio::task::spawn_blocking(move || cleanup::remove_tree(&d)).await {
            Ok(Ok(())) => eprintln!(
                "bench: removed {} in {:.1} s",
                dir.display(),
                t0.elapsed().as_secs_f64()
            ),
            Ok(Err(e)) => eprintln!("bench: could not remove {}: {e}", dir.display()),
            Err(e) => eprintln!("bench: could not remove {}: {e}", dir.display()),
        }
    }
}
