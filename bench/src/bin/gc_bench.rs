//! `gc_bench`: garbage collection over a large store, ocireg (`ocireg gc`, in-process on the
//! storage root) next to CNCF Distribution 2.8.2 (`docker-registry garbage-collect`).
//!
//! Both stores get the same logical content, written directly in each registry's layout (fast;
//! no registry runs while it is built): `--repos` repositories holding `--blobs` blobs in total
//! (small, distinct), of which `--live-pct` percent are referenced by tagged OCI image manifests
//! of `--per-manifest` blobs each (config + layers); the rest are linked in their repository but
//! referenced by no manifest (left behind by deleted manifests). Each collector runs twice under
//! `/usr/bin/time`: the first run removes the unreferenced blobs, the second finds nothing
//! (the steady state). Reported: wall time, peak RSS of the process (`%M`, getrusage
//! maxrss), and the objects left, checked against what must survive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ocireg_oci::{Algorithm, Digest};
use ocireg_store::paths;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Parser, Debug)]
#[command(about = "GC benchmark: ocireg gc vs docker-registry garbage-collect")]
struct Args {
    /// Blobs in total (over all repositories).
    #[arg(long, default_value_t = 100_000)]
    blobs: usize,
    /// Repositories.
    #[arg(long, default_value_t = 100)]
    repos: usize,
    /// Percent of the blobs referenced by tagged manifests.
    #[arg(long, default_value_t = 50)]
    live_pct: usize,
    /// Blobs per manifest (config + layers).
    #[arg(long, default_value_t = 10)]
    per_manifest: usize,
    /// Bytes per blob.
    #[arg(long, default_value_t = 256)]
    blob_size: usize,
    /// The ocireg binary.
    #[arg(long, default_value = "target/release/ocireg")]
    ocireg: PathBuf,
    /// The reference registry binary (skipped when absent).
    #[arg(long, default_value = "/usr/bin/docker-registry")]
    distribution: PathBuf,
    /// Where the stores are built (a temp directory below it, removed at the end).
    #[arg(long, default_value = "/tmp")]
    workdir: PathBuf,
}

/// One blob or manifest: digest and bytes.
struct Obj {
    digest: Digest,
    bytes: Vec<u8>,
}

fn obj(bytes: Vec<u8>) -> Obj {
    Obj {
        digest: Digest::compute(Algorithm::Sha256, &bytes),
        bytes,
    }
}

/// Distinct blob content for (repository, index).
fn blob(repo: usize, i: usize, size: usize) -> Obj {
    let mut b = format!("blob {repo} {i} ").into_bytes();
    let mut x = (repo as u64) << 32 | i as u64;
    while b.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push((x >> 24) as u8);
    }
    obj(b)
}

fn manifest(config: &Obj, layers: &[Obj]) -> Obj {
    let desc = |mt: &str, o: &Obj| serde_json::json!({"mediaType": mt, "digest": o.digest.to_string(), "size": o.bytes.len()});
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
    });
    obj(serde_json::to_vec(&m).unwrap())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes one repository into both layouts.
fn build_repo(args: &Args, r: usize, oci: &Path, dist: &Path) -> Result<()> {
    let name = format!("bench/r{r:04}");
    let per_repo = args.blobs / args.repos;
    let live = per_repo * args.live_pct / 100 / args.per_manifest * args.per_manifest;
    let blobs: Vec<Obj> = (0..per_repo).map(|i| blob(r, i, args.blob_size)).collect();
    let dv2 = dist.join("docker/registry/v2");
    for b in &blobs {
        let hex = b.digest.hex();
        write(&oci.join(paths::shared_data(&b.digest)), &b.bytes)?;
        write(
            &oci.join(paths::layer_link(&name, &b.digest)),
            b.digest.to_string().as_bytes(),
        )?;
        write(
            &dv2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])),
            &b.bytes,
        )?;
        write(
            &dv2.join(format!("repositories/{name}/_layers/sha256/{hex}/link")),
            b.digest.to_string().as_bytes(),
        )?;
    }
    for (t, chunk) in blobs[..live].chunks(args.per_manifest).enumerate() {
        let m = manifest(&chunk[0], &chunk[1..]);
        let hex = m.digest.hex();
        let d = m.digest.to_string();
        write(&oci.join(paths::shared_data(&m.digest)), &m.bytes)?;
        write(
            &oci.join(paths::revision_link(&name, &m.digest)),
            paths::revision_content(&m.digest, OCI_MANIFEST).as_bytes(),
        )?;
        write(
            &oci.join(paths::tag_link(&name, &format!("t{t}"))),
            d.as_bytes(),
        )?;
        write(
            &dv2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])),
            &m.bytes,
        )?;
        let mdir = dv2.join(format!("repositories/{name}/_manifests"));
        write(
            &mdir.join(format!("revisions/sha256/{hex}/link")),
            d.as_bytes(),
        )?;
        write(&mdir.join(format!("tags/t{t}/current/link")), d.as_bytes())?;
        write(
            &mdir.join(format!("tags/t{t}/index/sha256/{hex}/link")),
            d.as_bytes(),
        )?;
    }
    Ok(())
}

