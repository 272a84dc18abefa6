//! Credentials: lookup in order (1) the config (`username` + `password_path`, or
//! `auth_token_path`) for the configured registry, (2) our credentials file
//! (`$OCIREG_CREDENTIALS`, else `~/.provisioning/oci-registry/credentials.json`), (3) Docker's
//! `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): its credential
//! helper for the host (`credHelpers.<host>`, else `credsStore`: `docker-credential-<name> get`
//! per the docker-credential-helpers protocol), else `auths.<host>.auth` (base64 `user:pass`) or
//! `identitytoken`. An identity token (a helper's `<token>` user name) is sent like Docker's
//! `identitytoken` entries, as the password of the user `<token>`.
//!
//! Our file uses Docker's layout, `{"auths": {"host:port": {"auth": "<base64 user:pass>"}}}`,
//! is written with mode 0600 through a temporary file, fsync and rename, and its directory
//! is created with mode 0700.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine;
use ocireg_client::Credentials;
use ocireg_config::{expand_home, Document};
use serde_json::{Map, Value};

use super::settings::normalize_host;

/// Environment variable naming the credentials file.
pub(crate) const CREDENTIALS_ENV: &str = "OCIREG_CREDENTIALS";
/// Default credentials file.
pub(crate) const DEFAULT_CREDENTIALS: &str = "~/.provisioning/oci-registry/credentials.json";

/// Where our credentials file is.
pub(crate) fn credentials_path() -> PathBuf {
    match std::env::var_os(CREDENTIALS_ENV).filter(|v| !v.is_empty()) {
        Some(p) => expand_home(&p.to_string_lossy()),
        None => expand_home(DEFAULT_CREDENTIALS),
    }
}

fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(d) => expand_home(&d.to_string_lossy()).join("config.json"),
        None => expand_home("~/.docker/config.json"),
    }
}

fn read_secret(path: &str, field: &str) -> anyhow::Result<String> {
    let p = expand_home(path);
    let text = fs::read_to_string(&p)
        .with_context(|| format!("reading registry.{field} {}", p.display()))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        bail!("registry.{field} {} is empty", p.display());
    }
    Ok(secret)
}

/// Reads a JSON file; a missing file is an empty object.
fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Value::Null),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Reads a JSON file into its `auths` map; a missing file is an empty map.
fn read_auths(path: &Path) -> anyhow::Result<Map<String, Value>> {
    Ok(auths_of(&read_json(path)?))
}

fn auths_of(v: &Value) -> Map<String, Value> {
    v.get("auths")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The credential helper Docker's config names for `host`: `credHelpers.<host>`, else
/// `credsStore`.
fn helper_for(docker: &Value, host: &str) -> Option<String> {
    let per_host = docker
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| normalize_host(k) == host)
                .map(|(_, v)| v)
        })
        .and_then(Value::as_str);
    per_host
        .or_else(|| docker.get("credsStore").and_then(Value::as_str))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// What a helper's `get` printed: `{"Username", "Secret"}`; the user `<token>` marks an identity
/// token, kept as that user's password (as Docker's `identitytoken` entries are).
fn parse_helper_output(out: &[u8]) -> anyhow::Result<Option<Credentials>> {
    let v: Value = serde_json::from_slice(out).context("its answer is not JSON")?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (username, password) = (field("Username"), field("Secret"));
    if password.is_empty() {
        return Ok(None);
    }
    let username = if username.is_empty() {
        "<token>".to_owned()
    } else {
        username
    };
    Ok(Some(Credentials::Basic { username, password }))
}

/// The helpers' answer when they hold nothing for the server (exit status 1).
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// Runs `docker-credential-<name> get` with `host` on stdin. `None` when the helper holds
/// nothing for it, or cannot be run (then a warning says why: Docker's config is shared with
/// other tools, and anonymous access may still do).
fn run_helper(name: &str, host: &str) -> Option<Credentials> {
    use std::process::{Command, Stdio};
    let program = format!("docker-credential-{name}");
    let child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let result = child.and_then(|mut c| {
        if let Some(mut stdin) = c.stdin.take() {
            stdin.write_all(host.as_bytes())?;
        }
        c.wait_with_output()
    });
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            tracing::warn!("credential helper {program} (Docker config) cannot run: {e}");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if !stdout.contains(HELPER_NOT_FOUND) {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = format!("{} {}", stdout.trim(), said.trim());
            tracing::warn!(
                "credential helper {program} failed for {host}: {}",
                said.trim()
            );
        }
        return None;
    }
    match parse_helper_output(&out.stdout) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("credential helper {program} for {host}: {e:#}");
            None
        }
    }
}

/// Credentials for `host` from Docker's config: its helper, else its `auths` entry.
fn docker_lookup(path: &Path, host: &str) -> anyhow::Result<Option<Credentials>> {
    let docker = read_json(path)?;
    if let Some(name) = helper_for(&docker, host) {
        if let Some(c) = run_helper(&name, host) {
            tracing::debug!(host, helper = %name, "using credentials from a helper");
            return Ok(Some(c));
        }
    }
    Ok(find_entry(&auths_of(&docker), host).and_then(entry_credentials))
}

