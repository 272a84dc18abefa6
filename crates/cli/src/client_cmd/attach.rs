//! `ocireg attach --artifact-type TYPE SUBJECT FILE...` (a manifest that refers to SUBJECT, as
//! `oras attach` makes) and `ocireg discover REF` (the referrers tree, as `oras discover`).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use anyhow::Context;
use clap::Args;
use ocireg_client::workflow::{display_reference, push_files, FilesRequest};
use ocireg_client::Registry;
use ocireg_oci::{Descriptor, Digest, Reference, RepoName};
use serde_json::{json, Value};

use super::push::parse_annotations;
use super::refs::parse_ref;
use super::settings::Ctx;
use super::ui::{self, Ui};
use super::{ConnArgs, OutputArgs};
use crate::exit::{coded, Exit};

/// `ocireg attach --artifact-type TYPE SUBJECT FILE...`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:
  ocireg attach --artifact-type application/spdx+json team/app:1.2.0 sbom.spdx.json
  ocireg attach --artifact-type application/vnd.example.sig -a note=ci team/app:1.2.0 app.sig
  ocireg discover team/app:1.2.0")]
pub struct AttachArgs {
    /// The attachment's `artifactType`.
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: String,
    /// The manifest to attach to: `[registry/]namespace/repo[:tag][@digest]`.
    #[arg(value_name = "SUBJECT")]
    pub subject: String,
    /// Files, one layer each (titled with the file name).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Manifest annotation (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ocireg discover REF`.
#[derive(Args, Debug)]
#[command(after_help = "EXAMPLES:
  ocireg discover team/app:1.2.0
  ocireg discover team/app:1.2.0 --artifact-type application/spdx+json -q
  ocireg discover team/app:1.2.0 --json")]
pub struct DiscoverArgs {
    /// `[registry/]namespace/repo[:tag][@digest]`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Only referrers of this artifact type (at every level of the tree).
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: Option<String>,
    /// How many levels of referrers of referrers to follow (1: only direct referrers).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub depth: usize,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode (`-q`: the digests of the direct referrers).
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Runs `ocireg attach`.
pub(crate) async fn attach(ctx: &Ctx, a: AttachArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.subject).map_err(|e| coded(Exit::Usage, e))?;
    let annotations = parse_annotations(&a.annotations).map_err(|e| coded(Exit::Usage, e))?;
    if let Some(missing) = a.files.iter().find(|f| !f.exists()) {
        return Err(coded(
            Exit::Unreadable,
            anyhow::anyhow!("{} does not exist", missing.display()),
        ));
    }
    let (ep, reg) = ctx.connect(&r)?;
    let reference = r.reference();
    let shown = display_reference(&ep.host, r.repo(), &reference);
    let info = reg
        .head_manifest(r.repo(), &reference, &[])
        .await
        .with_context(|| format!("resolving {shown}"))?
        .ok_or_else(|| coded(Exit::NotFound, anyhow::anyhow!("{shown} not found")))?;
    let subject = Descriptor::new(info.media_type.clone(), info.digest.clone(), info.size);
    let req = FilesRequest {
        repo: r.repo().clone(),
        reference: None,
        artifact_type: a.artifact_type.clone(),
        files: a.files.clone(),
        annotations,
        subject: Some(subject),
        allow_overwrite: false,
        shown: format!("{}/{}", ep.host, r.repo()),
    };
    let report = push_files(&reg, &req, &ui).await?;
    let digest = report.digest.to_string();
    let attached = format!("{}@{digest}", req.shown);
    let json = json!({
        "reference": attached,
        "digest": digest,
        "size": report.size,
        "artifactType": a.artifact_type,
        "subject": { "reference": shown, "digest": info.digest.to_string(), "mediaType": info.media_type },
        "layers": report.layers,
        "blobsUploaded": report.blobs_uploaded,
    });
    let text = format!(
        "attached {attached}\nsubject: {}@{}\nartifactType: {}\nfiles: {}",
        req.shown,
        info.digest,
        a.artifact_type,
        report.layers.len()
    );
    ui.result(&json, &digest, &text);
    Ok(Exit::Ok.code())
}

/// The referrers of one manifest, each with its own referrers.
struct Node {
    desc: Descriptor,
    children: Vec<Node>,
}

type Walk<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Vec<Node>>> + Send + 'a>>;

/// The referrers of `digest` to `depth` levels, ordered by artifact type then digest; a manifest met twice is listed without its
/// referrers the second time (a cycle, or shared referrers).
fn walk<'a>(
    reg: &'a Registry,
    repo: &'a RepoName,
    digest: &'a Digest,
    filter: Option<&'a str>,
    depth: usize,
    seen: &'a mut BTreeSet<Digest>,
) -> Walk<'a> {
    Box::pin(async move {
        let mut list = reg
            .referrers(repo, digest, filter)
            .await
            .with_context(|| format!("listing the referrers of {digest}"))?;
        // Registries list referrers in no particular order; the tree is printed in a stable one.
        list.sort_by(|a, b| {
            (a.artifact_type.as_deref(), a.digest.to_string())
                .cmp(&(b.artifact_type.as_deref(), b.digest.to_string()))
        });
        let mut out = Vec::with_capacity(list.len());
        for desc in list {
            let children = if depth > 1 && seen.insert(desc.digest.clone()) {
                walk(reg, repo, &desc.digest, filter, depth - 1, seen).await?
            } else {
                Vec::new()
            };
            out.push(Node { desc, children });
        }
        Ok(out)
    })
}

