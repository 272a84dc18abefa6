//! Credentials: lookup in order (1) the config (`username` + `password_path`, or
//! `auth_token_path`) for the configured registry, (2) our credentials file
//! (`$OCIREG_CREDENTIALS`, else `~/.provisioning/oci-registry/credentials.json`), (3) Docker's
//! `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `auths.<host>.auth`
//! (base64 `user:pass`) or `identitytoken`.
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

/// Reads a JSON file into its `auths` map; a missing file is an empty map.
fn read_auths(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let v: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(v.get("auths")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default())
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
    for path in [credentials_path(), docker_config_path()] {
        let auths = read_auths(&path)?;
        if let Some(c) = find_entry(&auths, host).and_then(entry_credentials) {
            tracing::debug!(host, file = %path.display(), "using stored credentials");
            return Ok(c);
        }
    }
    Ok(Credentials::Anonymous)
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
    fn entries_match_by_host() {
        let auths = json!({"https://Reg.Example:5000/v1/": {"auth": "x"}});
        let auths = auths.as_object().unwrap();
        assert!(find_entry(auths, "reg.example:5000").is_some());
        assert!(find_entry(auths, "reg.example").is_none());
    }
}
