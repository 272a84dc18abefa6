//! `ocireg gc [--dry-run] [--delete-untagged] [--uploads-older-than DURATION] [--root DIR]
//! [--json]`: garbage collection now, upload sessions idle longer than the upload expiry
//! (`limits_config.upload_session_ttl`, or the flag) included.
//!
//! When the local built-in registry answers on its configured address, the run happens in the
//! server (`POST /v2/_ocireg/gc`, admin credentials from the config or the login store): it
//! owns the storage and its index. When nothing listens there, the storage root
//! (`--root`, else the configured one) is opened in-process and collected directly; no server
//! may be serving that root meanwhile. With `--root` naming another directory than the
//! configured root, the run is always in-process.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Remove upload sessions idle this long, e.g. `0s`, `30m`, `7d` (default:
    /// limits_config.upload_session_ttl).
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    uploads_older_than: Option<Duration>,
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
    let ttl_secs;
    if let Some(age) = args.uploads_older_than {
        opts.upload_ttl = age;
        ttl_secs = age.as_secs().to_string();
        query.push(("uploads_older_than", &ttl_secs));
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
    let stale: u64 = r.uploads.iter().map(|u| u.bytes).sum();
    println!(
        "  upload sessions: {} found ({}); {verb} {} idle longer than {} ({}), {} left open",
        r.upload_sessions,
        crate::lifecycle_cmd::human_bytes(r.upload_session_bytes),
        r.uploads.len(),
        human_secs(r.upload_ttl_secs),
        crate::lifecycle_cmd::human_bytes(stale),
        r.upload_sessions.saturating_sub(r.uploads.len() as u64),
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

/// `--uploads-older-than`: a duration such as `0s`, `90m`, `24h`, `7d`.
/// Zero (`0`, `0s`, `0h`) is allowed here: it removes every session idle when the run starts.
fn parse_age(text: &str) -> Result<Duration, String> {
    let number = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !number.is_empty() && number.bytes().all(|b| b == b'0') && number != text.trim() {
        return ocireg_config::parse_duration(&text.replacen('0', "1", 1), "--uploads-older-than")
            .map(|_| Duration::ZERO)
            .map_err(|e| e.to_string());
    }
    ocireg_config::parse_duration(text, "--uploads-older-than").map_err(|e| e.to_string())
}

/// Seconds in the largest unit that divides them: `7d`, `24h`, `90m`, `0s`.
pub(crate) fn human_secs(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_print_in_their_largest_unit() {
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age("00h"), Ok(Duration::ZERO));
        assert!(parse_age("0x").is_err());
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_age("soon").is_err());
        assert_eq!(human_secs(604_800), "7d");
        assert_eq!(human_secs(86_400), "1d");
        assert_eq!(human_secs(5_400), "90m");
        assert_eq!(human_secs(0), "0s");
        assert_eq!(human_secs(61), "61s");
    }
}
