//! SIGHUP: the config file is read again and users, access rules and limits change without a
//! restart and without dropping connections; an invalid new config keeps the old settings.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;

use super::limits::{assert_too_many, serve_with_limits, until_refused};
use crate::support::*;

/// The multi-user config (token expiry 300 s, the default) with `writer` allowed to push.
fn config(writer: &str) -> String {
    multi_config(300, writer)
}

/// One request on an open keep-alive connection; returns the status line.
fn keep_alive_get(c: &mut TcpStream) -> String {
    c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = c.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text.lines().next().unwrap().to_owned();
            }
        }
    }
}

/// Asserts the status of each blob push `(repository, data, user, password, expected)`.
fn assert_pushes(s: &Serve, cases: &[(&str, &[u8], &str, &str, StatusCode)]) {
    for (repo, data, user, pass, want) in cases {
        let got = push_blob(&s.base, repo, data, Some((user, pass))).status();
        assert_eq!(got, *want, "{user} pushes to {repo}");
    }
}

#[test]
fn sighup_reloads_users_and_access_rules() {
    let users = htpasswd_line("alice", "alicepw") + &htpasswd_line("bob", "bobpw");
    let s = Serve::start(
        &config("bob"),
        &[("admin.pw", "adminpw\n"), ("htpasswd", &users)],
    );
    let pid = s.pid();
    let before = token(&s, "alice", "alicepw", "repository:team/app:pull");
    assert_pushes(
        &s,
        &[
            ("team/x", b"1", "carol", "carolpw", StatusCode::UNAUTHORIZED),
            ("prod/app", b"1", "alice", "alicepw", StatusCode::FORBIDDEN),
            ("prod/app", b"1", "bob", "bobpw", StatusCode::CREATED),
        ],
    );
    let mut held = TcpStream::connect(&s.addr).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(keep_alive_get(&mut held).starts_with("HTTP/1.1 401"));

    // carol replaces bob; alice becomes the writer of prod/**.
    let users = htpasswd_line("alice", "alicepw") + &htpasswd_line("carol", "carolpw");
    s.write("htpasswd", &users);
    s.write("ocireg.yaml", &config("alice"));
    s.sighup_and_wait("config reloaded");

    assert_pushes(
        &s,
        &[
            ("team/x", b"2", "carol", "carolpw", StatusCode::CREATED),
            ("prod/app", b"2", "alice", "alicepw", StatusCode::CREATED),
            ("prod/app", b"3", "bob", "bobpw", StatusCode::UNAUTHORIZED),
        ],
    );
    // Same process, the connection opened before the reload still works, and a token issued
    // before it is still valid (the in-memory signing key is kept).
    assert_eq!(s.pid(), pid);
    assert!(keep_alive_get(&mut held).starts_with("HTTP/1.1 401"));
    assert_eq!(v2_with_bearer(&s, &before).status(), StatusCode::OK);
}

#[test]
fn invalid_new_config_keeps_the_old_settings() {
    let users = htpasswd_line("alice", "alicepw");
    let s = Serve::start(
        &config("alice"),
        &[("admin.pw", "adminpw\n"), ("htpasswd", &users)],
    );
    let alice_pushes =
        |data: &[u8]| push_blob(&s.base, "prod/app", data, Some(("alice", "alicepw"))).status();
    assert_eq!(alice_pushes(b"a"), StatusCode::CREATED);
    let broken = [
        // A value the schema refuses (and a writer change that must not apply).
        config("nobody").replace(
            "    auth_config:",
            "    limits_config: {max_name_length: 999}\n    auth_config:",
        ),
        // A users file that does not exist.
        config("nobody").replace("DIR/htpasswd", "DIR/missing-htpasswd"),
        // Not YAML at all.
        "registry: [unclosed\n".to_string(),
    ];
    for (i, text) in broken.iter().enumerate() {
        s.write("ocireg.yaml", text);
        s.sighup_and_wait("config reload failed");
        assert_eq!(
            alice_pushes(format!("after broken config {i}").as_bytes()),
            StatusCode::CREATED,
            "{}",
            s.log()
        );
    }
    assert!(
        s.log().contains("Max name length must be 1-255"),
        "{}",
        s.log()
    );
    // A valid config applies again.
    s.write("ocireg.yaml", &config("nobody"));
    s.sighup_and_wait("config reloaded");
    assert_eq!(alice_pushes(b"z"), StatusCode::FORBIDDEN);
}

#[test]
fn sighup_applies_new_limits() {
    let s = serve_with_limits("{}");
    let c = client();
    for _ in 0..10 {
        let r = c.get(format!("{}/v2/", s.base)).send().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let cfg = std::fs::read_to_string(s.dir.path().join("ocireg.yaml")).unwrap();
    let limited = cfg.replace(
        "limits_config: {}",
        "limits_config: {rate_limit_rps: 1, rate_limit_burst: 2, max_name_length: 10}",
    );
    assert_ne!(cfg, limited);
    s.write("ocireg.yaml", &limited);
    s.sighup_and_wait("config reloaded");
    let r = c
        .get(format!("{}/v2/abcdefghijk/tags/list", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r), "NAME_INVALID");
    // The bucket (2) empties within a few requests.
    let (_, refused) = until_refused(&c, &s.base, 5);
    assert_too_many(refused);
}
