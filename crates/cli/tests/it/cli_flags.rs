//! The connection flags every client command takes (`--registry`, `--plain-http`, `--insecure`,
//! `-u` with `--password-stdin` or a prompt), `-n` as the one count flag, and what `rm` says it
//! did; against real registries on loopback ports.

use std::fs;
use std::process::Output;
use std::time::Duration;

use ocireg_test_support::tmux::Tmux;
use ocireg_test_support::Distribution;
use serde_json::json;

use crate::client_support::{Env, Registry, OCIREG, PASSWORD, USER};

/// The exit status of a finished command.
fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn registry_flag_counts_and_rm_on_another_registry() {
    let a = Registry::ocireg();
    let b = Registry::ocireg();
    let env = Env::new(a.port, "", "");
    let src = env.tree_at("src", "flags");
    let src = src.to_str().unwrap();
    let bh = b.host();
    let one = env.json(&["push", "extension", src, "tool:1.0", "--registry", &bh]);
    assert_eq!(one["registry"], bh.as_str());
    env.tree_at("src2", "flags-two");
    let src2 = env.path("src2");
    let two = env.json(&[
        "push",
        "extension",
        src2.to_str().unwrap(),
        "tool:2.0",
        "--registry",
        &bh,
    ]);
    // The configured registry got nothing; B is named by the flag or, as before, the positional.
    assert_eq!(env.json(&["catalog"])["repositories"], json!([]));
    let repos = json!(["provisioning-extensions/tool"]);
    assert_eq!(env.json(&["catalog", &bh])["repositories"], repos);
    assert_eq!(
        env.json(&["catalog", "--registry", &bh])["repositories"],
        repos
    );
    let both = env.run(&["catalog", &bh, "--registry", &a.host()]);
    assert_eq!(code(&both), 2, "{}", stderr(&both));
    // One count flag: -n, its long form --limit, and the old --n still accepted.
    for flag in ["-n", "--limit", "--n"] {
        let page = env.json(&[
            "tags",
            "provisioning-extensions/tool",
            flag,
            "1",
            "--registry",
            &bh,
        ]);
        assert_eq!(page["tags"], json!(["1.0"]), "{flag}");
        assert_eq!(page["more"], true, "{flag}");
    }
    let out = env.path("out");
    let pulled = env.json(&[
        "pull",
        "provisioning-extensions/tool:1.0",
        "-o",
        out.to_str().unwrap(),
        "--registry",
        &bh,
    ]);
    assert_eq!(pulled["digest"], one["digest"]);
    // rm by tag removes the tag only; by digest it deletes the manifest, and says which.
    let d2 = two["digest"].as_str().unwrap();
    let text = env.ok(&["rm", "provisioning-extensions/tool:2.0", "--registry", &bh]);
    assert_eq!(
        text,
        format!("removed tag {bh}/provisioning-extensions/tool:2.0 (the manifest {d2} stays)\n")
    );
    let by_digest = format!("provisioning-extensions/tool@{d2}");
    let inspected = env.json(&["inspect", &by_digest, "--registry", &bh]);
    assert_eq!(inspected["digest"], d2);
    let rm = env.json(&["rm", &by_digest, "--registry", &bh]);
    assert_eq!(
        (&rm["removed"], &rm["deletedBy"]),
        (&json!("manifest"), &json!("digest"))
    );
    let d1 = one["digest"].as_str().unwrap();
    let text = env.ok(&[
        "rm",
        &format!("provisioning-extensions/tool@{d1}"),
        "--registry",
        &bh,
    ]);
    assert_eq!(
        text,
        format!("deleted manifest {bh}/provisioning-extensions/tool@{d1} and every tag on it\n")
    );
    let gone = env.run(&["inspect", &by_digest, "--registry", &bh]);
    assert_eq!(code(&gone), 5, "{}", stderr(&gone));
}

