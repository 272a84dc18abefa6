//! `ocireg gc [--dry-run] [--delete-untagged] [--root DIR] [--json]`: garbage collection now.
//!
//! When the local built-in registry answers on its configured address, the run happens in the
//! server (`POST /v2/_ocireg/gc`, admin credentials from the config or the login store): it
//! owns the storage and its index. When nothing listens there, the storage root
//! (`--root`, else the configured one) is opened in-process and collected directly; no server
//! may be serving that root meanwhile. With `--root` naming another directory than the
//! configured root, the run is always in-process.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ocireg_store::{GcOptions, GcReport};

use ocireg_engine::{gc_options, gc_summary as summary};

/// Flags of `ocireg gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove manifests no tag reaches (default: ops_config.gc_delete_untagged).
    #[arg(long)]
    delete_untagged: bool,
    /// Storage root to collect in-process (default: the configured local registry's root).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `ocireg gc`.
pub fn run(args: GcArgs, config: Option<&Path>) -> anyhow::Result<i32> {
    let doc = crate::config_cmd::load_valid_document(config)?;
    let mut opts = gc_options(&ocireg_config::GcView::resolve(&doc.registry)?);
    opts.dry_run = args.dry_run;
    opts.delete_untagged |= args.delete_untagged;
    let dry = if opts.dry_run { "true" } else { "false" };
    let mut query = vec![("dry_run", dry)];
    if args.delete_untagged {
        query.push(("delete_untagged", "true"));
    }
    let run_opts = opts.clone();
    let (report, where_) = crate::admin_call::run_operation(
        &doc,
        args.root.as_deref(),
        "gc",
        &query,
        |store| async move { store.gc(&run_opts).await.context("garbage collection") },
    )?;
    crate::admin_call::print_report(&report, args.json, |r| print_human(r, &where_, &opts))?;
    Ok(if report.errors.is_empty() { 0 } else { 1 })
}

fn print_human(r: &GcReport, where_: &str, opts: &GcOptions) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "garbage collection{} on {where_}",
        if r.dry_run { " (dry run)" } else { "" }
    );
    println!(
        "  {verb} {} blobs ({}), {} blob links, {} manifests, {} upload sessions",
        r.blobs.len(),
        crate::lifecycle_cmd::human_bytes(r.bytes_freed),
        r.links.len(),
        r.manifests.len(),
        r.uploads.len()
    );
    println!(
        "  live: {} manifests, {} blob links; kept {} unreferenced objects younger than the grace period ({} s) or in use",
        r.live_manifests,
        r.live_links,
        r.kept_young,
        opts.grace_period.as_secs()
    );
    for e in &r.errors {
        println!("  error: {e}");
    }
    println!("  took {} ms", r.duration_ms);
    tracing::debug!(summary = %summary(r), "gc");
}
