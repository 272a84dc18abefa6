//! Helpers shared by the server's in-process tests.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ocireg_auth::{
    Acl, Auth, AuthOptions, Htpasswd, Principal, RepoPattern, Rule, Secret, SingleUser,
};
use ocireg_server::{app, ServerOptions};
use ocireg_store::{MemoryDriver, Store, StoreOptions};
use ocireg_test_support::router;

pub use ocireg_test_support::sha256_str as sha;

/// `Basic <base64(user:pass)>`.
pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// `method path` with optional credentials and a body, from the default peer.
pub fn request(method: &str, path: &str, authz: Option<&str>, body: &[u8]) -> router::Call {
    router::call(method, path)
        .header_opt("authorization", authz)
        .body(body.to_vec())
}

/// The htpasswd users `alice`/`alicepw` and `bob`/`bobpw`.
pub fn alice_and_bob() -> Htpasswd {
    let h = |p| bcrypt::hash(p, 4).unwrap();
    Htpasswd::parse(&format!("alice:{}\nbob:{}\n", h("alicepw"), h("bobpw"))).unwrap()
}

/// A rule on repositories matching `pattern`: `read` may read, only bob may write, nobody but
/// admins may delete.
pub fn bob_writes(pattern: &str, read: Principal) -> Rule {
    Rule {
        patterns: vec![RepoPattern::new(pattern).unwrap()],
        read: vec![read],
        write: vec![Principal::User("bob".into())],
        delete: vec![],
    }
}

/// A store over a fresh in-memory driver.
pub async fn memory_store(opts: StoreOptions) -> Store {
    Store::open(Arc::new(MemoryDriver::new()), opts)
        .await
        .unwrap()
}

/// The app over a fresh in-memory store with default store options, and that store.
pub async fn memory_app(opts: ServerOptions) -> (axum::Router, Store) {
    let store = memory_store(StoreOptions::default()).await;
    (app(store.clone(), opts), store)
}

/// Basic auth with only the seed's single user `admin`/`adminpw` (an admin): no htpasswd
/// users, no rules, no token service, no failed-login limit.
pub fn admin_only() -> AuthOptions {
    AuthOptions {
        single_user: Some(SingleUser {
            name: "admin".into(),
            password: Some(Secret::new("adminpw")),
            token: None,
        }),
        htpasswd: None,
        acl: Acl::default(),
        token: None,
        max_failed_logins: 0,
        failed_login_window: Duration::from_secs(60),
    }
}

/// [`admin_only`] plus the htpasswd user `bob`/`bobpw` (read and write, no delete, no admin
/// operations).
pub fn admin_and_bob() -> Arc<Auth> {
    let users = Htpasswd::parse(&format!("bob:{}\n", bcrypt::hash("bobpw", 4).unwrap())).unwrap();
    Arc::new(
        Auth::new(AuthOptions {
            htpasswd: Some(users),
            ..admin_only()
        })
        .unwrap(),
    )
}