/// Regular files below `dir` (0 when absent).
fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// Wall seconds and peak RSS (KiB) of a command run under GNU time.
struct Timed {
    secs: f64,
    maxrss_kib: u64,
}

fn timed(cmd: Command, log: &Path) -> Result<Timed> {
    let mut time = Command::new("/usr/bin/time");
    time.arg("-f").arg("GCBENCH %e %M").arg(cmd.get_program());
    time.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => time.env(k, v),
            None => time.env_remove(k),
        };
    }
    let out = fs::File::create(log)?;
    let status = time
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(Stdio::piped())
        .output()
        .context("running /usr/bin/time")?;
    let err = String::from_utf8_lossy(&status.stderr);
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("GCBENCH "))
        .with_context(|| format!("no timing from /usr/bin/time: {err}"))?;
    if !status.status.success() {
        bail!("{:?} failed: {err}", cmd.get_program());
    }
    let mut parts = line.split_whitespace().skip(1);
    Ok(Timed {
        secs: parts.next().unwrap_or("0").parse()?,
        maxrss_kib: parts.next().unwrap_or("0").parse()?,
    })
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn machine(dir: &Path) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or("?".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let fstype = Command::new("df")
        .args(["--output=fstype"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().nth(1).map(str::trim).map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    format!(
        "{} CPUs ({cpu}), {mem} RAM, Linux {}, storage on {fstype}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    )
}

/// What the built stores hold.
struct Counts {
    total_blobs: usize,
    live_blobs: usize,
    manifests: usize,
}

/// One table row: collector, first and second run, objects left.
type Row = (&'static str, Timed, Timed, usize);

/// Writes both stores, repositories spread over the available threads.
fn build_stores(args: &Args, oci: &Path, dist: &Path) -> Result<Counts> {
    let started = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    for r in (t..args.repos).step_by(threads) {
                        build_repo(args, r, oci, dist)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("builder panicked"))??;
        }
        Ok(())
    })?;
    sync();
    let per_repo = args.blobs / args.repos;
    let live_blobs =
        args.repos * (per_repo * args.live_pct / 100 / args.per_manifest * args.per_manifest);
    let c = Counts {
        total_blobs: per_repo * args.repos,
        live_blobs,
        manifests: live_blobs / args.per_manifest,
    };
    eprintln!(
        "built in {:.1} s: {} blobs ({} referenced), {} manifests",
        started.elapsed().as_secs_f64(),
        c.total_blobs,
        c.live_blobs,
        c.manifests
    );
    Ok(c)
}

/// `ocireg gc` twice, in-process: its config names a local registry that is not running.
fn run_ocireg(ocireg: &Path, tmp: &Path, oci: &Path, c: &Counts) -> Result<Row> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = tmp.join("ocireg.yaml");
    fs::write(
        &cfg,
        format!(
            "registry:\n  deployment: local\n  type: distribution\n  endpoint: 127.0.0.1\n  port: {port}\n  namespaces: {{}}\n  local:\n    data_dir: {data}\n    config_path: {native}\n    http_config: {{listen_address: 127.0.0.1, listen_port: {port}}}\n    storage_config: {{rootdirectory: {root}, dedupe_enabled: true}}\n    ops_config: {{gc_grace_period: 0}}\n",
            data = tmp.join("data").display(),
            native = tmp.join("native.yml").display(),
            root = oci.display(),
        ),
    )?;
    let ocireg_cmd = || {
        let mut cmd = Command::new(ocireg);
        cmd.arg("--config").arg(&cfg).args(["gc", "--json"]);
        cmd.env("HOME", tmp).env_remove("OCIREG_CONFIG");
        cmd
    };
    let o1 = timed(ocireg_cmd(), &tmp.join("ocireg-gc-1.json"))?;
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.join("ocireg-gc-1.json"))?)?;
    let removed = report["blobs"].as_array().map_or(0, Vec::len);
    sync();
    let o2 = timed(ocireg_cmd(), &tmp.join("ocireg-gc-2.json"))?;
    let left = count_files(&oci.join("blobs"));
    if left != c.live_blobs + c.manifests || removed != c.total_blobs - c.live_blobs {
        bail!(
            "ocireg gc left {left} objects and removed {removed}; expected {} left",
            c.live_blobs + c.manifests
        );
    }
    Ok(("ocireg gc", o1, o2, left))
}

