//! Helpers shared by the server's in-process tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ocireg_auth::{Acl, Auth, AuthOptions, Htpasswd, Secret, SingleUser};

pub use ocireg_test_support::sha256_str as sha;

/// `Basic <base64(user:pass)>`.
pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
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
