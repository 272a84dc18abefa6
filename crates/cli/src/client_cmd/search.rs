//! `ocireg search QUERY [--tag T] [--annotation K=V] [--artifact-type T] [-n N [--last C]]`:
//! the search extension of an ocireg registry (`GET /v2/_ocireg/search`).

use anyhow::bail;
use clap::Args;
use ocireg_client::{SearchHit, SearchQuery};
use serde_json::json;

use super::settings::Ctx;
use super::ui::Ui;
use super::{ConnArgs, OutputArgs};

/// `ocireg search [QUERY] ...`.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Substring of the repository name (case-insensitive); omit to match every repository.
    #[arg(value_name = "QUERY")]
    pub query: Option<String>,
    /// Only manifests with this tag (a trailing `*` matches a prefix).
    #[arg(long, value_name = "T")]
    pub tag: Option<String>,
    /// Only manifests with this annotation: `KEY` (present) or `KEY=VALUE` (repeatable; all
    /// must match).
    #[arg(long = "annotation", short = 'a', value_name = "K[=V]")]
    pub annotations: Vec<String>,
    /// Only manifests of this artifact type (`artifactType`, else the config media type).
    #[arg(long, value_name = "T")]
    pub artifact_type: Option<String>,
    /// Show one page of at most N results (default: every result, following pagination).
    #[arg(short = 'n', long = "limit", alias = "n", value_name = "N")]
    pub n: Option<usize>,
    /// With -n: start after this cursor (printed as `more: --last ...`).
    #[arg(long, value_name = "CURSOR", requires = "n")]
    pub last: Option<String>,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

fn line(host: &str, h: &SearchHit) -> String {
    let mut s = format!("{host}/{}@{}", h.repository, h.digest);
    if !h.tags.is_empty() {
        s.push_str(&format!(" tags={}", h.tags.join(",")));
    }
    if let Some(t) = &h.artifact_type {
        s.push_str(&format!(" artifactType={t}"));
    }
    s.push_str(&format!(" size={}", h.size));
    s
}

/// Runs `ocireg search`.
pub(crate) async fn run(ctx: &Ctx, a: SearchArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let ep = ctx.configured();
    let reg = ctx.registry(&ep)?;
    let q = SearchQuery {
        name: a.query.clone(),
        tag: a.tag.clone(),
        annotations: a.annotations.clone(),
        artifact_type: a.artifact_type.clone(),
        n: a.n,
        last: a.last.clone(),
    };
    let result = match a.n {
        Some(_) => reg.search_page(&q).await.map(|p| (p.hits, p.next)),
        None => reg.search(&q).await.map(|hits| (hits, None)),
    };
    let (hits, next) = match result {
        Ok(found) => found,
        Err(e) if e.status() == Some(404) => {
            bail!(
                "{} has no search endpoint (not an ocireg registry, or search is disabled): {e}",
                ep.host
            )
        }
        Err(e) => return Err(anyhow::Error::from(e)),
    };
    let json = json!({
        "registry": ep.host,
        "results": hits,
        "more": next.is_some(),
        "next": next,
    });
    let quiet: Vec<String> = hits
        .iter()
        .map(|h| format!("{}/{}@{}", ep.host, h.repository, h.digest))
        .collect();
    let mut text: Vec<String> = hits.iter().map(|h| line(&ep.host, h)).collect();
    if let Some(next) = &next {
        text.push(format!("(more: --last {next})"));
    }
    ui.result(&json, &quiet.join("\n"), &text.join("\n"));
    Ok(0)
}