/// `docker-registry garbage-collect` twice on its own store.
fn run_distribution(binary: &Path, tmp: &Path, dist: &Path, c: &Counts) -> Result<Row> {
    let dcfg = tmp.join("distribution.yml");
    fs::write(
        &dcfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            dist.display()
        ),
    )?;
    let dist_cmd = || {
        let mut cmd = Command::new(binary);
        cmd.arg("garbage-collect").arg(&dcfg);
        cmd
    };
    sync();
    let d1 = timed(dist_cmd(), &tmp.join("distribution-gc-1.log"))?;
    sync();
    let d2 = timed(dist_cmd(), &tmp.join("distribution-gc-2.log"))?;
    let left = count_files(&dist.join("docker/registry/v2/blobs"));
    if left != c.live_blobs + c.manifests {
        bail!(
            "docker-registry garbage-collect left {left} objects; expected {}",
            c.live_blobs + c.manifests
        );
    }
    Ok(("docker-registry garbage-collect", d1, d2, left))
}

fn print_table(args: &Args, tmp: &Path, c: &Counts, rows: Vec<Row>) {
    let unreferenced = c.total_blobs - c.live_blobs;
    println!("Machine: {}", machine(tmp));
    println!(
        "Store: {} repositories, {} blobs of {} bytes ({} referenced by {} tagged manifests of {} blobs), {unreferenced} unreferenced; grace period 0\n",
        args.repos,
        c.total_blobs,
        args.blob_size,
        c.live_blobs,
        c.manifests,
        args.per_manifest,
    );
    println!("| collector | 1st run: removes {unreferenced} blobs | peak RSS | 2nd run: nothing to remove | peak RSS | data objects left |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, a, b, left) in rows {
        println!(
            "| {name} | {:.2} s | {:.1} MiB | {:.2} s | {:.1} MiB | {left} |",
            a.secs,
            a.maxrss_kib as f64 / 1024.0,
            b.secs,
            b.maxrss_kib as f64 / 1024.0
        );
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.per_manifest < 1 || args.repos == 0 || args.live_pct > 100 {
        bail!("--per-manifest >= 1, --repos >= 1 and --live-pct <= 100");
    }
    let ocireg = fs::canonicalize(&args.ocireg).with_context(|| {
        format!(
            "{} (build with cargo build --release -p ocireg)",
            args.ocireg.display()
        )
    })?;
    let tmp = tempfile::Builder::new()
        .prefix("gc-bench-")
        .tempdir_in(&args.workdir)?;
    let (oci, dist) = (tmp.path().join("ocireg"), tmp.path().join("distribution"));
    eprintln!(
        "building two stores with {} blobs each in {} ...",
        args.blobs,
        tmp.path().display()
    );
    let counts = build_stores(&args, &oci, &dist)?;
    let mut rows = vec![run_ocireg(&ocireg, tmp.path(), &oci, &counts)?];
    if args.distribution.exists() {
        rows.push(run_distribution(
            &args.distribution,
            tmp.path(),
            &dist,
            &counts,
        )?);
    } else {
        eprintln!(
            "{} not found: reference skipped",
            args.distribution.display()
        );
    }
    print_table(&args, tmp.path(), &counts, rows);
    Ok(())
}
