#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Authentication, authorization and token behaviour of `ocireg-auth`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use ocireg_api::{Access, Action};
use ocireg_auth::*;

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn access(repo: &str, action: Action) -> Access {
    Access {
        repo: repo.parse().unwrap(),
        action,
    }
}

fn htpasswd() -> Htpasswd {
    let alice = bcrypt::hash("alicepw", 4).unwrap();
    let bob = bcrypt::hash("bobpw", 4).unwrap();
    let carol = bcrypt::hash("carolpw", 4).unwrap();
    Htpasswd::parse(&format!(
        "# users\nalice:{alice}\n\nbob:{bob}\ncarol:{carol}\n"
    ))
    .unwrap()
}

fn rule(patterns: &[&str], read: &[&str], write: &[&str], delete: &[&str]) -> Rule {
    let p = |l: &[&str]| l.iter().map(|s| s.parse().unwrap()).collect();
    Rule {
        patterns: patterns
            .iter()
            .map(|s| RepoPattern::new(s).unwrap())
            .collect(),
        read: p(read),
        write: p(write),
        delete: p(delete),
    }
}

fn key() -> TokenKey {
    TokenKey::Hs256(Secret::new("0123456789abcdef0123456789abcdef-test"))
}

fn options(token: bool) -> AuthOptions {
    let mut groups = BTreeMap::new();
    groups.insert("devs".to_string(), vec!["bob".to_string()]);
    let acl = Acl::new(
        vec![
            rule(&["public/**"], &["anonymous"], &["group:devs"], &[]),
            rule(&["team/*"], &["*"], &["group:devs"], &["bob"]),
        ],
        &groups,
        vec!["carol".to_string()],
    );
    AuthOptions {
        single_user: Some(SingleUser {
            name: "root".into(),
            password: Some(Secret::new("rootpw")),
            token: Some(Secret::new("static-token-value")),
        }),
        htpasswd: Some(htpasswd()),
        acl,
        token: token.then(|| TokenOptions {
            key: key(),
            service: "ocireg".into(),
            issuer: "ocireg".into(),
            expiry: Duration::from_secs(60),
            realm: None,
        }),
        max_failed_logins: 3,
        failed_login_window: Duration::from_secs(60),
    }
}

