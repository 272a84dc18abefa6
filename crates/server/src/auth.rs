//! The auth gate in front of dispatch (one check per request, from the endpoint's required
//! access) and the token endpoint `GET /v2/_ocireg/token` of the Docker token-auth flow.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use ocireg_api::{Access, Endpoint};
use ocireg_auth::{Auth, Caller, Refusal};
use ocireg_oci::ErrorCode;

use crate::error::{Failure, Result};
use crate::routes::Req;
use crate::AppState;

/// The extension path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "token";

/// `<scheme>://<host>` of the request, for the challenge's realm. A missing or odd `Host`
/// becomes `localhost`.
fn base_url(st: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if st.opts.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// Who sent the request; bcrypt checks run on the blocking pool.
pub(crate) async fn authenticate(
    auth: &std::sync::Arc<Auth>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> std::result::Result<Caller, Refusal> {
    let value = match headers.get(header::AUTHORIZATION) {
        None => return Ok(Caller::Anonymous),
        Some(v) => match v.to_str() {
            Ok(s) => s.to_owned(),
            Err(_) => {
                return Err(Refusal::Unauthenticated(
                    "malformed Authorization header".into(),
                ))
            }
        },
    };
    let ip = peer.map(|p| p.ip());
    if value.len() > 6 && value[..6].eq_ignore_ascii_case("basic ") {
        let auth = auth.clone();
        tokio::task::spawn_blocking(move || auth.authenticate(Some(&value), ip))
            .await
            .unwrap_or_else(|_| Err(Refusal::Unauthenticated("authentication failed".into())))
    } else {
        auth.authenticate(Some(&value), ip)
    }
}

/// The response for a refusal: 401 + challenge, 403 `DENIED`, 429 + `Retry-After`, or 400.
pub(crate) fn refusal(
    st: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
    needs: &[Access],
    why: Refusal,
) -> Failure {
    match &why {
        Refusal::Denied(m) => Failure::code(ErrorCode::Denied, m.clone()),
        Refusal::TooManyAttempts(after) => Failure::code(
            ErrorCode::TooManyRequests,
            "too many failed logins from this address; try again later",
        )
        .with_header("Retry-After", after.as_secs().max(1).to_string()),
        Refusal::BadRequest(m) => {
            Failure::code(ErrorCode::Unsupported, m.clone()).with_status(StatusCode::BAD_REQUEST)
        }
        Refusal::Unauthenticated(m) | Refusal::InvalidToken(m) => {
            let challenge = auth.challenge(&base_url(st, headers), needs, &why);
            Failure::code(ErrorCode::Unauthorized, m.clone())
                .with_header("WWW-Authenticate", challenge)
        }
        Refusal::InsufficientScope => {
            let challenge = auth.challenge(&base_url(st, headers), needs, &why);
            Failure::code(
                ErrorCode::Unauthorized,
                "the token does not grant this access",
            )
            .with_header("WWW-Authenticate", challenge)
        }
    }
}

/// What the gate and the token endpoint read of a request.
pub(crate) struct Head<'a> {
    pub(crate) method: &'a Method,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) peer: Option<SocketAddr>,
}

impl Req {
    /// The parts of the request the auth gate reads.
    pub(crate) fn head(&self) -> Head<'_> {
        Head {
            method: &self.method,
            query: self.query.as_deref(),
            headers: &self.headers,
            peer: self.peer,
        }
    }
}

/// The gate: `Ok(caller)` to dispatch `req` to `ep`, else the refusal to answer with.
pub(crate) async fn gate(
    st: &AppState,
    auth: &std::sync::Arc<Auth>,
    ep: &Endpoint,
    req: Head<'_>,
) -> Result<Caller> {
    let headers = &req.headers;
    let needs = ocireg_api::required_access(req.method, ep, req.query);
    let caller = authenticate(auth, headers, req.peer)
        .await
        .map_err(|why| refusal(st, auth, headers, &needs, why))?;
    auth.authorize(&caller, &needs)
        .map_err(|why| refusal(st, auth, headers, &needs, why))?;
    Ok(caller)
}

/// `GET /v2/_ocireg/token?service=&scope=...` (Basic credentials or none for anonymous).
pub(crate) async fn token(
    st: &AppState,
    auth: &std::sync::Arc<Auth>,
    req: Head<'_>,
) -> Result<Response> {
    let (headers, query) = (req.headers, req.query);
    if auth.token_service().is_none() {
        return Err(
            Failure::code(ErrorCode::Unsupported, "no such extension endpoint")
                .with_status(StatusCode::NOT_FOUND),
        );
    }
    if req.method != Method::GET {
        return Err(Failure::unsupported_method());
    }
    let caller = authenticate(auth, headers, req.peer)
        .await
        .map_err(|why| refusal(st, auth, headers, &[], why))?;
    let service = ocireg_api::query_param(query, "service");
    let scopes = query_values(query, "scope");
    if let Some(bad) = invalid_repository_scope(&scopes) {
        let why = Refusal::BadRequest(format!("invalid repository name in scope {bad:?}"));
        return Err(refusal(st, auth, headers, &[], why));
    }
    let issued = auth
        .issue_token(&caller, service.as_deref(), &scopes)
        .map_err(|why| refusal(st, auth, headers, &[], why))?;
    tracing::debug!(user = caller.user().unwrap_or("anonymous"), "token issued");
    let body = serde_json::to_string(&issued)
        .map_err(|e| Failure::Internal(format!("encoding a token answer: {e}")))?;
    let mut resp = crate::routes::json_response(body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The first `repository:NAME:...` scope whose NAME is not a valid repository name (a token
/// is never issued for a name no request could use).
fn invalid_repository_scope(scopes: &[String]) -> Option<String> {
    scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(|scope| {
            let rest = scope.strip_prefix("repository:")?;
            let (name, _actions) = rest.rsplit_once(':')?;
            (!ocireg_oci::RepoName::is_valid(name)).then(|| scope.chars().take(200).collect())
        })
        .next()
}

/// Every value of a repeated query parameter (clients send one `scope` per repository).
fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    let Some(q) = query else {
        return Vec::new();
    };
    q.split('&')
        .filter_map(|pair| ocireg_api::query_param(Some(pair), key))
        .collect()
}
