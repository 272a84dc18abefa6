//! [`Auth`]: authentication of a request, authorization of its accesses, token issuing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ocireg_api::{Access, Action};
use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};

use crate::header::{basic_challenge, bearer_challenge, Credentials};
use crate::{Acl, AuthError, Htpasswd, IssuedToken, LoginLimiter, ResourceActions, Secret};
use crate::{TokenOptions, TokenService};

/// The seed's single user: `username` with the password of `password_path` and/or the static
/// bearer token of `auth_token_path`. This user is an admin.
#[derive(Debug, Clone)]
pub struct SingleUser {
    /// User name.
    pub name: String,
    /// Password (`None`: the name is looked up in the htpasswd file, if any).
    pub password: Option<Secret>,
    /// Static bearer token accepted as this user.
    pub token: Option<Secret>,
}

/// Everything [`Auth`] needs.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// The seed's single user, if configured.
    pub single_user: Option<SingleUser>,
    /// Users from an htpasswd file.
    pub htpasswd: Option<Htpasswd>,
    /// Authorization rules (the single user is added as an admin).
    pub acl: Acl,
    /// The token service; `None` = Basic challenges only.
    pub token: Option<TokenOptions>,
    /// Failed logins allowed per client address per window (0 = unlimited).
    pub max_failed_logins: u32,
    /// The failed-login window.
    pub failed_login_window: Duration,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// A user authenticated by password or static token.
    User(String),
    /// A bearer token of our token service: its subject (`None` = anonymous) and grants.
    Token {
        /// The user the token was issued to.
        subject: Option<String>,
        /// What it grants.
        access: Vec<ResourceActions>,
    },
}

impl Caller {
    /// The user name, if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::User(u) => Some(u),
            Caller::Token { subject, .. } => subject.as_deref(),
        }
    }
}

/// Why a request is refused, and so how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No or wrong credentials: 401 with a challenge.
    Unauthenticated(String),
    /// A bad or expired token: 401 with `error="invalid_token"`.
    InvalidToken(String),
    /// A valid token lacking a needed scope: 401 with `error="insufficient_scope"`.
    InsufficientScope,
    /// A known caller without the permission: 403 `DENIED`.
    Denied(String),
    /// Too many failed logins from this address: 429 with `Retry-After`.
    TooManyAttempts(Duration),
    /// A malformed token request: 400.
    BadRequest(String),
}

/// How long a successful password check is remembered (bcrypt is slow by design).
const VERIFIED_TTL: Duration = Duration::from_secs(60);
const VERIFIED_MAX: usize = 1024;