#[test]
fn htpasswd_rejects_malformed_lines_with_their_number() {
    let good = bcrypt::hash("x", 4).unwrap();
    let err = Htpasswd::parse(&format!("a:{good}\n# c\nb:plaintext\n")).unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
    let err = Htpasswd::parse("no-colon-here\n").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    let err = Htpasswd::parse("u:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap_err();
    assert!(err.to_string().contains("bcrypt"), "{err}");
    let err = Htpasswd::parse(&format!("a:{good}\na:{good}\n")).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    // Truncated / garbage input never panics.
    for s in [
        "",
        ":",
        "a:",
        "a:$2y$",
        "a:$2y$zz$",
        "\u{0}:\u{0}",
        "é:$2y$10$é",
    ] {
        let _ = Htpasswd::parse(s);
    }
}

#[test]
fn htpasswd_verifies_bcrypt_and_file_errors_name_the_file() {
    let h = htpasswd();
    assert!(h.verify("alice", "alicepw"));
    assert!(!h.verify("alice", "bobpw"));
    assert!(!h.verify("nobody", "x"));
    assert!(!format!("{h:?}").contains("$2"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("htpasswd");
    std::fs::write(&p, "ok\n").unwrap();
    let err = Htpasswd::load(&p).unwrap_err().to_string();
    assert!(err.contains("htpasswd") && err.contains("line 1"), "{err}");
}

#[test]
fn patterns_match_components() {
    let p = RepoPattern::new("team/*").unwrap();
    assert!(p.matches("team/a"));
    assert!(!p.matches("team/a/b"));
    assert!(!p.matches("team"));
    let p = RepoPattern::new("public/**").unwrap();
    assert!(p.matches("public"));
    assert!(p.matches("public/a/b/c"));
    assert!(!p.matches("publicx/a"));
    assert!(RepoPattern::new("Bad").is_err());
    assert!("group:".parse::<Principal>().is_err());
}

/// What `authorize` answered, by kind: `ok`, `denied`, `unauthenticated` or `other`.
fn outcome(r: Result<(), Refusal>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(Refusal::Denied(_)) => "denied",
        Err(Refusal::Unauthenticated(_)) => "unauthenticated",
        Err(_) => "other",
    }
}

#[test]
fn default_policy_and_rules() {
    let auth = Auth::new(options(false)).unwrap();
    let alice = Caller::User("alice".into());
    let bob = Caller::User("bob".into());
    let (carol, root) = (Caller::User("carol".into()), Caller::User("root".into()));
    let anon = Caller::Anonymous;
    let cases = [
        // No rule: authenticated read + write, no delete; anonymous nothing.
        (&alice, "misc/x", Action::Push, "ok"),
        (&alice, "misc/x", Action::Delete, "denied"),
        (&anon, "misc/x", Action::Pull, "unauthenticated"),
        // public/**: anonymous read; only devs write.
        (&anon, "public/a", Action::Pull, "ok"),
        (&alice, "public/a", Action::Push, "denied"),
        (&bob, "public/a", Action::Push, "ok"),
        // team/*: bob deletes; admins (carol, and the single user root) do everything.
        (&bob, "team/a", Action::Delete, "ok"),
        (&carol, "team/a", Action::Delete, "ok"),
        (&carol, "misc/a", Action::Delete, "ok"),
        (&root, "team/a", Action::Delete, "ok"),
        (&root, "misc/a", Action::Delete, "ok"),
    ];
    for (caller, repo, action, want) in cases {
        let got = outcome(auth.authorize(caller, &[access(repo, action)]));
        assert_eq!(got, want, "{caller:?} {action:?} {repo}");
    }
    // Base/catalog: any authenticated caller.
    assert!(auth.authorize(&Caller::Anonymous, &[]).is_err());
    assert!(auth.authorize(&alice, &[]).is_ok());
    assert!(auth.can_read(&Caller::Anonymous, "public/a"));
    assert!(!auth.can_read(&Caller::Anonymous, "team/a"));
}

#[test]
fn authentication_paths() {
    let auth = Auth::new(options(false)).unwrap();
    assert_eq!(auth.authenticate(None, None), Ok(Caller::Anonymous));
    assert_eq!(
        auth.authenticate(Some(&basic("alice", "alicepw")), None),
        Ok(Caller::User("alice".into()))
    );
    assert_eq!(
        auth.authenticate(Some(&basic("root", "rootpw")), None),
        Ok(Caller::User("root".into()))
    );
    assert_eq!(
        auth.authenticate(Some("Bearer static-token-value"), None),
        Ok(Caller::User("root".into()))
    );
    assert!(matches!(
        auth.authenticate(Some(&basic("alice", "wrong")), None),
        Err(Refusal::Unauthenticated(_))
    ));
    assert!(matches!(
        auth.authenticate(Some("Bearer nope"), None),
        Err(Refusal::Unauthenticated(_))
    ));
    assert!(auth.authenticate(Some("Digest x"), None).is_err());
    let ch = auth.challenge(
        "http://h:1",
        &[access("a/b", Action::Push)],
        &Refusal::InsufficientScope,
    );
    assert_eq!(ch, "Basic realm=\"http://h:1/v2/\",charset=\"UTF-8\"");
}

#[test]
fn failed_logins_are_rate_limited_per_address() {
    let auth = Auth::new(options(false)).unwrap();
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let other: IpAddr = "10.0.0.2".parse().unwrap();
    for _ in 0..3 {
        assert!(matches!(
            auth.authenticate(Some(&basic("alice", "bad")), Some(ip)),
            Err(Refusal::Unauthenticated(_))
        ));
    }
    // Locked out, even with the right password; another address is not.
    assert!(matches!(
        auth.authenticate(Some(&basic("alice", "alicepw")), Some(ip)),
        Err(Refusal::TooManyAttempts(_))
    ));
    assert!(auth
        .authenticate(Some(&basic("alice", "alicepw")), Some(other))
        .is_ok());
}

#[test]
fn tokens_are_narrowed_and_cannot_be_widened() {
    let auth = Auth::new(options(true)).unwrap();
    let alice = Caller::User("alice".into());
    let scopes = vec![
        "repository:public/a:pull,push,delete".to_string(),
        "repository:misc/x:pull,push".to_string(),
    ];
    let issued = auth.issue_token(&alice, Some("ocireg"), &scopes).unwrap();
    let caller = auth
        .authenticate(Some(&format!("Bearer {}", issued.token)), None)
        .unwrap();
    let Caller::Token {
        subject,
        access: grants,
    } = &caller
    else {
        panic!("{caller:?}")
    };
    assert_eq!(subject.as_deref(), Some("alice"));
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0].actions, vec!["pull"]); // no push/delete on public/**
    assert_eq!(grants[1].actions, vec!["pull", "push"]);
    assert!(auth
        .authorize(&caller, &[access("misc/x", Action::Push)])
        .is_ok());
    // Not in the token, though the ACL allows it: the client must get a new token.
    assert_eq!(
        auth.authorize(&caller, &[access("misc/y", Action::Pull)]),
        Err(Refusal::InsufficientScope)
    );
    // The ACL forbids it: 403.
    assert!(matches!(
        auth.authorize(&caller, &[access("public/a", Action::Push)]),
        Err(Refusal::Denied(_))
    ));
    // Tampering with the payload (widening the access claim) breaks the signature.
    let parts: Vec<&str> = issued.token.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["access"][0]["actions"] = serde_json::json!(["pull", "push", "delete"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    assert!(matches!(
        auth.authenticate(Some(&format!("Bearer {forged}")), None),
        Err(Refusal::InvalidToken(_))
    ));
    // A token signed with another key is refused.
    let other = TokenService::new(TokenOptions {
        key: TokenKey::generate(),
        service: "ocireg".into(),
        issuer: "ocireg".into(),
        expiry: Duration::from_secs(60),
        realm: None,
    })
    .unwrap();
    let foreign = other.issue(Some("alice"), grants.clone()).unwrap();
    assert!(matches!(
        auth.authenticate(Some(&format!("Bearer {}", foreign.token)), None),
        Err(Refusal::InvalidToken(_))
    ));
    // Wrong service.
    assert!(matches!(
        auth.issue_token(&alice, Some("other"), &scopes),
        Err(Refusal::BadRequest(_))
    ));
}

#[test]
fn expired_tokens_are_refused() {
    let auth = Auth::new(options(true)).unwrap();
    let svc = auth.token_service().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        iss: "ocireg".into(),
        sub: "alice".into(),
        aud: "ocireg".into(),
        exp: now - 5,
        nbf: now - 100,
        iat: now - 100,
        jti: "x".into(),
        access: vec![ResourceActions::parse("repository:misc/x:pull").unwrap()],
    };
    let token = svc.sign(&claims).unwrap();
    let r = auth.authenticate(Some(&format!("Bearer {token}")), None);
    assert!(
        matches!(r, Err(Refusal::InvalidToken(ref m)) if m.contains("xpired")),
        "{r:?}"
    );
    let ch = auth.challenge("http://h:1", &[], &r.unwrap_err());
    assert!(ch.contains("error=\"invalid_token\""), "{ch}");
}

#[test]
fn anonymous_tokens_and_challenges() {
    let auth = Auth::new(options(true)).unwrap();
    let t = auth
        .issue_token(
            &Caller::Anonymous,
            None,
            &["repository:public/a:pull,push repository:team/a:pull".to_string()],
        )
        .unwrap();
    let caller = auth
        .authenticate(Some(&format!("Bearer {}", t.token)), None)
        .unwrap();
    assert_eq!(
        caller,
        Caller::Token {
            subject: None,
            access: vec![ResourceActions::parse("repository:public/a:pull").unwrap()]
        }
    );
    let ch = auth.challenge(
        "http://127.0.0.1:5000",
        &[access("a/b", Action::Push), access("c", Action::Pull)],
        &Refusal::Unauthenticated(String::new()),
    );
    assert_eq!(
        ch,
        "Bearer realm=\"http://127.0.0.1:5000/v2/_ocireg/token\",service=\"ocireg\",scope=\"repository:a/b:pull,push repository:c:pull\""
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let opts = options(true);
    let auth = Auth::new(opts.clone()).unwrap();
    for text in [format!("{opts:?}"), format!("{auth:?}")] {
        for secret in ["rootpw", "static-token-value", "0123456789abcdef", "$2b$"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    let c = Credentials::parse(&basic("u", "hunter2")).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn settings_errors() {
    let mut o = options(false);
    o.single_user = None;
    o.htpasswd = None;
    assert!(Auth::new(o).is_err());
    let mut o = options(true);
    o.token.as_mut().unwrap().key = TokenKey::Hs256(Secret::new("short"));
    assert!(Auth::new(o).is_err());
}

#[test]
fn es256_keys_from_pkcs8_pem() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let st = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let pem = std::fs::read_to_string(&key).unwrap();
    let svc = TokenService::new(TokenOptions {
        key: TokenKey::Es256(Secret::new(pem)),
        service: "ocireg".into(),
        issuer: "ocireg".into(),
        expiry: Duration::from_secs(60),
        realm: None,
    })
    .unwrap();
    let t = svc.issue(Some("u"), vec![]).unwrap();
    assert_es256_signed(&t.token, &key);
    assert_eq!(svc.verify(&t.token).unwrap().sub, "u");
    assert!(TokenService::new(TokenOptions {
        key: TokenKey::Es256(Secret::new(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )),
        service: "ocireg".into(),
        issuer: "ocireg".into(),
        expiry: Duration::from_secs(60),
        realm: None,
    })
    .is_err());
}

/// Checks, without the code under test, that `token` is a JWT whose header names ES256 and
/// whose signature verifies with the public half of the P-256 key in `key_pem`, and that the
/// same signature does not verify over a changed payload.
fn assert_es256_signed(token: &str, key_pem: &std::path::Path) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token}");
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256", "{header}");
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(key_pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl pkey: {out:?}");
    // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
    let point = &out.stdout[out.stdout.len() - 65..];
    assert_eq!(point[0], 4, "uncompressed point");
    let public =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    let signature = b64.decode(parts[2]).unwrap();
    assert_eq!(signature.len(), 64, "ES256 signatures are r || s");
    let signed = format!("{}.{}", parts[0], parts[1]);
    assert!(
        public.verify(signed.as_bytes(), &signature).is_ok(),
        "the signature does not verify with the key's public half"
    );
    let forged = format!("{}.{}", parts[0], b64.encode(br#"{"sub":"someone-else"}"#));
    assert!(public.verify(forged.as_bytes(), &signature).is_err());
}
