//! `ocireg login [REGISTRY] -u USER [--password-stdin]`, `ocireg logout [REGISTRY]`, and the
//! credentials of `-u` on any client command: the password from standard input
//! (`--password-stdin`), else asked on the terminal without echo.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::Context;
use ocireg_client::{Credentials, Registry};
use rustix::termios::{self, LocalModes, OptionalActions};
use serde_json::json;

use super::creds;
use super::settings::Ctx;
use super::ui::Ui;
use super::{ConnArgs, LoginArgs, LogoutArgs};
use crate::exit::{coded, Exit};

/// Turns terminal echo off until dropped (then restores the saved modes).
struct NoEcho {
    saved: termios::Termios,
}

impl NoEcho {
    fn new(tty: &std::io::Stdin) -> std::io::Result<NoEcho> {
        let saved = termios::tcgetattr(tty)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // The line feed the user types is still echoed, so the next output starts a new line.
        quiet.local_modes.insert(LocalModes::ECHONL);
        termios::tcsetattr(tty, OptionalActions::Flush, &quiet)?;
        Ok(NoEcho { saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Writes `prompt` on stderr and reads one line from the terminal on stdin, echoed or not.
fn ask(prompt: &str, echo: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let guard = if echo {
        None
    } else {
        Some(NoEcho::new(&stdin).context("turning terminal echo off")?)
    };
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading from the terminal")?;
    drop(guard);
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// A usage error (exit 2) with `message`.
fn usage(message: &str) -> anyhow::Error {
    coded(Exit::Usage, anyhow::anyhow!("{message}"))
}

/// The credentials `-u USER` (and `--password-stdin`) give this run; `None` without `-u`.
/// `login` must have credentials: without `-u` it asks for the user name on a terminal.
pub(crate) fn flag_credentials(
    conn: &ConnArgs,
    for_login: bool,
) -> anyhow::Result<Option<Credentials>> {
    let terminal = std::io::stdin().is_terminal();
    let username = match &conn.username {
        Some(u) => u.clone(),
        None if conn.password_stdin => return Err(usage("--password-stdin needs -u USER")),
        None if !for_login => return Ok(None),
        None if terminal => ask("Username: ", true)?,
        None => return Err(usage("login needs a user name: -u USER")),
    };
    if username.is_empty() || username.contains(':') {
        return Err(usage(
            "the user name must be non-empty and must not contain ':'",
        ));
    }
    let password = if conn.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
        text.trim_end_matches(['\r', '\n']).to_owned()
    } else if terminal {
        ask("Password: ", false)?
    } else {
        return Err(usage(
            "no password: give it on standard input with --password-stdin (standard input is not a terminal to ask on)",
        ));
    };
    if password.is_empty() {
        return Err(usage("empty password"));
    }
    Ok(Some(Credentials::Basic { username, password }))
}

/// Runs `ocireg login`: checks the credentials against the registry (`GET /v2/`) unless
/// `--no-verify`, then stores them.
pub(crate) async fn login(ctx: &Ctx, a: LoginArgs) -> anyhow::Result<i32> {
    let ui = Ui::new(a.out);
    let Some(Credentials::Basic { username, password }) = ctx.credentials.clone() else {
        return Err(usage("login needs a user name: -u USER"));
    };
    let ep = ctx.configured();
    if ep.host.is_empty() {
        return Err(usage("no registry given"));
    }
    if !a.no_verify {
        let reg = Registry::new(
            &ep.base_url(),
            Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            ctx.options.clone(),
        )?;
        reg.ping()
            .await
            .with_context(|| format!("logging in to {}", ep.host))?;
    }
    let path = creds::store(&ep.host, &username, &password)?;
    let json = json!({
        "registry": ep.host,
        "username": username,
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
    let host = ctx.configured().host;
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
