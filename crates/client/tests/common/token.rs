//! A tiny Docker-style token server (axum, loopback) issuing RS256 JWTs that CNCF Distribution's
//! `auth.token` accepts: signed with a key made by the `openssl` CLI, the certificate in `x5c`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use super::AbortOnDrop;

/// One token request as the server saw it.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `service` parameter.
    pub service: Option<String>,
    /// `scope` parameters, in order.
    pub scopes: Vec<String>,
    /// The Basic user, when credentials came.
    pub user: Option<String>,
}

/// The signing key and its certificate.
#[derive(Clone, Debug)]
pub struct Signer {
    key: PathBuf,
    /// The certificate (PEM), for Distribution's `rootcertbundle`.
    pub cert: PathBuf,
    x5c: String,
}

impl Signer {
    /// A fresh RSA key and self-signed certificate in `dir`.
    pub fn new(dir: &Path) -> Signer {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "2",
            "-subj",
            "/CN=token-signer",
        ]);
        let der = run(&["x509", "-in", "token.crt", "-outform", "DER"]);
        Signer {
            key: dir.join("token.key"),
            cert: dir.join("token.crt"),
            x5c: STANDARD.encode(der),
        }
    }

    /// A signed JWT with these claims.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let mut openssl = Command::new("openssl");
        openssl.args(["dgst", "-sha256", "-sign"]).arg(&self.key);
        let out = ocireg_test_support::output_with_stdin(&mut openssl, input.as_bytes());
        assert!(out.status.success());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
    }
}

#[derive(Clone)]
struct Cfg {
    signer: Signer,
    issuer: String,
    users: Vec<(String, String)>,
    expires_in: u64,
    access_token_field: bool,
    log: Arc<Mutex<Vec<TokenRequest>>>,
}

/// The running token server.
pub struct TokenServer {
    /// The realm, `http://127.0.0.1:PORT/token`.
    pub realm: String,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    _task: AbortOnDrop,
}

impl TokenServer {
    /// Starts a token server granting everything asked to `users` (and nothing to anonymous
    /// callers); tokens say they live `expires_in` seconds; the token goes in `access_token`
    /// instead of `token` when `access_token_field`.
    pub async fn start(
        signer: Signer,
        issuer: &str,
        users: Vec<(String, String)>,
        expires_in: u64,
        access_token_field: bool,
    ) -> TokenServer {
        let log = Arc::new(Mutex::new(Vec::new()));
        let cfg = Cfg {
            signer,
            issuer: issuer.to_owned(),
            users,
            expires_in,
            access_token_field,
            log: log.clone(),
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token))
            .with_state(cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenServer {
            realm: format!("http://{addr}/token"),
            log,
            _task: AbortOnDrop(task),
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }
}

fn basic_user(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let enc = v.strip_prefix("Basic ")?;
    let dec = String::from_utf8(STANDARD.decode(enc.trim()).ok()?).ok()?;
    let (u, p) = dec.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

async fn token(State(cfg): State<Cfg>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let service = pairs
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let creds = basic_user(&headers);
    cfg.log.lock().unwrap().push(TokenRequest {
        service: service.clone(),
        scopes: scopes.clone(),
        user: creds.as_ref().map(|(u, _)| u.clone()),
    });
    let authenticated = match &creds {
        Some(c) if cfg.users.contains(c) => true,
        Some(_) => return (StatusCode::UNAUTHORIZED, "bad credentials").into_response(),
        None => false,
    };
    let access: Vec<Value> = if authenticated {
        scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|s| {
                let (kind, rest) = s.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": cfg.issuer,
        "sub": creds.map(|c| c.0).unwrap_or_default(),
        "aud": service.unwrap_or_default(),
        "exp": now + cfg.expires_in.max(1) + 60,
        "nbf": now - 30,
        "iat": now,
        "jti": format!("{now}-{}", cfg.log.lock().unwrap().len()),
        "access": access,
    });
    let signer = cfg.signer.clone();
    let jwt = tokio::task::spawn_blocking(move || signer.sign(&claims))
        .await
        .unwrap();
    let field = if cfg.access_token_field {
        "access_token"
    } else {
        "token"
    };
    let body = json!({ field: jwt, "expires_in": cfg.expires_in }).to_string();
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}
