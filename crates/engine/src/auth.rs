//! The effective auth settings (`registry.auth_required`, the seed's user fields,
//! `registry.local.auth_config`) → the server's [`ocireg_auth::Auth`] (files are read here; the
//! library never sees the config).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ocireg_auth::{
    Acl, Auth, AuthOptions, Htpasswd, Principal, RepoPattern, Rule, Secret, SingleUser, TokenKey,
    TokenOptions,
};
use ocireg_config::{AccessRuleView, AuthView, MultiUserView};

use crate::EngineError;

const AUTH: &str = "registry.local.auth_config";

/// The token signing key generated when none is configured: made once per engine and kept
/// across reloads, so tokens issued before a SIGHUP stay valid.
#[derive(Clone, Debug, Default)]
pub(crate) struct GeneratedKey(Arc<OnceLock<TokenKey>>);

impl GeneratedKey {
    fn get(&self) -> TokenKey {
        self.0.get_or_init(TokenKey::generate).clone()
    }
}

fn read_secret(path: &Path, what: &str) -> Result<Secret, EngineError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::io(format!("reading {what} {}", path.display()), e))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(EngineError::Invalid(format!(
            "{what} {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(value))
}

/// The authenticator, or `None` when `auth_required` is false.
pub(crate) fn auth(
    view: Option<&AuthView>,
    generated: &GeneratedKey,
) -> Result<Option<Arc<Auth>>, EngineError> {
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
        multi_user(multi, &mut opts, generated)?;
    }
    let auth = Auth::new(opts).map_err(|e| EngineError::auth("registry authentication", e))?;
    Ok(Some(Arc::new(auth)))
}

fn multi_user(
    cfg: &MultiUserView,
    opts: &mut AuthOptions,
    generated: &GeneratedKey,
) -> Result<(), EngineError> {
    opts.htpasswd = match cfg.htpasswd_path.as_deref() {
        Some(p) => Some(
            Htpasswd::load(p).map_err(|e| EngineError::auth(format!("{AUTH}.htpasswd_path"), e))?,
        ),
        None => None,
    };
    let rules = cfg
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(r).map_err(|e| EngineError::auth(format!("{AUTH}.access[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    opts.acl = Acl::new(rules, &cfg.groups, cfg.admins.iter().cloned());
    opts.token = match &cfg.token {
        Some(t) => {
            let key = match &t.key_path {
                Some(p) => token_key(p)?,
                None => {
                    tracing::info!(
                        "no {AUTH}.token_key_path: signing tokens with a random in-memory key"
                    );
                    generated.get()
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

fn token_key(path: &Path) -> Result<TokenKey, EngineError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::io(format!("reading token key {}", path.display()), e))?;
    if text.contains("-----BEGIN") {
        Ok(TokenKey::Es256(Secret::new(text)))
    } else {
        Ok(TokenKey::Hs256(Secret::new(text.trim())))
    }
}

fn rule(r: &AccessRuleView) -> Result<Rule, ocireg_auth::AuthError> {
    let patterns = r
        .patterns
        .iter()
        .map(|p| RepoPattern::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let principals = |list: &[String]| -> Result<Vec<Principal>, ocireg_auth::AuthError> {
        list.iter().map(|p| p.parse::<Principal>()).collect()
    };
    Ok(Rule {
        patterns,
        read: principals(&r.read)?,
        write: principals(&r.write)?,
        delete: principals(&r.delete)?,
    })
}
