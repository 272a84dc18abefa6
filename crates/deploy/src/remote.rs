//! `status` of a remote registry: is `/v2/` reachable, which API version, does TLS verify, do
//! the configured credentials work (Basic, Bearer token, or the token flow of a Bearer
//! challenge).

use std::path::PathBuf;
use std::time::Duration;

use ocireg_config::{ClientEndpoint, OCIRegistryConfig, RemoteView};
use reqwest::blocking::{Client, RequestBuilder, Response};

use crate::error::DeployError;
use crate::htpasswd::read_secret;
use crate::probe::{error_chain, off_thread};
use crate::settings::RenderOptions;

/// What to check, resolved from the config.
#[derive(Clone, Debug, Default)]
pub struct RemoteCheckOptions {
    /// `https://host:port` (no trailing slash).
    pub base_url: String,
    /// TLS in use.
    pub tls: bool,
    /// Verify the server certificate (`remote.verify_ssl`).
    pub verify_tls: bool,
    /// Extra CA certificate (PEM) to trust.
    pub ca_cert: Option<PathBuf>,
    /// Request timeout.
    pub timeout: Duration,
    /// Basic / token-flow user.
    pub username: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// File holding a bearer token.
    pub token_file: Option<PathBuf>,
    /// Proxy for http URLs.
    pub http_proxy: Option<String>,
    /// Proxy for https URLs.
    pub https_proxy: Option<String>,
    /// Hosts that bypass the proxies.
    pub no_proxy: Vec<String>,
}

impl RemoteCheckOptions {
    /// The checks for `reg` (any deployment; `remote` settings, or their defaults).
    pub fn from_registry(
        reg: &OCIRegistryConfig,
        opts: &RenderOptions,
    ) -> Result<Self, DeployError> {
        let endpoint = ClientEndpoint::resolve(reg)?;
        let remote = RemoteView::resolve(reg)?;
        Ok(Self {
            base_url: format!("{}://{}", endpoint.scheme(), endpoint.host_port()),
            tls: endpoint.tls,
            verify_tls: remote.verify_ssl,
            ca_cert: reg.ca_cert_path.as_deref().map(|p| opts.expand(p)),
            timeout: remote.timeout,
            username: reg.username.clone(),
            password_file: reg.password_path.as_deref().map(|p| opts.expand(p)),
            token_file: reg.auth_token_path.as_deref().map(|p| opts.expand(p)),
            http_proxy: remote.http_proxy,
            https_proxy: remote.https_proxy,
            no_proxy: remote.no_proxy,
        })
    }
}

/// The TLS verdict.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum TlsCheck {
    /// Plain HTTP.
    NotUsed,
    /// The certificate verified.
    Verified,
    /// Verification is switched off (`verify_ssl = false`).
    NotVerified,
    /// Not judged: the registry could not be reached.
    Unchecked,
    /// Verification failed.
    Failed {
        /// Why.
        message: String,
    },
}

/// The credentials verdict.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum CredentialCheck {
    /// No username/password or token configured.
    NotConfigured,
    /// The registry accepted them.
    Accepted,
    /// The registry answered 401 (or the token service refused them).
    Rejected {
        /// What answered and how.
        message: String,
    },
    /// They could not be tested.
    Unknown {
        /// Why.
        message: String,
    },
}

/// Status of a remote registry.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RemoteStatus {
    /// The probed URL (`…/v2/`).
    pub url: String,
    /// `/v2/` answered at all.
    pub reachable: bool,
    /// Its HTTP status without credentials.
    pub http_status: Option<u16>,
    /// `Docker-Distribution-API-Version`.
    pub api_version: Option<String>,
    /// TLS verdict.
    pub tls: TlsCheck,
    /// Credentials verdict.
    pub credentials: CredentialCheck,
    /// Why it is unreachable.
    pub error: Option<String>,
}

enum Secret {
    Basic(String, String),
    Token(String),
}

fn client(o: &RemoteCheckOptions, verify: bool) -> Result<Client, String> {
    let mut b = Client::builder()
        .timeout(o.timeout)
        .connect_timeout(o.timeout)
        .danger_accept_invalid_certs(!verify);
    if let Some(ca) = &o.ca_cert {
        let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| error_chain(&e))?;
        b = b.add_root_certificate(cert);
    }
    let no_proxy = reqwest::NoProxy::from_string(&o.no_proxy.join(","));
    if let Some(p) = &o.http_proxy {
        let proxy = reqwest::Proxy::http(p).map_err(|e| error_chain(&e))?;
        b = b.proxy(proxy.no_proxy(no_proxy.clone()));
    }
    if let Some(p) = &o.https_proxy {
        let proxy = reqwest::Proxy::https(p).map_err(|e| error_chain(&e))?;
        b = b.proxy(proxy.no_proxy(no_proxy));
    }
    b.build().map_err(|e| error_chain(&e))
}

