//! The bearer token service of the Docker token-auth flow: scopes, signed short-lived JWTs.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::AuthError;

/// One `scope` entry: `repository:<name>:<action>[,<action>...]` (also the `access` claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    /// Resource type (`repository`; `registry` for `registry:catalog:*`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource name (the repository).
    pub name: String,
    /// Actions (`pull`, `push`, `delete`, `*`).
    pub actions: Vec<String>,
}

impl ResourceActions {
    /// Parses one scope; the name may hold `:` (split at the first and the last one).
    pub fn parse(scope: &str) -> Option<Self> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// True when this grant includes `action` (`*` includes every action).
    pub fn includes(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "*")
    }
}

impl fmt::Display for ResourceActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

/// The claims of our tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user name, empty for an anonymous token.
    pub sub: String,
    /// Audience: the service name.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before.
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
    /// Token id.
    pub jti: String,
    /// What the token grants.
    pub access: Vec<ResourceActions>,
}

/// The signing key.
#[derive(Clone)]
pub enum TokenKey {
    /// HMAC-SHA256 with a shared secret.
    Hs256(Secret),
    /// ECDSA P-256 from a PKCS#8 PEM private key (`openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`); the public key is derived from it.
    Es256(Secret),
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKey::Hs256(_) => f.write_str("Hs256([redacted])"),
            TokenKey::Es256(_) => f.write_str("Es256([redacted])"),
        }
    }
}

impl TokenKey {
    /// A random 256-bit HS256 secret, kept in memory only (tokens die with the process).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        TokenKey::Hs256(Secret::new(hex_string(&bytes)))
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Settings of the token service.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// Signing key.
    pub key: TokenKey,
    /// The `service` name (token audience; also in the challenge).
    pub service: String,
    /// The issuer claim.
    pub issuer: String,
    /// Token lifetime.
    pub expiry: Duration,
    /// Fixed token realm URL; `None` = derived from the request (`<scheme>://<host>/v2/_ocireg/token`).
    pub realm: Option<String>,
}

/// A token ready to send: the body of the token endpoint's answer.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// The same JWT (OAuth2 name).
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// RFC 3339 issue time.
    pub issued_at: String,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct TokenService {
    opts: TokenOptions,
    encoding: EncodingKey,
    decoding: DecodingKey,
    alg: Algorithm,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("opts", &self.opts)
            .field("alg", &self.alg)
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenService {
    /// A token service with `opts` (fails on an unusable key).
    pub fn new(opts: TokenOptions) -> Result<Self, AuthError> {
        let (encoding, decoding, alg) = match &opts.key {
            TokenKey::Hs256(secret) => {
                if secret.expose().len() < 32 {
                    return Err(AuthError::Key(
                        "an HS256 secret needs at least 32 characters".into(),
                    ));
                }
                (
                    EncodingKey::from_secret(secret.expose().as_bytes()),
                    DecodingKey::from_secret(secret.expose().as_bytes()),
                    Algorithm::HS256,
                )
            }
            TokenKey::Es256(private_pem) => (
                EncodingKey::from_ec_pem(private_pem.expose().as_bytes())
                    .map_err(|e| AuthError::Key(format!("EC private key: {e}")))?,
                DecodingKey::from_ec_der(&ec_public_point(private_pem.expose())?),
                Algorithm::ES256,
            ),
        };
        Ok(Self {
            opts,
            encoding,
            decoding,
            alg,
        })
    }

    /// The service's settings.
    pub fn options(&self) -> &TokenOptions {
        &self.opts
    }

    /// Signs a token for `subject` (`None` = anonymous) granting exactly `access`.
    pub fn issue(
        &self,
        subject: Option<&str>,
        access: Vec<ResourceActions>,
    ) -> Result<IssuedToken, AuthError> {
        let now = now_secs();
        let claims = Claims {
            iss: self.opts.issuer.clone(),
            sub: subject.unwrap_or_default().to_owned(),
            aud: self.opts.service.clone(),
            exp: now + self.opts.expiry.as_secs().max(1),
            nbf: now.saturating_sub(5),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        };
        self.sign(&claims).map(|token| IssuedToken {
            access_token: token.clone(),
            token,
            expires_in: self.opts.expiry.as_secs().max(1),
            issued_at: rfc3339(now),
        })
    }

    /// Signs arbitrary claims (tests use it to make expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.encoding)
            .map_err(|e| AuthError::Key(format!("signing a token: {e}")))
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and not-before (no leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        v.validate_nbf = true;
        v.set_issuer(&[&self.opts.issuer]);
        v.set_audience(&[&self.opts.service]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))
    }
}

/// The uncompressed public point of a PKCS#8 PEM P-256 private key.
fn ec_public_point(pem: &str) -> Result<Vec<u8>, AuthError> {
    use base64::Engine;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| AuthError::Key("expected a PKCS#8 PEM (BEGIN PRIVATE KEY) EC key".into()))?;
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .map_err(|e| AuthError::Key(format!("not a P-256 PKCS#8 key: {e}")))?;
    Ok(pair.public_key().as_ref().to_vec())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (civil-from-days, no time crate needed).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn scope_parsing() {
        let s = ResourceActions::parse("repository:a/b:pull,push").unwrap();
        assert_eq!(s.name, "a/b");
        assert_eq!(s.actions, vec!["pull", "push"]);
        let s = ResourceActions::parse("repository:localhost:5000/a:pull").unwrap();
        assert_eq!(s.name, "localhost:5000/a");
        assert!(ResourceActions::parse("repository").is_none());
        assert!(ResourceActions::parse("repository::pull").is_none());
        assert_eq!(s.to_string(), "repository:localhost:5000/a:pull");
    }
}
