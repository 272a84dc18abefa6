//! Measurements, the machine description, and the JSON and Markdown outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::Plan;
use crate::server::Kind;

/// One measured number of one workload on one registry.
#[derive(Clone, Debug, Serialize)]
pub struct Measure {
    /// Workload row label, e.g. `blob push 64 MiB, monolithic`.
    pub workload: String,
    /// Metric label, e.g. `MB/s`.
    pub metric: String,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
    /// The value; `None` when nothing succeeded.
    pub value: Option<f64>,
    /// Raw details (repetitions, pages, counts).
    pub detail: serde_json::Value,
}

impl Measure {
    /// A measurement with no details.
    pub fn new(
        workload: impl Into<String>,
        metric: &str,
        higher_is_better: bool,
        value: Option<f64>,
    ) -> Self {
        Measure {
            workload: workload.into(),
            metric: metric.to_string(),
            higher_is_better,
            value,
            detail: serde_json::Value::Null,
        }
    }

    /// Attaches details.
    pub fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Merges the measures of several rounds (each in the same order): each measure's value is the
/// median of its rounds' values, its detail lists every round's value and detail.
pub fn merge_rounds(mut rounds: Vec<Vec<Measure>>) -> Vec<Measure> {
    if rounds.len() <= 1 {
        return rounds.pop().unwrap_or_default();
    }
    let first = rounds[0].clone();
    first
        .into_iter()
        .map(|m| {
            let same: Vec<&Measure> = rounds
                .iter()
                .filter_map(|r| {
                    r.iter()
                        .find(|o| o.workload == m.workload && o.metric == m.metric)
                })
                .collect();
            let values: Vec<Option<f64>> = same.iter().map(|o| o.value).collect();
            let details: Vec<serde_json::Value> = same.iter().map(|o| o.detail.clone()).collect();
            let mut known: Vec<f64> = values.iter().flatten().copied().collect();
            Measure {
                value: median(&mut known),
                detail: serde_json::json!({"rounds": values, "round_details": details}),
                ..m
            }
        })
        .collect()
}

/// The median (mean of the middle two for an even count); `None` for no values.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// What one workload did on one registry, beyond its measures.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadRun {
    /// Workload name.
    pub name: String,
    /// Wall time of the workload including setup, seconds.
    pub wall_secs: f64,
    /// Server CPU seconds consumed during it.
    pub server_cpu_secs: Option<f64>,
    /// Server peak RSS during it (KiB), if the peak could be reset before.
    pub server_peak_rss_kib: Option<u64>,
    /// Errors counted.
    pub errors: u64,
    /// The first error messages.
    pub error_samples: Vec<String>,
}

/// Everything measured on one registry.
#[derive(Clone, Debug, Serialize)]
pub struct TargetRun {
    /// Which registry.
    pub kind: Kind,
    /// Its version string.
    pub version: String,
    /// Measurements in run order.
    pub measures: Vec<Measure>,
    /// Per-workload bookkeeping.
    pub workloads: Vec<WorkloadRun>,
}

/// The machine the run happened on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// CPU model name from /proc/cpuinfo.
    pub cpu: String,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// File system type holding the storage roots.
    pub storage_fs: String,
}

/// The whole result file.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// UTC timestamp (RFC 3339).
    pub date: String,
    /// The exact command.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// /proc/loadavg before the first and after the last workload.
    pub load_average: [String; 2],
    /// The plan (sizes, durations, counts).
    pub plan: Plan,
    /// Per-registry results.
    pub targets: Vec<TargetRun>,
    /// Side-by-side rows with ratios.
    pub rows: Vec<Row>,
}

/// One side-by-side row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Workload label.
    pub workload: String,
    /// Metric label.
    pub metric: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// Value per registry.
    pub values: BTreeMap<Kind, Option<f64>>,
    /// ocireg / reference, when both are present and the reference is non-zero.
    pub ratio: Option<f64>,
}

/// The first three fields of /proc/loadavg.
pub fn load_average() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Reads nproc, CPU model, memory and kernel; `dir` names where storage lives.
pub fn machine(dir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        memory_mib,
        kernel,
        storage_fs: fs_type(dir),
    }
}

fn fs_type(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || !dir.starts_with(f[1]) {
            continue;
        }
        if best.as_ref().is_none_or(|(len, _)| f[1].len() > *len) {
            best = Some((f[1].len(), format!("{} on {}", f[2], f[1])));
        }
    }
    best.map_or_else(
        || "unknown".into(),
        |(_, s)| format!("{s} ({})", dir.display()),
    )
}