fn api_version(resp: &Response) -> Option<String> {
    resp.headers()
        .get("docker-distribution-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn looks_like_tls_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "certificate",
        "unknownissuer",
        "tls",
        "handshake",
        "invalid peer",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// Checks a remote registry. Never fails: every problem is part of the answer.
pub fn check_remote(o: &RemoteCheckOptions) -> RemoteStatus {
    off_thread(|| check(o))
}

fn check(o: &RemoteCheckOptions) -> RemoteStatus {
    let url = format!("{}/v2/", o.base_url);
    let mut status = RemoteStatus {
        url: url.clone(),
        reachable: false,
        http_status: None,
        api_version: None,
        tls: if !o.tls {
            TlsCheck::NotUsed
        } else if o.verify_tls {
            TlsCheck::Verified
        } else {
            TlsCheck::NotVerified
        },
        credentials: CredentialCheck::NotConfigured,
        error: None,
    };
    let mut c = match client(o, o.verify_tls) {
        Ok(c) => c,
        Err(e) => {
            status.error = Some(e);
            return status;
        }
    };
    let mut first = c.get(&url).send();
    if let Err(e) = &first {
        let message = error_chain(e);
        if o.tls && o.verify_tls && looks_like_tls_failure(&message) {
            status.tls = TlsCheck::Failed { message };
            if let Ok(insecure) = client(o, false) {
                c = insecure;
                first = c.get(&url).send();
            }
        }
    }
    let resp = match first {
        Ok(r) => r,
        Err(e) => {
            status.error = Some(error_chain(&e));
            if matches!(status.tls, TlsCheck::Verified) {
                status.tls = TlsCheck::Unchecked;
            }
            return status;
        }
    };
    status.reachable = true;
    status.http_status = Some(resp.status().as_u16());
    status.api_version = api_version(&resp);
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    status.credentials = credentials(&c, o, &url, challenge.as_deref());
    status
}

fn secret(o: &RemoteCheckOptions) -> Result<Option<Secret>, String> {
    if let (Some(user), Some(file)) = (&o.username, &o.password_file) {
        let pw = read_secret(file).map_err(|e| e.to_string())?;
        return Ok(Some(Secret::Basic(user.clone(), pw)));
    }
    if let Some(file) = &o.token_file {
        let token = read_secret(file).map_err(|e| e.to_string())?;
        return Ok(Some(Secret::Token(token.trim().to_string())));
    }
    if o.username.is_some() {
        return Err("registry.username is set without password_path".into());
    }
    Ok(None)
}

fn with(req: RequestBuilder, secret: &Secret) -> RequestBuilder {
    match secret {
        Secret::Basic(u, p) => req.basic_auth(u, Some(p)),
        Secret::Token(t) => req.bearer_auth(t),
    }
}

fn verdict(resp: Result<Response, reqwest::Error>, what: &str) -> CredentialCheck {
    match resp {
        Ok(r) if r.status().is_success() => CredentialCheck::Accepted,
        Ok(r) if r.status().as_u16() == 401 || r.status().as_u16() == 403 => {
            CredentialCheck::Rejected {
                message: format!("{what} answered HTTP {}", r.status().as_u16()),
            }
        }
        Ok(r) => CredentialCheck::Unknown {
            message: format!("{what} answered HTTP {}", r.status().as_u16()),
        },
        Err(e) => CredentialCheck::Unknown {
            message: format!("{what}: {}", error_chain(&e)),
        },
    }
}

/// `key="value"` parameters of a `Bearer` challenge.
fn challenge_params(challenge: &str) -> Vec<(String, String)> {
    let rest = challenge
        .trim()
        .strip_prefix("Bearer")
        .or_else(|| challenge.trim().strip_prefix("bearer"))
        .unwrap_or_default();
    rest.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}

fn credentials(
    c: &Client,
    o: &RemoteCheckOptions,
    url: &str,
    challenge: Option<&str>,
) -> CredentialCheck {
    let secret = match secret(o) {
        Ok(Some(s)) => s,
        Ok(None) => return CredentialCheck::NotConfigured,
        Err(message) => return CredentialCheck::Unknown { message },
    };
    let bearer = challenge.is_some_and(|ch| ch.trim().to_ascii_lowercase().starts_with("bearer"));
    match (&secret, bearer, challenge) {
        (Secret::Basic(user, pw), true, Some(ch)) => {
            // Token flow: trade Basic credentials for a token at the realm, then use it.
            let params = challenge_params(ch);
            let Some(realm) = params
                .iter()
                .find(|(k, _)| k == "realm")
                .map(|(_, v)| v.clone())
            else {
                return CredentialCheck::Unknown {
                    message: format!("Bearer challenge without realm: {ch}"),
                };
            };
            let query: Vec<(String, String)> =
                params.into_iter().filter(|(k, _)| k == "service").collect();
            let token_resp = c
                .get(&realm)
                .query(&query)
                .basic_auth(user, Some(pw))
                .send();
            let token = match token_resp {
                Ok(r) if r.status().is_success() => {
                    r.json::<serde_json::Value>().ok().and_then(|v| {
                        v.get("token")
                            .or_else(|| v.get("access_token"))
                            .and_then(|t| t.as_str())
                            .map(str::to_string)
                    })
                }
                other => return verdict(other, "the token service"),
            };
            match token {
                Some(t) => verdict(
                    c.get(url).bearer_auth(t).send(),
                    "/v2/ with the issued token",
                ),
                None => CredentialCheck::Unknown {
                    message: "the token service answered without a token".into(),
                },
            }
        }
        _ => verdict(
            with(c.get(url), &secret).send(),
            "/v2/ with the credentials",
        ),
    }
}
