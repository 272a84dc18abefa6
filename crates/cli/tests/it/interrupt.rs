//! Ctrl-C during `ocireg push`, typed into a real terminal (tmux): the upload session is
//! cancelled on the registry, the progress bar erased, `interrupted` printed, exit status 130.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use ocireg_test_support::tmux::Tmux;
use ocireg_test_support::Serve;

use crate::client_support::{names_in, Env, OCIREG};

/// Upload sessions the registry holds under `root`.
fn open_sessions(root: &Path) -> Vec<String> {
    names_in(&root.join("repositories/provisioning-extensions/app/_uploads"))
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_during_a_push_cancels_its_upload_session() {
    let serve = Serve::start();
    let root = serve.root.clone().unwrap();
    let env = Env::new(serve.port(), "", "");
    // One request per second: the 8 MiB chunks of a 60 MB upload take several seconds.
    let port = serve.port();
    fs::write(
        &env.config,
        format!(
            "registry:\n  deployment: remote\n  type: distribution\n  endpoint: 127.0.0.1\n  \
             port: {port}\n  namespaces:\n    custom:\n      tools: team-tools\n  \
             remote:\n    rate_limit:\n      requests_per_second: 1\n      burst: 1\n"
        ),
    )
    .unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = ocireg_test_support::xorshift::bytes(60_000_000, 7);
    fs::write(src.join("big.bin"), data).unwrap();

    let command = format!(
        "env HOME={} {OCIREG} --config {} push extension {} app:v1; echo EXIT=$?; sleep 60",
        env.home.display(),
        env.config.display(),
        src.display()
    );
    let tmux = Tmux::start("ocireg-interrupt", &command);
    wait_for("an upload session", Duration::from_secs(30), || {
        !open_sessions(&root).is_empty()
    });
    wait_for("the progress bar", Duration::from_secs(10), || {
        tmux.screen().contains("MiB/")
    });
    tmux.keys(&["C-c"]);
    wait_for("the push to end", Duration::from_secs(15), || {
        tmux.screen().contains("EXIT=")
    });
    let screen = tmux.screen();
    assert!(screen.contains("interrupted"), "{screen}");
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(
        !screen.contains("MiB/"),
        "the progress bar stays on screen:\n{screen}"
    );
    assert!(
        open_sessions(&root).is_empty(),
        "{:?}",
        open_sessions(&root)
    );
}
