//! `ocireg login [REGISTRY] -u USER --password-stdin` and `ocireg logout [REGISTRY]`.

use std::io::Read;

use anyhow::{bail, Context};
use ocireg_client::{Credentials, Registry};
use serde_json::json;

use super::creds;
use super::settings::{normalize_host, Ctx};
use super::ui::Ui;
use super::{LoginArgs, LogoutArgs};

/// Runs `ocireg login`: checks the credentials against the registry (`GET /v2/`) unless
/// `--no-verify`, then stores them.
pub(crate) async fn login(ctx: &Ctx, a: LoginArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    if !a.password_stdin {
        bail!("give the password on standard input with --password-stdin");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("empty password on standard input");
    }
    if a.username.is_empty() || a.username.contains(':') {
        bail!("the user name must be non-empty and must not contain ':'");
    }
    let ep = ctx.endpoint_arg(a.registry.as_deref());
    if ep.host.is_empty() {
        bail!("no registry given");
    }
    if !a.no_verify {
        let reg = Registry::new(
            &ep.base_url(),
            Credentials::Basic {
                username: a.username.clone(),
                password: password.clone(),
            },
            ctx.options.clone(),
        )?;
        reg.ping()
            .await
            .with_context(|| format!("logging in to {}", ep.host))?;
    }
    let path = creds::store(&ep.host, &a.username, &password)?;
    let json = json!({
        "registry": ep.host,
        "username": a.username,
        "credentials": path.display().to_string(),
    });
    ui.result(
        &json,
        "",
        &format!(
            "login succeeded for {} (stored in {})",
            ep.host,
            path.display()
        ),
    );
    Ok(0)
}

/// Runs `ocireg logout`: removes the registry's entry from our credentials file (Docker's file
/// is never modified).
pub(crate) fn logout(ctx: &Ctx, a: LogoutArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let host = match a.registry.as_deref() {
        Some(r) => normalize_host(r),
        None => ctx.configured().host,
    };
    let (removed, path) = creds::remove(&host)?;
    let json = json!({
        "registry": host,
        "removed": removed,
        "credentials": path.display().to_string(),
    });
    let text = if removed {
        format!("removed the credentials for {host} from {}", path.display())
    } else {
        format!("no stored credentials for {host} in {}", path.display())
    };
    ui.result(&json, "", &text);
    Ok(0)
}