/// Joins the per-registry measures into rows, in first-seen order.
pub fn rows(targets: &[TargetRun]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for t in targets {
        for m in &t.measures {
            let idx = match out
                .iter()
                .position(|r| r.workload == m.workload && r.metric == m.metric)
            {
                Some(i) => i,
                None => {
                    out.push(Row {
                        workload: m.workload.clone(),
                        metric: m.metric.clone(),
                        higher_is_better: m.higher_is_better,
                        values: BTreeMap::new(),
                        ratio: None,
                    });
                    out.len() - 1
                }
            };
            out[idx].values.insert(t.kind, m.value);
        }
    }
    for r in &mut out {
        let get = |k| r.values.get(&k).copied().flatten();
        r.ratio = match (get(Kind::Ocireg), get(Kind::Reference)) {
            (Some(o), Some(d)) if d != 0.0 => Some(o / d),
            _ => None,
        };
    }
    out
}

/// Formats a number with precision fitting its magnitude.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || (v.fract() == 0.0 && a < 1e12) {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn better(r: &Row) -> String {
    let get = |k| r.values.get(&k).copied().flatten();
    match (get(Kind::Ocireg), get(Kind::Reference)) {
        (Some(o), Some(d)) if o > 0.0 && d > 0.0 => {
            let o_wins = if r.higher_is_better { o > d } else { o < d };
            let f = if o > d { o / d } else { d / o };
            if (f - 1.0).abs() < 0.005 {
                "=".into()
            } else if o_wins {
                format!("ocireg {}×", num(f))
            } else {
                format!("reference {}×", num(f))
            }
        }
        _ => "—".into(),
    }
}

/// Listing notes: requests per listing, ignored `n`, order.
fn notes(r: &Report) -> String {
    let mut s = String::new();
    for t in &r.targets {
        for m in &t.measures {
            let Some(pages) = m.detail.get("pages").and_then(|p| p.as_u64()) else {
                continue;
            };
            let mut n = format!("\n- {}: {}: {pages} request(s)", t.kind.label(), m.workload);
            if m.detail.get("server_ignored_n").and_then(|v| v.as_bool()) == Some(true) {
                n.push_str(", server ignored `n` (returned more entries than asked)");
            }
            if m.detail.get("lexically_sorted").and_then(|v| v.as_bool()) == Some(false) {
                n.push_str(", entries not in lexical order");
            }
            s.push_str(&n);
        }
    }
    if !s.is_empty() {
        s.insert_str(0, "\nListings:");
        s.push('\n');
    }
    s
}

/// Renders the report as Markdown for BENCHMARKS.md.
pub fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    s.push_str(&format!(
        "### ocireg vs CNCF Distribution 2.8.2 — {}\n\n",
        r.date
    ));
    s.push_str(&format!(
        "Machine: {} × {}, {} MiB RAM, {}; storage {}.  \n",
        m.nproc, m.cpu, m.memory_mib, m.kernel, m.storage_fs
    ));
    for t in &r.targets {
        s.push_str(&format!("{}: `{}`.  \n", t.kind.label(), t.version));
    }
    s.push_str(&format!(
        "Load average (1/5/15 min) before / after: {} / {}.  \n",
        r.load_average[0], r.load_average[1]
    ));
    s.push_str(&format!(
        "Command: `{}`{}\n\n",
        r.command,
        if r.plan.quick { " (quick mode)" } else { "" }
    ));
    s.push_str("MB/s = 10^6 bytes per second; ↑ higher is better, ↓ lower is better. ");
    s.push_str("Ratio = ocireg / reference. Client and servers share the machine.\n\n");
    s.push_str("| workload | metric | Distribution 2.8.2 | ocireg | ocireg/ref | better |\n");
    s.push_str("| --- | --- | ---: | ---: | ---: | --- |\n");
    let cell = |v: Option<&Option<f64>>| match v {
        Some(Some(x)) => num(*x),
        Some(None) => "failed".into(),
        None => "—".into(),
    };
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} |\n",
            row.workload,
            row.metric,
            if row.higher_is_better { "↑" } else { "↓" },
            cell(row.values.get(&Kind::Reference)),
            cell(row.values.get(&Kind::Ocireg)),
            row.ratio.map_or_else(|| "—".into(), num),
            better(row),
        ));
    }
    s.push_str(&notes(r));
    s.push_str("\nErrors per workload (reference / ocireg):");
    let mut names: Vec<&str> = Vec::new();
    for t in &r.targets {
        for w in &t.workloads {
            if !names.contains(&w.name.as_str()) {
                names.push(&w.name);
            }
        }
    }
    for n in names {
        let count = |k: Kind| {
            r.targets
                .iter()
                .find(|t| t.kind == k)
                .and_then(|t| t.workloads.iter().find(|w| w.name == n))
                .map_or_else(|| "—".into(), |w| w.errors.to_string())
        };
        s.push_str(&format!(
            " {n} {}/{};",
            count(Kind::Reference),
            count(Kind::Ocireg)
        ));
    }
    s.push('\n');
    s
}

