//! `registry.auth_required` + the seed's user fields + `registry.local.auth_config` → the
//! server's [`ocireg_auth::Auth`] (files are read here; the library never sees the config).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ocireg_auth::{
    Acl, Auth, AuthOptions, Htpasswd, Principal, RepoPattern, Rule, Secret, SingleUser, TokenKey,
    TokenOptions,
};
use ocireg_config::{
    AccessRule, LocalAuthConfig, LocalOCIConfig, OCINamespaces, OCIRegistryConfig,
};

const AUTH: &str = "registry.local.auth_config";

fn read_secret(path: &str, what: &str) -> anyhow::Result<Secret> {
    let p = ocireg_config::expand_home(path);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("reading {what} {}", p.display()))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        bail!("{what} {} is empty", p.display());
    }
    Ok(Secret::new(value))
}

/// The authenticator, or `None` when `auth_required` is false.
pub(super) fn auth(
    reg: &OCIRegistryConfig,
    local: &LocalOCIConfig,
) -> anyhow::Result<Option<Arc<Auth>>> {
    if !reg.auth_required {
        if local.auth_config.is_some() {
            tracing::warn!("{AUTH} is ignored: registry.auth_required is false");
        }
        return Ok(None);
    }
    let password = reg
        .password_path
        .as_deref()
        .map(|p| read_secret(p, "password file (registry.password_path)"))
        .transpose()?;
    let token = reg
        .auth_token_path
        .as_deref()
        .map(|p| read_secret(p, "token file (registry.auth_token_path)"))
        .transpose()?;
    let single_user = match (&reg.username, &token) {
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
    let opts = match &local.auth_config {
        None => AuthOptions {
            single_user,
            htpasswd: None,
            acl: Acl::default(),
            token: None,
            max_failed_logins: 10,
            failed_login_window: Duration::from_secs(60),
        },
        Some(cfg) => multi_user(cfg, &reg.namespaces, single_user)?,
    };
    let auth = Auth::new(opts).context("registry authentication")?;
    Ok(Some(Arc::new(auth)))
}

fn multi_user(
    cfg: &LocalAuthConfig,
    namespaces: &OCINamespaces,
    single_user: Option<SingleUser>,
) -> anyhow::Result<AuthOptions> {
    let htpasswd = cfg
        .htpasswd_path
        .as_deref()
        .map(|p| Htpasswd::load(&ocireg_config::expand_home(p)))
        .transpose()?;
    let groups: BTreeMap<String, Vec<String>> = cfg
        .groups
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rules = cfg
        .access
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| rule(r, namespaces).with_context(|| format!("{AUTH}.access[{i}]")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let acl = Acl::new(rules, &groups, cfg.admins.iter().flatten().cloned());
    let token = if cfg.token_enabled {
        let key = match &cfg.token_key_path {
            Some(p) => token_key(&ocireg_config::expand_home(p))?,
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
            service: cfg.token_service.clone(),
            issuer: "ocireg".into(),
            expiry: Duration::from_secs(u64::try_from(cfg.token_expiry).unwrap_or(300)),
            realm: cfg.token_realm.clone(),
        })
    } else {
        None
    };
    Ok(AuthOptions {
        single_user,
        htpasswd,
        acl,
        token,
        max_failed_logins: u32::try_from(cfg.max_failed_logins).unwrap_or(u32::MAX),
        failed_login_window: Duration::from_secs(
            u64::try_from(cfg.failed_login_window).unwrap_or(60),
        ),
    })
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

fn namespace_value<'a>(ns: &'a OCINamespaces, key: &str) -> Option<&'a str> {
    match key {
        "extensions" => Some(&ns.extensions),
        "kcl_packages" => Some(&ns.kcl_packages),
        "platform_images" => Some(&ns.platform_images),
        "test_images" => Some(&ns.test_images),
        other => ns.custom.as_ref()?.get(other).map(String::as_str),
    }
}

fn rule(r: &AccessRule, namespaces: &OCINamespaces) -> anyhow::Result<Rule> {
    let mut patterns = Vec::new();
    for p in r.repositories.iter().flatten() {
        patterns.push(RepoPattern::new(p)?);
    }
    for key in r.namespaces.iter().flatten() {
        let value = namespace_value(namespaces, key).with_context(|| {
            format!("namespaces: unknown namespace {key:?} (not a key of registry.namespaces)")
        })?;
        patterns.push(RepoPattern::new(&format!("{value}/**"))?);
    }
    let principals = |list: &Option<Vec<String>>| -> anyhow::Result<Vec<Principal>> {
        list.iter()
            .flatten()
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
