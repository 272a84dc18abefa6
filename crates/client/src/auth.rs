//! Authentication: `WWW-Authenticate` challenges, Basic credentials, and Bearer tokens fetched
//! from the challenge's realm and cached per scope set.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::error::ClientError;
use crate::options::{ClientOptions, Credentials};
use crate::retry::{self, Attempts, Failure};

/// One parsed challenge: the scheme (lower case) and its parameters (keys lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value into its challenges (RFC 9110 §11.6.1): parameters may be
/// quoted strings containing commas and `\"` escapes; a bare token after a comma starts the next
/// challenge.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let s = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let start = *i;
        while *i < s.len() && !matches!(s[*i], b' ' | b'\t' | b',' | b'=') {
            *i += 1;
        }
        String::from_utf8_lossy(&s[start..*i]).into_owned()
    };
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        // Look past spaces for '=' to tell a parameter from a new scheme.
        let mut j = i;
        while j < s.len() && (s[j] == b' ' || s[j] == b'\t') {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1; // closing quote
                String::from_utf8_lossy(&v).into_owned()
            } else {
                token(&mut i)
            };
            if let Some(last) = out.last_mut() {
                last.params.push((word.to_ascii_lowercase(), value));
            }
        } else if !word.is_empty() {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
        } else {
            i += 1; // stray '='
        }
    }
    out
}

/// How the registry wants to be authenticated, as learned from its last challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    expires: Instant,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"<redacted>")
            .field("expires", &self.expires)
            .finish()
    }
}

/// Per-registry authentication state: the learned scheme and the token cache.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    scheme: Mutex<Option<Scheme>>,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

/// The cache key of a scope set: sorted, deduplicated, space-separated.
fn scope_key(scopes: &[String]) -> String {
    let set: BTreeSet<&str> = scopes.iter().map(String::as_str).collect();
    set.into_iter().collect::<Vec<_>>().join(" ")
}

fn basic_value(username: &str, password: &str) -> Option<HeaderValue> {
    let encoded = base64_encode(format!("{username}:{password}").as_bytes());
    HeaderValue::from_str(&format!("Basic {encoded}")).ok()
}

fn bearer_value(token: &str) -> Result<HeaderValue, ClientError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        ClientError::Auth("token contains characters not allowed in a header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Standard base64 with padding (Basic auth).
fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What a 401 taught us.
pub(crate) enum Retry {
    /// Retry the request (new credentials available).
    Again,
    /// Retrying cannot help.
    GiveUp(ClientError),
}

/// Everything the auth code needs from the registry handle.
pub(crate) struct AuthCtx<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) opts: &'a ClientOptions,
    pub(crate) creds: &'a Credentials,
}

