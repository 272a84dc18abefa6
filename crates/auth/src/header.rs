//! `Authorization` request headers and `WWW-Authenticate` challenges.

use base64::Engine;

use crate::secret::Secret;

/// Credentials sent in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(user:password)`.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// `Bearer <token>`.
    Bearer(Secret),
}

impl Credentials {
    /// Parses an `Authorization` header value; `None` when malformed or of another scheme.
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(bytes).ok()?;
            let (user, password) = text.split_once(':')?;
            Some(Credentials::Basic {
                user: user.to_owned(),
                password: Secret::new(password),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Some(Credentials::Bearer(Secret::new(rest)))
        } else {
            None
        }
    }
}

fn quote(s: &str) -> String {
    s.replace(['"', '\\'], "")
}

/// `Basic realm="<realm>",charset="UTF-8"`.
pub fn basic_challenge(realm: &str) -> String {
    format!("Basic realm=\"{}\",charset=\"UTF-8\"", quote(realm))
}

/// `Bearer realm="<realm>",service="<service>"[,scope="<scopes>"][,error="<error>"]`; several
/// scopes are joined with a space as in the Docker token spec.
pub fn bearer_challenge(
    realm: &str,
    service: &str,
    scopes: &[String],
    error: Option<&str>,
) -> String {
    let mut out = format!(
        "Bearer realm=\"{}\",service=\"{}\"",
        quote(realm),
        quote(service)
    );
    if !scopes.is_empty() {
        out.push_str(&format!(",scope=\"{}\"", quote(&scopes.join(" "))));
    }
    if let Some(e) = error {
        out.push_str(&format!(",error=\"{}\"", quote(e)));
    }
    out
}
