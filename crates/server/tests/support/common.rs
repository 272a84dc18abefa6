//! Helpers shared by the server's in-process tests. Included with
//! `#[path = "support/common.rs"] mod common;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ocireg_auth::{Acl, Auth, AuthOptions, Htpasswd, Secret, SingleUser};
use sha2::Digest as _;

/// `Basic <base64(user:pass)>`.
pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// The `sha256:<hex>` digest of `data`.
pub fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Basic auth with the seed's single user `admin`/`adminpw` (an admin) and the htpasswd user
/// `bob`/`bobpw` (read and write, no delete, no admin operations); no token service.
pub fn admin_and_bob() -> Arc<Auth> {
    let users = Htpasswd::parse(&format!("bob:{}\n", bcrypt::hash("bobpw", 4).unwrap())).unwrap();
    Arc::new(
        Auth::new(AuthOptions {
            single_user: Some(SingleUser {
                name: "admin".into(),
                password: Some(Secret::new("adminpw")),
                token: None,
            }),
            htpasswd: Some(users),
            acl: Acl::new(vec![], &BTreeMap::new(), Vec::<String>::new()),
            token: None,
            max_failed_logins: 0,
            failed_login_window: Duration::from_secs(60),
        })
        .unwrap(),
    )
}