/// Authentication and authorization of the built-in server.
#[derive(Debug)]
pub struct Auth {
    single: Option<SingleUser>,
    htpasswd: Option<Htpasswd>,
    acl: Acl,
    tokens: Option<TokenService>,
    limiter: LoginLimiter,
    /// sha256(user NUL password) → when verified.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Auth {
    /// Builds the authenticator; fails when no user can ever log in or the token key is bad.
    pub fn new(opts: AuthOptions) -> Result<Self, AuthError> {
        let has_users = opts.single_user.is_some() || opts.htpasswd.is_some();
        if !has_users {
            return Err(AuthError::Settings(
                "authentication needs a user (username + password or token) or an htpasswd file"
                    .into(),
            ));
        }
        if let Some(u) = &opts.single_user {
            let from_file = opts.htpasswd.as_ref().is_some_and(|h| h.contains(&u.name));
            if u.password.is_none() && u.token.is_none() && !from_file {
                return Err(AuthError::Settings(format!(
                    "user {:?} has no password, no token and is not in the htpasswd file",
                    u.name
                )));
            }
        }
        let mut acl = opts.acl;
        if let Some(u) = &opts.single_user {
            acl.add_admin(&u.name);
        }
        let tokens = opts.token.map(TokenService::new).transpose()?;
        Ok(Self {
            single: opts.single_user,
            htpasswd: opts.htpasswd,
            acl,
            tokens,
            limiter: LoginLimiter::new(opts.max_failed_logins, opts.failed_login_window),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The token service, when configured.
    pub fn token_service(&self) -> Option<&TokenService> {
        self.tokens.as_ref()
    }

    /// The authorization rules.
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// Who sent `authorization` (the raw header, if any) from `peer`. May run bcrypt: call
    /// from a blocking-friendly context when the header is `Basic`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Caller, Refusal> {
        let Some(raw) = authorization else {
            return Ok(Caller::Anonymous);
        };
        let creds = Credentials::parse(raw)
            .ok_or_else(|| Refusal::Unauthenticated("malformed Authorization header".into()))?;
        if let Some(ip) = peer {
            self.limiter.check(ip).map_err(Refusal::TooManyAttempts)?;
        }
        let result = match creds {
            Credentials::Basic { user, password } => {
                if self.password_ok(&user, &password) {
                    Ok(Caller::User(user))
                } else {
                    Err(Refusal::Unauthenticated(
                        "invalid user name or password".into(),
                    ))
                }
            }
            Credentials::Bearer(token) => self.bearer(&token),
        };
        if let Some(ip) = peer {
            match &result {
                Ok(_) => self.limiter.succeeded(ip),
                Err(Refusal::Unauthenticated(_)) => self.limiter.failed(ip),
                Err(_) => {}
            }
        }
        result
    }

    fn bearer(&self, token: &Secret) -> Result<Caller, Refusal> {
        if let Some(u) = &self.single {
            if u.token.as_ref().is_some_and(|t| t.matches(token.expose())) {
                return Ok(Caller::User(u.name.clone()));
            }
        }
        match &self.tokens {
            Some(svc) => svc
                .verify(token.expose())
                .map(|claims| Caller::Token {
                    subject: Some(claims.sub).filter(|s| !s.is_empty()),
                    access: claims.access,
                })
                .map_err(|e| Refusal::InvalidToken(e.to_string())),
            None => Err(Refusal::Unauthenticated("invalid bearer token".into())),
        }
    }

    fn password_ok(&self, user: &str, password: &Secret) -> bool {
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(user.as_bytes());
            h.update([0u8]);
            h.update(password.expose().as_bytes());
            h.finalize().into()
        };
        if let Some(at) = self.verified.lock().get(&key) {
            if at.elapsed() < VERIFIED_TTL {
                return true;
            }
        }
        let ok = match &self.single {
            Some(u) if u.name == user && u.password.is_some() => u
                .password
                .as_ref()
                .is_some_and(|p| p.matches(password.expose())),
            _ => self
                .htpasswd
                .as_ref()
                .is_some_and(|h| h.verify(user, password.expose())),
        };
        if ok {
            let mut cache = self.verified.lock();
            if cache.len() >= VERIFIED_MAX {
                cache.retain(|_, at| at.elapsed() < VERIFIED_TTL);
                if cache.len() >= VERIFIED_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, Instant::now());
        }
        ok
    }

    /// Checks that `caller` may perform every access in `needs`. Endpoints without a
    /// repository (`needs` empty: base, catalog) need any authenticated caller or token.
    pub fn authorize(&self, caller: &Caller, needs: &[Access]) -> Result<(), Refusal> {
        if needs.is_empty() {
            return match caller {
                Caller::Anonymous => {
                    Err(Refusal::Unauthenticated("authentication required".into()))
                }
                _ => Ok(()),
            };
        }
        for need in needs {
            let repo = need.repo.as_str();
            let perms = self.acl.permissions(caller.user(), repo);
            if !perms.allows(need.action) {
                return Err(match caller.user() {
                    None => Refusal::Unauthenticated("authentication required".into()),
                    Some(u) => Refusal::Denied(format!(
                        "user {u:?} may not {} repository {repo:?}",
                        action_name(need.action)
                    )),
                });
            }
            if let Caller::Token { access, .. } = caller {
                let granted = access.iter().any(|g| {
                    g.kind == "repository" && g.name == repo && g.includes(action_name(need.action))
                });
                if !granted {
                    return Err(Refusal::InsufficientScope);
                }
            }
        }
        Ok(())
    }

    /// True when `caller` may read `repo` (catalog filtering).
    pub fn can_read(&self, caller: &Caller, repo: &str) -> bool {
        self.acl.permissions(caller.user(), repo).read
    }

    /// The `WWW-Authenticate` value for a 401: Bearer (with the needed scopes) when the token
    /// service is on, else Basic. `base` is `<scheme>://<host>` of the request.
    pub fn challenge(&self, base: &str, needs: &[Access], refusal: &Refusal) -> String {
        match &self.tokens {
            None => basic_challenge(&format!("{base}/v2/")),
            Some(svc) => {
                let o = svc.options();
                let realm = o
                    .realm
                    .clone()
                    .unwrap_or_else(|| format!("{base}/v2/_ocireg/token"));
                let error = match refusal {
                    Refusal::InvalidToken(_) => Some("invalid_token"),
                    Refusal::InsufficientScope => Some("insufficient_scope"),
                    _ => None,
                };
                bearer_challenge(&realm, &o.service, &scopes_of(needs), error)
            }
        }
    }

    /// The token endpoint: a token for `caller` granting the requested `scopes` narrowed to
    /// what the caller may do now. `service`, when given, must name this service.
    pub fn issue_token(
        &self,
        caller: &Caller,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<IssuedToken, Refusal> {
        let svc = self
            .tokens
            .as_ref()
            .ok_or_else(|| Refusal::BadRequest("the token service is not enabled".into()))?;
        if let Some(s) = service {
            if s != svc.options().service {
                return Err(Refusal::BadRequest(format!("unknown service {s:?}")));
            }
        }
        let user = match caller {
            Caller::Anonymous => None,
            Caller::User(u) => Some(u.as_str()),
            Caller::Token { .. } => {
                return Err(Refusal::Unauthenticated(
                    "log in with a user name and password to get a token".into(),
                ))
            }
        };
        let mut granted = Vec::new();
        for scope in scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
        {
            let want = ResourceActions::parse(scope)
                .ok_or_else(|| Refusal::BadRequest(format!("malformed scope {scope:?}")))?;
            let actions: Vec<String> = match want.kind.as_str() {
                "repository" => {
                    let perms = self.acl.permissions(user, &want.name);
                    perms
                        .action_names()
                        .into_iter()
                        .filter(|a| want.includes(a))
                        .map(str::to_owned)
                        .collect()
                }
                "registry" if want.name == "catalog" && user.is_some() => {
                    want.actions.iter().filter(|a| *a == "*").cloned().collect()
                }
                _ => Vec::new(),
            };
            if !actions.is_empty() {
                granted.push(ResourceActions { actions, ..want });
            }
        }
        svc.issue(user, granted)
            .map_err(|e| Refusal::BadRequest(e.to_string()))
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull",
        Action::Push => "push",
        Action::Delete => "delete",
        Action::None => "",
    }
}

/// `repository:<name>:<actions>` for the needed accesses, actions of one repository merged;
/// `push` also asks for `pull` (clients read what they write).
fn scopes_of(needs: &[Access]) -> Vec<String> {
    let mut order: Vec<&str> = Vec::new();
    let mut actions: HashMap<&str, Vec<&str>> = HashMap::new();
    for need in needs {
        let repo = need.repo.as_str();
        if !actions.contains_key(repo) {
            order.push(repo);
        }
        let list = actions.entry(repo).or_default();
        let names: &[&str] = match need.action {
            Action::Pull => &["pull"],
            Action::Push => &["pull", "push"],
            Action::Delete => &["delete"],
            Action::None => &[],
        };
        for n in names {
            if !list.contains(n) {
                list.push(n);
            }
        }
    }
    order
        .into_iter()
        .map(|r| format!("repository:{r}:{}", actions[r].join(",")))
        .collect()
}