impl AuthState {
    /// The `Authorization` value for a request needing `scopes`, fetching a token first when the
    /// registry is known to use Bearer tokens and none is cached for these scopes.
    pub(crate) async fn authorization(
        &self,
        ctx: &AuthCtx<'_>,
        scopes: &[String],
    ) -> Result<Option<HeaderValue>, ClientError> {
        if let Credentials::Bearer(t) = ctx.creds {
            return bearer_value(t).map(Some);
        }
        let scheme = self.scheme.lock().await.clone();
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => match ctx.creds {
                Credentials::Basic { username, password } => Ok(basic_value(username, password)),
                _ => Ok(None),
            },
            Some(Scheme::Bearer { realm, service }) => {
                let key = scope_key(scopes);
                if let Some(t) = self.cached(&key).await {
                    return bearer_value(&t).map(Some);
                }
                let tok = fetch_token(ctx, &realm, service.as_deref(), scopes).await?;
                let value = bearer_value(&tok.token)?;
                self.tokens.lock().await.insert(key, tok);
                Ok(Some(value))
            }
        }
    }

    async fn cached(&self, key: &str) -> Option<String> {
        let mut tokens = self.tokens.lock().await;
        match tokens.get(key) {
            Some(t) if t.expires > Instant::now() => Some(t.token.clone()),
            Some(_) => {
                tokens.remove(key);
                None
            }
            None => None,
        }
    }

    /// Learns from a 401 answer to a request that needed `scopes` and carried `sent` (whether it
    /// had an `Authorization` header). Bearer: fetches a fresh token for the scopes plus the
    /// challenge's own scope and caches it.
    pub(crate) async fn on_unauthorized(
        &self,
        ctx: &AuthCtx<'_>,
        www_authenticate: &[String],
        scopes: &[String],
        sent: bool,
    ) -> Retry {
        let challenges: Vec<Challenge> = www_authenticate
            .iter()
            .flat_map(|h| parse_challenges(h))
            .collect();
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let basic = challenges.iter().find(|c| c.scheme == "basic");
        if let Credentials::Bearer(_) = ctx.creds {
            return Retry::GiveUp(ClientError::Auth(
                "the registry rejected the configured bearer token".into(),
            ));
        }
        if let Some(ch) = bearer {
            let Some(realm_text) = ch.param("realm") else {
                return Retry::GiveUp(ClientError::Auth("Bearer challenge without realm".into()));
            };
            let realm = match Url::parse(realm_text) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => u,
                _ => {
                    return Retry::GiveUp(ClientError::Auth(format!(
                        "Bearer challenge with unusable realm {realm_text:?}"
                    )))
                }
            };
            let service = ch.param("service").map(str::to_owned);
            let mut all: Vec<String> = scopes.to_vec();
            if let Some(s) = ch.param("scope") {
                all.extend(s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned));
            }
            let key = scope_key(scopes);
            self.tokens.lock().await.remove(&key);
            *self.scheme.lock().await = Some(Scheme::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            });
            return match fetch_token(ctx, &realm, service.as_deref(), &all).await {
                Ok(tok) => {
                    self.tokens.lock().await.insert(key, tok);
                    Retry::Again
                }
                Err(e) => Retry::GiveUp(e),
            };
        }
        if basic.is_some() {
            let previously_basic = {
                let mut s = self.scheme.lock().await;
                let was = *s == Some(Scheme::Basic);
                *s = Some(Scheme::Basic);
                was
            };
            return match ctx.creds {
                Credentials::Basic { .. } if !(sent && previously_basic) => Retry::Again,
                Credentials::Basic { username, .. } => Retry::GiveUp(ClientError::Auth(format!(
                    "the registry rejected the credentials of user {username:?}"
                ))),
                _ => Retry::GiveUp(ClientError::Auth(
                    "the registry requires credentials (Basic) and none are configured".into(),
                )),
            };
        }
        Retry::GiveUp(ClientError::Auth(format!(
            "401 without a usable WWW-Authenticate challenge ({:?})",
            www_authenticate
        )))
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn is_loopback_url(u: &Url) -> bool {
    crate::connect::is_loopback_host(u.host())
}