fn node_json(n: &Node) -> Value {
    let mut v = serde_json::to_value(&n.desc).unwrap_or(Value::Null);
    v["referrers"] = Value::Array(n.children.iter().map(node_json).collect());
    v
}

fn node_text(nodes: &[Node], prefix: &str, out: &mut Vec<String>) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let (branch, more) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let kind = n.desc.artifact_type.as_deref().unwrap_or("-");
        out.push(format!(
            "{prefix}{branch}{kind} {} ({})",
            n.desc.digest,
            ui::human(n.desc.size)
        ));
        node_text(&n.children, &format!("{prefix}{more}"), out);
    }
}

/// Runs `ocireg discover`.
pub(crate) async fn discover(ctx: &Ctx, a: DiscoverArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_ref(&a.reference).map_err(|e| coded(Exit::Usage, e))?;
    let (ep, reg) = ctx.connect(&r)?;
    let reference = r.reference();
    let shown = display_reference(&ep.host, r.repo(), &reference);
    let digest = match &reference {
        Reference::Digest(d) => d.clone(),
        Reference::Tag(_) => {
            reg.head_manifest(r.repo(), &reference, &[])
                .await
                .with_context(|| format!("resolving {shown}"))?
                .ok_or_else(|| coded(Exit::NotFound, anyhow::anyhow!("{shown} not found")))?
                .digest
        }
    };
    let mut seen = BTreeSet::from([digest.clone()]);
    let filter = a.artifact_type.as_deref();
    let tree = walk(&reg, r.repo(), &digest, filter, a.depth.max(1), &mut seen).await?;
    let root = format!("{}/{}@{digest}", ep.host, r.repo());
    let json = json!({
        "reference": root,
        "digest": digest.to_string(),
        "referrers": tree.iter().map(node_json).collect::<Vec<_>>(),
    });
    let quiet: Vec<String> = tree.iter().map(|n| n.desc.digest.to_string()).collect();
    let mut text = vec![root];
    if tree.is_empty() {
        text.push("(no referrers)".to_owned());
    }
    node_text(&tree, "", &mut text);
    ui.result(&json, &quiet.join("\n"), &text.join("\n"));
    Ok(Exit::Ok.code())
}
