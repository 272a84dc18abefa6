//! `ocireg scrub [--root DIR] [--json]`: re-hash every stored object now and quarantine the
//! corrupt ones.
//!
//! When the local built-in registry answers on its configured address, the run happens in the
//! server (`POST /v2/_ocireg/scrub`, admin credentials from the config or the login store): it
//! owns the storage, its index and caches. When nothing listens there, the storage root
//! (`--root`, else the configured one) is opened in-process; no server may be serving that
//! root meanwhile. With `--root` naming another directory than the configured root, the run is
//! always in-process. The read rate is `registry.local.ops_config.scrub_rate_mb`.
//!
//! Exit status: 0 nothing found, 1 objects were quarantined (or could not be).

use std::path::{Path, PathBuf};

use anyhow::Context;
use ocireg_store::ScrubReport;

/// Flags of `ocireg scrub`.
#[derive(clap::Args, Debug)]
pub struct ScrubArgs {
    /// Storage root to scrub in-process (default: the configured local registry's root).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `ocireg scrub`.
pub fn run(args: ScrubArgs, config: Option<&Path>) -> anyhow::Result<i32> {
    let doc = crate::config_cmd::load_valid_document(config)?;
    let opts = ocireg_engine::scrub_options(&ocireg_config::ScrubView::resolve(&doc.registry)?);
    let rate = (opts.rate_bytes_per_sec >> 20).to_string();
    let query = [("rate_mb", rate.as_str())];
    let run_opts = opts.clone();
    let (report, where_): (ScrubReport, String) = crate::admin_call::run_operation(
        &doc,
        args.root.as_deref(),
        "scrub",
        &query,
        |store| async move { store.scrub(&run_opts).await.context("scrub") },
    )?;
    crate::admin_call::print_report(&report, args.json, |r| print_human(r, &where_))?;
    Ok(if report.findings.is_empty() && report.errors.is_empty() {
        0
    } else {
        1
    })
}

fn print_human(r: &ScrubReport, where_: &str) {
    println!("scrub on {where_}");
    println!(
        "  checked {} objects ({} bytes) in {} ms",
        r.objects_checked, r.bytes_checked, r.elapsed_ms
    );
    if r.findings.is_empty() {
        println!("  no corrupt objects");
    }
    for f in &r.findings {
        println!("  CORRUPT {} ({})", f.expected, f.problem);
        println!("    stored at   {}", f.key);
        match &f.quarantined_to {
            Some(to) => println!("    quarantined {to}"),
            None => println!("    NOT quarantined (see errors)"),
        }
        if f.repositories.is_empty() {
            println!("    repositories: none (unreferenced data)");
        } else {
            println!("    repositories: {}", f.repositories.join(", "));
        }
    }
    for e in &r.errors {
        println!("  error: {e}");
    }
}