/// Writes the JSON report to `<dir>/<date>.json` (or `-2`, `-3`, … if taken); returns the path.
pub fn write_json(r: &Report, dir: &Path, day: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let suffix = if r.plan.quick { "-quick" } else { "" };
    let mut path = dir.join(format!("{day}{suffix}.json"));
    let mut i = 2;
    while path.exists() {
        path = dir.join(format!("{day}{suffix}-{i}.json"));
        i += 1;
    }
    std::fs::write(&path, serde_json::to_string_pretty(r)? + "\n")?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn rounds_merge_to_their_median_and_keep_every_value() {
        let round = |a: Option<f64>, b: f64| {
            vec![
                Measure::new("push", "MB/s", true, a),
                Measure::new("get", "p99 ms", false, Some(b)),
            ]
        };
        let one = merge_rounds(vec![round(Some(3.0), 1.0)]);
        assert_eq!(one[0].value, Some(3.0));
        let merged = merge_rounds(vec![
            round(Some(5.0), 4.0),
            round(None, 1.0),
            round(Some(1.0), 2.0),
            round(Some(2.0), 3.0),
        ]);
        assert_eq!(merged.len(), 2);
        // Rounds where nothing succeeded do not count: median of 5, 1, 2.
        assert_eq!(merged[0].value, Some(2.0));
        assert_eq!(merged[1].value, Some(2.5));
        assert_eq!(
            merged[0].detail["rounds"],
            serde_json::json!([5.0, null, 1.0, 2.0])
        );
        assert!(merge_rounds(vec![round(None, 1.0), round(None, 2.0)])[0]
            .value
            .is_none());
    }

    fn run(kind: Kind, v: f64) -> TargetRun {
        TargetRun {
            kind,
            version: "v".into(),
            measures: vec![
                Measure::new("push", "MB/s", true, Some(v)),
                Measure::new("get", "p99 ms", false, Some(v)),
            ],
            workloads: vec![],
        }
    }

    #[test]
    fn ratios_and_winner() {
        let rs = rows(&[run(Kind::Reference, 100.0), run(Kind::Ocireg, 250.0)]);
        assert_eq!(rs.len(), 2);
        assert!((rs[0].ratio.unwrap() - 2.5).abs() < 1e-9);
        assert_eq!(better(&rs[0]), "ocireg 2.50×");
        assert_eq!(better(&rs[1]), "reference 2.50×");
        let one = rows(&[run(Kind::Reference, 100.0)]);
        assert!(one[0].ratio.is_none());
        assert_eq!(better(&one[0]), "—");
    }

    #[test]
    fn markdown_has_machine_command_and_rows() {
        let targets = vec![run(Kind::Reference, 100.0), run(Kind::Ocireg, 250.0)];
        let rep = Report {
            date: "2026-01-01T00:00:00Z".into(),
            command: "bench/run.sh".into(),
            machine: Machine {
                nproc: 2,
                cpu: "CPU X".into(),
                memory_mib: 1024,
                kernel: "Linux 6".into(),
                storage_fs: "ext4".into(),
            },
            load_average: ["1.00 1.00 1.00".into(), "2.00 2.00 2.00".into()],
            plan: crate::cli::Args::parse_from(["bench", "--quick"])
                .plan()
                .unwrap(),
            rows: rows(&targets),
            targets,
        };
        let md = markdown(&rep);
        assert!(md.contains("2 × CPU X"));
        assert!(md
            .contains("Load average (1/5/15 min) before / after: 1.00 1.00 1.00 / 2.00 2.00 2.00"));
        assert!(md.contains("Command: `bench/run.sh` (quick mode)"));
        assert!(md.contains("| push | MB/s ↑ | 100 | 250 | 2.50 | ocireg 2.50× |"));
    }

    #[test]
    fn numbers() {
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(3.0), "3");
    }
}