#[test]
fn username_and_password_flags() {
    let reg = Registry::distribution();
    let env = Env::new(reg.port, "", "");
    let src = env.tree_at("src", "creds");
    let src = src.to_str().unwrap();
    let anonymous = env.run(&["push", "extension", src, "app:1"]);
    assert_eq!(code(&anonymous), 6, "{}", stderr(&anonymous));
    let pushed = env.run_stdin(
        &[
            "push",
            "extension",
            src,
            "app:1",
            "-u",
            USER,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code(&pushed), 0, "{}", stderr(&pushed));
    let wrong = env.run_stdin(
        &[
            "tags",
            "provisioning-extensions/app",
            "-u",
            USER,
            "--password-stdin",
        ],
        "wrong\n",
    );
    assert_eq!(code(&wrong), 6, "{}", stderr(&wrong));
    // Standard input is no terminal here: without --password-stdin there is nothing to ask on.
    let no_password = env.run(&["tags", "provisioning-extensions/app", "-u", USER]);
    assert_eq!(code(&no_password), 2);
    assert_eq!(
        stderr(&no_password),
        "error: no password: give it on standard input with --password-stdin (standard input is not a terminal to ask on)\n"
    );
    let no_user = env.run(&["tags", "provisioning-extensions/app", "--password-stdin"]);
    assert_eq!(code(&no_user), 2);
    assert_eq!(stderr(&no_user), "error: --password-stdin needs -u USER\n");
    let login = env.run(&["login", &reg.host()]);
    assert_eq!(code(&login), 2);
    assert_eq!(stderr(&login), "error: login needs a user name: -u USER\n");
    // -u is for this run only: nothing was stored.
    assert!(!env.credentials().exists());
}

#[test]
fn copy_says_which_side_refused() {
    let auth = Registry::distribution();
    let open = Registry::ocireg();
    let env = Env::new(auth.port, "", "");
    let src = env.tree_at("src", "sides");
    let (ah, oh) = (auth.host(), open.host());
    let pushed = env.run_stdin(
        &[
            "push",
            "extension",
            src.to_str().unwrap(),
            "app:1",
            "-u",
            USER,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code(&pushed), 0, "{}", stderr(&pushed));
    env.json(&[
        "push",
        "extension",
        src.to_str().unwrap(),
        "app:1",
        "--registry",
        &oh,
    ]);
    let from_auth = env.run(&[
        "copy",
        "provisioning-extensions/app:1",
        &format!("{oh}/team/app:1"),
    ]);
    assert_eq!(code(&from_auth), 6, "{}", stderr(&from_auth));
    let prefix = format!(
        "error: the source registry {ah} refused access to {ah}/provisioning-extensions/app:1: "
    );
    assert!(
        stderr(&from_auth).starts_with(&prefix),
        "{}",
        stderr(&from_auth)
    );
    let to_auth = env.run(&[
        "copy",
        &format!("{oh}/provisioning-extensions/app:1"),
        "provisioning-extensions/app:2",
    ]);
    assert_eq!(code(&to_auth), 6, "{}", stderr(&to_auth));
    let prefix = format!(
        "error: the destination registry {ah} refused the push to {ah}/provisioning-extensions/app:2: "
    );
    assert!(
        stderr(&to_auth).starts_with(&prefix),
        "{}",
        stderr(&to_auth)
    );
    let two = env.run_stdin(
        &[
            "copy",
            "provisioning-extensions/app:1",
            &format!("{oh}/team/app:1"),
            "-u",
            USER,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code(&two), 2, "{}", stderr(&two));
}

#[test]
fn plain_http_and_insecure_override_the_config() {
    // The config says TLS; the registry speaks plain HTTP: --plain-http reaches it.
    let plain = Registry::ocireg();
    let env = Env::new(plain.port, "tls_enabled: true", "");
    let refused = env.run(&["catalog"]);
    assert_eq!(code(&refused), 8, "{}", stderr(&refused));
    assert_eq!(
        env.json(&["catalog", "--plain-http"])["repositories"],
        json!([])
    );
    // A self-signed certificate fails verification; --insecure skips it.
    let certs = tempfile::tempdir().unwrap();
    let tls = Distribution::builder()
        .tls(ocireg_test_support::tls::make_self_signed(certs.path()))
        .start();
    let env = Env::new(tls.port(), "tls_enabled: true", "");
    let unverified = env.run(&["catalog"]);

    assert_eq!(code(&unverified), 8, "{}", stderr(&unverified));
    assert_eq!(
        env.json(&["catalog", "--insecure"])["repositories"],
        json!([])
    );
}

#[test]
fn login_asks_for_the_password_without_echo() {
    let reg = Registry::distribution();
    let env = Env::new(reg.port, "", "");
    let command = format!(
        "env HOME={} OCIREG_CREDENTIALS= DOCKER_CONFIG= {OCIREG} --config {} login {} -u {USER}; echo EXIT=$?; sleep 60",
        env.home.display(),
        env.config.display(),
        reg.host()
    );
    let tmux = Tmux::start("ocireg-login", &command);
    tmux.wait_for("Password:", Duration::from_secs(20));
    tmux.keys(&["-l", PASSWORD]);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(20));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains(&format!("login succeeded for {}", reg.host())),
        "{screen}"
    );
    assert!(
        !screen.contains(PASSWORD),
        "the password was echoed:\n{screen}"
    );
    let stored = fs::read_to_string(env.credentials()).unwrap();
    assert!(stored.contains(&reg.host()), "{stored}");
}
