//! `ocireg repo delete REPO [--yes]`: delete every tag and manifest of a repository, after a
//! confirmation (asked on a terminal; required as `--yes` elsewhere).

use std::io::{BufRead, IsTerminal, Write};

use clap::{Args, Subcommand};
use ocireg_client::workflow::{delete_repository, repo_contents};
use serde_json::json;

use super::refs::parse_repo;
use super::settings::Ctx;
use super::ui::Ui;
use super::{ConnArgs, OutputArgs};
use crate::exit::{coded, Exit};

/// `ocireg repo ...`.
#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// Delete a whole repository: every tag and every manifest they reach (with referrers).
    #[command(after_help = "EXAMPLES:
  ocireg repo delete team/app              # asks for confirmation on a terminal
  ocireg repo delete team/app --yes        # scripts must say --yes
  ocireg repo delete 127.0.0.1:5000/team/app --yes --json")]
    Delete(RepoDeleteArgs),
}

/// `ocireg repo delete REPO`.
#[derive(Args, Debug)]
pub struct RepoDeleteArgs {
    /// `[registry/]namespace/repo`.
    #[arg(value_name = "REPO")]
    pub repo: String,
    /// Delete without asking (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Connection.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Output mode.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Asks on the terminal; true for `y` or `yes`.
fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Runs `ocireg repo delete`.
pub(crate) async fn delete(ctx: &Ctx, a: RepoDeleteArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let r = parse_repo(&a.repo).map_err(|e| coded(Exit::Usage, e))?;
    if !a.yes && !std::io::stdin().is_terminal() {
        return Err(coded(
            Exit::Usage,
            anyhow::anyhow!(
                "refusing to delete repository {} without --yes (standard input is not a terminal to ask on)",
                r.repo()
            ),
        ));
    }
    let (ep, reg) = ctx.connect(&r)?;
    let shown = format!("{}/{}", ep.host, r.repo());
    let contents = repo_contents(&reg, r.repo()).await?;
    if contents.tags.is_empty() && contents.manifests.is_empty() {
        return Err(coded(
            Exit::NotFound,
            anyhow::anyhow!("repository {shown} has no tags"),
        ));
    }
    if !a.yes {
        let q = format!(
            "delete repository {shown}: {} tags, {} manifests?",
            contents.tags.len(),
            contents.manifests.len()
        );
        let yes = tokio::task::block_in_place(|| confirm(&q))?;
        if !yes {
            eprintln!("not deleted");
            return Ok(Exit::Failed.code());
        }
    }
    let deleted = delete_repository(&reg, r.repo(), &contents, &ui).await?;
    let json = json!({
        "repository": shown,
        "tags": contents.tags,
        "manifestsDeleted": deleted,
        "digests": contents.manifests.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    let text = format!(
        "deleted repository {shown}: {} tags, {deleted} manifests",
        contents.tags.len()
    );
    ui.result(&json, &shown, &text);
    Ok(Exit::Ok.code())
}