/// Fetches a token from `realm` (GET with `service` and one `scope` parameter per scope; Basic
/// credentials when configured). Connection errors, 5xx and 429 are retried like requests.
async fn fetch_token(
    ctx: &AuthCtx<'_>,
    realm: &Url,
    service: Option<&str>,
    scopes: &[String],
) -> Result<CachedToken, ClientError> {
    let has_secret = matches!(ctx.creds, Credentials::Basic { .. });
    if realm.scheme() == "http" && has_secret && !is_loopback_url(realm) && !ctx.opts.allow_insecure
    {
        return Err(ClientError::Insecure {
            host: realm.host_str().unwrap_or("").to_owned(),
            what: "sending credentials over plain HTTP to the token realm".into(),
        });
    }
    let mut url = realm.clone();
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = service {
            q.append_pair("service", s);
        }
        let set: BTreeSet<&str> = scopes.iter().map(String::as_str).collect();
        for s in set {
            q.append_pair("scope", s);
        }
    }
    let mut attempts = Attempts::new(ctx.opts);
    loop {
        let mut req = ctx.http.get(url.clone());
        if let Credentials::Basic { username, password } = ctx.creds {
            req = req.basic_auth(username, Some(password));
        }
        let started = Instant::now();
        let sent = tokio::time::timeout(ctx.opts.timeout, req.send()).await;
        let failure = match sent {
            Err(_) => Failure::retry(
                ClientError::Timeout {
                    method: "GET".into(),
                    url: realm.to_string(),
                    timeout: ctx.opts.timeout,
                },
                None,
            ),
            Ok(Err(e)) => Failure::transport(&e, "GET", realm.as_str(), ctx.opts),
            Ok(Ok(resp)) => {
                let status = resp.status();
                if status.is_success() {
                    let body = tokio::time::timeout(ctx.opts.timeout, resp.bytes())
                        .await
                        .map_err(|_| ClientError::Auth("token response timed out".into()))?
                        .map_err(|e| ClientError::Auth(format!("reading token: {e}")))?;
                    return parse_token(&body, started);
                }
                if !retry::retryable_status(status) {
                    let body = resp.bytes().await.unwrap_or_default();
                    let excerpt: String =
                        String::from_utf8_lossy(&body).chars().take(200).collect();
                    return Err(ClientError::Auth(format!(
                        "token server {realm} answered {status}: {excerpt}"
                    )));
                }
                Failure::retry(
                    ClientError::Auth(format!("token server {realm} answered {status}")),
                    None,
                )
            }
        };
        attempts.after(failure, "token request failed").await?;
    }
}

fn parse_token(body: &[u8], started: Instant) -> Result<CachedToken, ClientError> {
    let t: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| ClientError::Auth(format!("token response is not the expected JSON: {e}")))?;
    let token = t
        .token
        .filter(|s| !s.is_empty())
        .or(t.access_token.filter(|s| !s.is_empty()))
        .ok_or_else(|| {
            ClientError::Auth("token response has neither token nor access_token".into())
        })?;
    // The token spec's default lifetime is 60 s; renew a tenth early.
    let lifetime = Duration::from_secs(t.expires_in.unwrap_or(60));
    Ok(CachedToken {
        token,
        expires: started + lifetime.mul_f64(0.9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let h = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push repository:c:pull""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example.com/token"));
        assert_eq!(c[0].param("service"), Some("registry.example.com"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:a/b:pull,push repository:c:pull")
        );
    }

    #[test]
    fn several_challenges_unquoted_values_and_escapes() {
        let h = r#"Basic realm="a \"quoted\" realm", Bearer realm=https://t/x, service = svc"#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some(r#"a "quoted" realm"#));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://t/x"));
        assert_eq!(c[1].param("service"), Some("svc"));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let c = parse_challenges(r#"BASIC Realm="r""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("r"));
    }

    #[test]
    fn scope_keys_ignore_order_and_duplicates() {
        let a = scope_key(&["repository:b:pull".into(), "repository:a:pull,push".into()]);
        let b = scope_key(&[
            "repository:a:pull,push".into(),
            "repository:b:pull".into(),
            "repository:b:pull".into(),
        ]);
        assert_eq!(a, b);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(i.as_bytes()), o);
        }
    }

    #[test]
    fn token_or_access_token_and_expiry() {
        let now = Instant::now();
        let t = parse_token(br#"{"access_token":"abc","expires_in":100}"#, now).unwrap();
        assert_eq!(t.token, "abc");
        assert_eq!(t.expires, now + Duration::from_secs(90));
        let t = parse_token(br#"{"token":"xyz"}"#, now).unwrap();
        assert_eq!(t.token, "xyz");
        assert_eq!(t.expires, now + Duration::from_secs(54));
        assert!(parse_token(br#"{"nothing":1}"#, now).is_err());
    }
}