/// Credentials of one `auths` entry: `auth` (base64 `user:pass`), `username`/`password`, or
/// `identitytoken` (sent as the password, user from `auth` or `<token>`).
fn entry_credentials(entry: &Value) -> Option<Credentials> {
    let mut user = None;
    let mut pass = None;
    if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        user = Some(u.to_owned());
        pass = Some(p.to_owned());
    }
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        user = Some(u.to_owned());
        pass = Some(p.to_owned());
    }
    if let Some(tok) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Some(Credentials::Basic {
            username: user.unwrap_or_else(|| "<token>".to_owned()),
            password: tok.to_owned(),
        });
    }
    match (user, pass) {
        (Some(username), Some(password)) if !username.is_empty() => {
            Some(Credentials::Basic { username, password })
        }
        _ => None,
    }
}

/// The entry of `auths` for `host`; keys are compared after dropping scheme and path.
fn find_entry<'a>(auths: &'a Map<String, Value>, host: &str) -> Option<&'a Value> {
    auths
        .iter()
        .find(|(k, _)| normalize_host(k) == host)
        .map(|(_, v)| v)
}

/// The credentials to use for `host` (see the module docs for the order).
pub(crate) fn lookup(
    doc: &Document,
    host: &str,
    is_configured: bool,
) -> anyhow::Result<Credentials> {
    if is_configured {
        let r = &doc.registry;
        if let (Some(user), Some(pw)) = (&r.username, &r.password_path) {
            return Ok(Credentials::Basic {
                username: user.clone(),
                password: read_secret(pw, "password_path")?,
            });
        }
        if let Some(tok) = &r.auth_token_path {
            return Ok(Credentials::Bearer(read_secret(tok, "auth_token_path")?));
        }
    }
    let ours = credentials_path();
    if let Some(c) = find_entry(&read_auths(&ours)?, host).and_then(entry_credentials) {
        tracing::debug!(host, file = %ours.display(), "using stored credentials");
        return Ok(c);
    }
    Ok(docker_lookup(&docker_config_path(), host)?.unwrap_or(Credentials::Anonymous))
}

/// Writes `auths` to our credentials file atomically with mode 0600.
fn write_auths(path: &Path, auths: Map<String, Value>) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut root = Map::new();
    root.insert("auths".into(), Value::Object(auths));
    let body = serde_json::to_vec_pretty(&Value::Object(root))?;
    // NamedTempFile is created with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".credentials-")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))
            .context("setting credentials file mode")?;
    }
    tmp.write_all(&body)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all().context("syncing credentials")?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Stores `username`/`password` for `host` in our credentials file.
pub(crate) fn store(host: &str, username: &str, password: &str) -> anyhow::Result<PathBuf> {
    let path = credentials_path();
    let mut auths = read_auths(&path)?;
    auths.retain(|k, _| normalize_host(k) != host);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut entry = Map::new();
    entry.insert("auth".into(), Value::from(auth));
    auths.insert(host.to_owned(), Value::Object(entry));
    write_auths(&path, auths)?;
    Ok(path)
}

/// Removes `host` from our credentials file; `false` when it had no entry.
pub(crate) fn remove(host: &str) -> anyhow::Result<(bool, PathBuf)> {
    let path = credentials_path();
    let mut auths = read_auths(&path)?;
    let before = auths.len();
    auths.retain(|k, _| normalize_host(k) != host);
    if auths.len() == before {
        return Ok((false, path));
    }
    write_auths(&path, auths)?;
    Ok((true, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_entries() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:pw:with:colons");
        let c = entry_credentials(&json!({ "auth": b64 })).unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "alice".into(),
                password: "pw:with:colons".into()
            }
        );
        let c = entry_credentials(&json!({ "identitytoken": "tok" })).unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "<token>".into(),
                password: "tok".into()
            }
        );
        assert!(entry_credentials(&json!({ "auth": "!!" })).is_none());
        assert!(entry_credentials(&json!({})).is_none());
    }

    #[test]
    fn helpers_per_host_win_over_the_store() {
        let docker = json!({"credsStore": "desktop", "credHelpers": {"reg.example:5000": "pass"}});
        assert_eq!(
            helper_for(&docker, "reg.example:5000").as_deref(),
            Some("pass")
        );
        assert_eq!(
            helper_for(&docker, "other.example").as_deref(),
            Some("desktop")
        );
        assert_eq!(helper_for(&json!({"auths": {}}), "reg.example"), None);
    }

    #[test]
    fn helper_answers() {
        let c = parse_helper_output(br#"{"ServerURL":"r","Username":"bob","Secret":"pw"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "bob".into(),
                password: "pw".into()
            }
        );
        let c = parse_helper_output(br#"{"Username":"<token>","Secret":"tok"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "<token>".into(),
                password: "tok".into()
            }
        );
        assert!(parse_helper_output(br#"{"Username":"bob","Secret":""}"#)
            .unwrap()
            .is_none());
        assert!(parse_helper_output(b"not json").is_err());
    }

    #[test]
    fn entries_match_by_host() {
        let auths = json!({"https://Reg.Example:5000/v1/": {"auth": "x"}});
        let auths = auths.as_object().unwrap();
        assert!(find_entry(auths, "reg.example:5000").is_some());
        assert!(find_entry(auths, "reg.example").is_none());
    }
}
