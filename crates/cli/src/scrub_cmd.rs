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

use anyhow::{bail, Context};
use ocireg_store::{ScrubOptions, ScrubReport, Store, StoreOptions};

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
    let doc = match crate::config_cmd::load_document(config) {
        Ok(doc) => doc,
        Err(err) => bail!("invalid config:\n{err}"),
    };
    let opts = match &doc.registry.local {
        Some(local) => crate::serve::scrub::scrub_options(local)?,
        None => ScrubOptions::default(),
    };
    let plan = ocireg_deploy::LocalPlan::from_registry(
        &doc.registry,
        &ocireg_deploy::RenderOptions::default(),
    );
    let configured_root = plan.as_ref().ok().map(|p| p.settings.root_dir.clone());
    let dedupe = plan
        .as_ref()
        .map_or(true, |p| p.settings.storage.dedupe_enabled);
    let ask_server = match (&args.root, &configured_root) {
        (Some(root), Some(conf)) => crate::admin_call::same_dir(root, conf),
        (Some(_), None) => false,
        (None, _) => true,
    };
    let served = if ask_server {
        let rate = (opts.rate_bytes_per_sec >> 20).to_string();
        crate::admin_call::call_local(&doc, "POST", "scrub", &[("rate_mb", rate.as_str())])?
    } else {
        None
    };
    let (report, where_) = match served {
        Some(answer) => {
            let report: ScrubReport = serde_json::from_value(answer)
                .context("the server's scrub report has an unexpected shape")?;
            let url = plan
                .as_ref()
                .map(|p| p.settings.probe_url.trim_end_matches("/v2/").to_owned())
                .unwrap_or_default();
            (report, format!("the running registry at {url}"))
        }
        None => {
            let root = match (&args.root, &configured_root) {
                (Some(r), _) | (None, Some(r)) => r.clone(),
                (None, None) => bail!("no storage root: pass --root DIR"),
            };
            let report = in_process(&root, dedupe, &opts)?;
            (report, format!("storage {} (in-process)", root.display()))
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report, &where_);
    }
    Ok(if report.findings.is_empty() && report.errors.is_empty() {
        0
    } else {
        1
    })
}

fn in_process(root: &Path, dedupe: bool, opts: &ScrubOptions) -> anyhow::Result<ScrubReport> {
    if !root.is_dir() {
        bail!("storage root {} does not exist", root.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::open_filesystem(
            root,
            StoreOptions {
                dedupe,
                ..StoreOptions::default()
            },
        )
        .await
        .with_context(|| format!("opening storage at {}", root.display()))?;
        store.scrub(opts).await.context("scrub")
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
