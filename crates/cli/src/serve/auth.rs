//! The effective auth settings (`registry.auth_required`, the seed's user fields,
//! `registry.local.auth_config`) → the server's [`ocireg_auth::Auth`] (files are read here; the
//! library never sees the config).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use ocireg_auth::{
    Acl, Auth, AuthOptions, Htpasswd, Principal, RepoPattern, Rule, Secret, SingleUser, TokenKey,
    TokenOptions,
};
use ocireg_config::{AccessRuleView, AuthView, MultiUserView};

const AUTH: &str = "registry.local.auth_config";

fn read_secret(path: &Path, what: &str) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        bail!("{what} {} is empty", path.display());
    }
    Ok(Secret::new(value))
}

/// The authenticator, or `None` when `auth_required` is false.
pub(super) fn auth(view: Option<&AuthView>) -> anyhow::Result<Option<Arc<Auth>>> {
    let Some(view) = view else {
        return Ok(None);
    };
    let password = view
        .password_path
        .as_deref()
        .map(|p| read_secret(p, "password file (registry.password_path)"))
        .transpose()?;
    let token = view
        .token_path
        .as_deref()
        .map(|p| read_secret(p, "token file (registry.auth_token_path)"))
        .transpose()?;
    let single_user = match (&view.username, &token) {
        (Some(name), _) => Some(SingleUser {
            name: name.clone(),
            password,
            token,
        }),
        (None, Some(_)) => Some(SingleUser {
            name: "admin".into(),
            password: None,
            token,
        }),
        (None, None) => None,
    };
    let mut opts = AuthOptions {
        single_user,
        htpasswd: None,
        acl: Acl::default(),
        token: None,
        max_failed_logins: view.max_failed_logins,
        failed_login_window: view.failed_login_window,
    };
    if let Some(multi) = &view.multi_user {
        multi_user(multi, &mut opts)?;
    }
    let auth = Auth::new(opts).context("registry authentication")?;
    Ok(Some(Arc::new(auth)))
}

fn multi_user(cfg: &MultiUserView, opts: &mut AuthOptions) -> anyhow::Result<()> {
    opts.htpasswd = cfg
        .htpasswd_path
        .as_deref()
        .map(Htpasswd::load)
        .transpose()?;
    let rules = cfg
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(r).with_context(|| format!("{AUTH}.access[{i}]")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    opts.acl = Acl::new(rules, &cfg.groups, cfg.admins.iter().cloned());
    opts.token = match &cfg.token {
        Some(t) => {
            let key = match &t.key_path {
                Some(p) => token_key(p)?,
                None => {
                    tracing::info!(
                        "no {AUTH}.token_key_path: signing tokens with a random in-memory key"
                    );
                    // One key per process, so a SIGHUP reload keeps issued tokens valid.
                    static GENERATED: std::sync::OnceLock<TokenKey> = std::sync::OnceLock::new();
                    GENERATED.get_or_init(TokenKey::generate).clone()
                }
            };
            Some(TokenOptions {
                key,
                service: t.service.clone(),
                issuer: "ocireg".into(),
                expiry: t.expiry,
                realm: t.realm.clone(),
            })
        }
        None => None,
    };
    Ok(())
}

fn token_key(path: &Path) -> anyhow::Result<TokenKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading token key {}", path.display()))?;
    if text.contains("-----BEGIN") {
        Ok(TokenKey::Es256(Secret::new(text)))
    } else {
        Ok(TokenKey::Hs256(Secret::new(text.trim())))
    }
}

fn rule(r: &AccessRuleView) -> anyhow::Result<Rule> {
    let patterns = r
        .patterns
        .iter()
        .map(|p| RepoPattern::new(p).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let principals = |list: &[String]| -> anyhow::Result<Vec<Principal>> {
        list.iter()
            .map(|p| p.parse::<Principal>().map_err(anyhow::Error::from))
            .collect()
    };
    Ok(Rule {
        patterns,
        read: principals(&r.read)?,
        write: principals(&r.write)?,
        delete: principals(&r.delete)?,
    })
}
