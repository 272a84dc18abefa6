//! `ocireg manifest get REF` (the manifest's exact bytes) and `ocireg blob get REPO@DIGEST -o
//! FILE|-` (a blob streamed and verified).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ocireg_client::workflow::display_reference;
use ocireg_oci::Reference;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::refs::parse_ref;
use super::settings::Ctx;
use super::ui::{self, Ui};
use super::{ConnArgs, OutputArgs};
use crate::exit::{coded, Exit};

/// `ocireg manifest ...`.
#[derive(Subcommand, Debug)]
pub enum ManifestCmd {
    /// Print a manifest exactly as the registry serves it (or pretty, or its descriptor).
    #[command(after_help = "EXAMPLES:
  ocireg manifest get team/app:1.2.0 > manifest.json
  ocireg manifest get team/app:1.2.0 --pretty
  ocireg manifest get team/app:1.2.0 --descriptor")]
    Get(ManifestGetArgs),
}

/// `ocireg manifest get REF`.
#[derive(Args, Debug)]
pub struct ManifestGetArgs {
    /// `[registry/]namespace/repo[:tag][@digest]`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Indent the JSON (the bytes then differ from the digested ones).
    #[arg(long, conflicts_with = "descriptor")]
    pub pretty: bool,
    /// Print the manifest's descriptor (mediaType, digest, size) instead of the manifest.
    #[arg(long)]
    pub descriptor: bool,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode (`--json`: the descriptor and the parsed manifest in one object).
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg blob ...`.
#[derive(Subcommand, Debug)]
pub enum BlobCmd {
    /// Download a blob, verified against its digest while it streams.
    #[command(after_help = "EXAMPLES:
  ocireg blob get team/app@sha256:<hex> -o layer.tar
  ocireg blob get team/app@sha256:<hex> -o - | tar -t")]
    Get(BlobGetArgs),
}

/// `ocireg blob get REPO@DIGEST -o FILE|-`.
#[derive(Args, Debug)]
pub struct BlobGetArgs {
    /// `[registry/]namespace/repo@digest`.
    #[arg(value_name = "REPO@DIGEST")]
    pub reference: String,
    /// Where to write it: a file (written whole once verified), or `-` for stdout.
    #[arg(long, short = 'o', value_name = "FILE|-")]
    pub output: PathBuf,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode (about the download; the blob itself goes to FILE).
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Runs `ocireg manifest get`.
pub(crate) async fn manifest_get(ctx: &Ctx, a: ManifestGetArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference).map_err(|e| coded(Exit::Usage, e))?;
    let (ep, reg) = ctx.connect(&r)?;
    let reference = r.reference();
    let shown = display_reference(&ep.host, r.repo(), &reference);
    let m = reg
        .get_manifest(r.repo(), &reference, &[])
        .await
        .with_context(|| format!("fetching {shown}"))?;
    let descriptor = json!({
        "mediaType": m.media_type,
        "digest": m.digest.to_string(),
        "size": m.bytes.len(),
    });
    if ui.json {
        let manifest: Value = serde_json::from_slice(&m.bytes).unwrap_or(Value::Null);
        let mut obj = descriptor;
        obj["reference"] = json!(shown);
        obj["manifest"] = manifest;
        ui.result(&obj, "", "");
        return Ok(Exit::Ok.code());
    }
    let mut out = Vec::new();
    if a.descriptor {
        out = serde_json::to_vec_pretty(&descriptor)?;
        out.push(b'\n');
    } else if a.pretty {
        let v: Value = serde_json::from_slice(&m.bytes).context("the manifest is not JSON")?;
        out = serde_json::to_vec_pretty(&v)?;
        out.push(b'\n');
    } else {
        out.extend_from_slice(&m.bytes);
    }
    let mut stdout = tokio::io::stdout();
    stdout.write_all(&out).await.context("writing to stdout")?;
    stdout.flush().await.context("writing to stdout")?;
    Ok(Exit::Ok.code())
}

/// Runs `ocireg blob get`.
pub(crate) async fn blob_get(ctx: &Ctx, a: BlobGetArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference).map_err(|e| coded(Exit::Usage, e))?;
    let Some(digest) = r.parsed.digest().cloned() else {
        return Err(coded(
            Exit::Usage,
            anyhow::anyhow!("{:?} names no blob: expected REPO@DIGEST", a.reference),
        ));
    };
    let to_stdout = a.output.as_os_str() == "-";
    if to_stdout && ui.json {
        return Err(coded(
            Exit::Usage,
            anyhow::anyhow!("--json cannot share stdout with the blob (-o -)"),
        ));
    }
    let (ep, reg) = ctx.connect(&r)?;
    let shown = display_reference(&ep.host, r.repo(), &Reference::Digest(digest.clone()));
    let size = if to_stdout {
        let mut stdout = tokio::io::stdout();
        reg.pull_blob(r.repo(), &digest, &mut stdout)
            .await
            .with_context(|| format!("downloading {shown}"))?
    } else {
        ui.status(&format!("downloading {shown} ..."));
        reg.pull_blob_to_file(r.repo(), &digest, &a.output)
            .await
            .with_context(|| format!("downloading {shown}"))?
    };
    if to_stdout {
        return Ok(Exit::Ok.code());
    }
    let json = json!({
        "reference": shown,
        "digest": digest.to_string(),
        "size": size,
        "output": a.output.display().to_string(),
    });
    let text = format!(
        "wrote {} ({}, {digest})",
        a.output.display(),
        ui::human(size)
    );
    ui.result(&json, &digest.to_string(), &text);
    Ok(Exit::Ok.code())
}
