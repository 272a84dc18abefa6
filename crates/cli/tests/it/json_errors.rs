//! With `--json`, a client command's error is JSON on stdout too
//! (`{"error": {"code", "exit", "message", "causes"}}`), and the exit status is the one the
//! table in docs/cli.md gives.

use std::process::Output;

use serde_json::{json, Value};

use crate::client_support::{Env, Registry};

/// The exit status and the JSON error on stdout of a command that failed.
fn json_error(out: &Output) -> (i32, Value) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), v)
}

#[test]
fn usage_errors_are_json_with_json() {
    let env = Env::new(1, "", "");
    let (code, v) = json_error(&env.run(&["tags", "ns/repo", "--json", "--bogus"]));
    assert_eq!(code, 2);
    assert_eq!(
        v,
        json!({"error": {"code": "usage", "exit": 2, "message": "unexpected argument '--bogus' found", "causes": []}})
    );
    // Without --json the error stays text on stderr.
    let out = env.run(&["tags", "ns/repo", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn registry_errors_carry_their_exit_code() {
    let free = ocireg_test_support::free_port();
    let env = Env::new(free, "", "");
    let (code, v) = json_error(&env.run(&["tags", "ns/repo", "--json"]));
    assert_eq!(code, 7);
    assert_eq!(v["error"]["code"], "not_running");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("no registry answers on 127.0.0.1:{free}")),
        "{v}"
    );

    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "push_policy:\n  allow_overwrite: false\n");
    let (code, v) = json_error(&env.run(&["rm", "ns/none:1", "--json"]));
    assert_eq!(code, 5);
    assert_eq!(
        v,
        json!({"error": {"code": "not_found", "exit": 5, "message": format!("{}/ns/none:1 not found", reg.host()), "causes": []}})
    );
    let (code, v) = json_error(&env.run(&["inspect", "ns/none:1", "--json"]));
    assert_eq!((code, &v["error"]["code"]), (5, &json!("not_found")));

    let a = env.tree_at("a", "one");
    let b = env.tree_at("b", "two");
    env.json(&["push", "extension", a.to_str().unwrap(), "app:1"]);
    let (code, v) =
        json_error(&env.run(&["push", "extension", b.to_str().unwrap(), "app:1", "--json"]));
    assert_eq!((code, &v["error"]["code"]), (9, &json!("conflict")), "{v}");

    let auth = Registry::distribution();
    let env = Env::new(auth.port, "", "");
    let (code, v) = json_error(&env.run(&["catalog", "--json"]));
    assert_eq!(
        (code, &v["error"]["code"]),
        (6, &json!("auth_refused")),
        "{v}"
    );
    assert!(v["error"]["causes"].is_array());
}
