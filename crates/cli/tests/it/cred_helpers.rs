//! Docker's credential helpers (`credsStore`, `credHelpers` in `config.json`): `ocireg` runs
//! `docker-credential-<name> get` with the registry on stdin and uses the `Username`/`Secret`
//! it prints. The helpers here are small shell scripts put on `PATH`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::json;

use crate::client_support::{Env, Registry, PASSWORD, USER};

/// Writes `docker-credential-<name>` into `bin`: it appends the server it is asked about to
/// `<bin>/<name>.log`, answers for `host` with our test user, and says "not found" otherwise.
fn helper(bin: &Path, name: &str, host: Option<&str>) {
    let log = bin.join(format!("{name}.log"));
    let answer = match host {
        Some(h) => format!(
            "if [ \"$server\" = \"{h}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n  exit 0\nfi\n"
        ),
        None => String::new(),
    };
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread -r server\necho \"$server\" >> {}\n{answer}echo 'credentials not found in native keychain'\nexit 1\n",
        log.display()
    );
    let path = bin.join(format!("docker-credential-{name}"));
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

struct Setup {
    env: Env,
    bin: PathBuf,
    docker: PathBuf,
}

impl Setup {
    fn new(port: u16) -> Setup {
        let env = Env::new(port, "", "");
        let bin = env.path("bin");
        let docker = env.path("docker");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&docker).unwrap();
        Setup { env, bin, docker }
    }

    fn docker_config(&self, v: serde_json::Value) {
        fs::write(self.docker.join("config.json"), v.to_string()).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.env
            .cmd(args)
            .env("PATH", path)
            .env("DOCKER_CONFIG", &self.docker)
            .output()
            .unwrap()
    }

    fn asked(&self, name: &str) -> String {
        fs::read_to_string(self.bin.join(format!("{name}.log"))).unwrap_or_default()
    }
}

#[test]
fn creds_store_and_per_host_helpers() {
    let reg = Registry::distribution();
    let host = reg.host();
    let s = Setup::new(reg.port);
    helper(&s.bin, "good", Some(&host));
    helper(&s.bin, "empty", None);
    // credsStore answers for every registry.
    s.docker_config(json!({"credsStore": "good"}));
    let out = s.run(&["catalog", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.asked("good"), format!("{host}\n"));
    // credHelpers for this host wins over credsStore; a helper that holds nothing leaves the
    // registry's refusal (exit 6).
    s.docker_config(json!({"credsStore": "good", "credHelpers": {host.clone(): "empty"}}));
    let out = s.run(&["catalog"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.asked("empty"), format!("{host}\n"));
    assert_eq!(
        s.asked("good"),
        format!("{host}\n"),
        "the store was not asked again"
    );
    // A helper that is not installed is named in a warning.
    s.docker_config(json!({"credsStore": "absent"}));
    let out = s.run(&["catalog"]);
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("credential helper docker-credential-absent (Docker config) cannot run"),
        "{err}"
    );
    // Our own credentials file comes first: a stored login is used without asking a helper.
    s.docker_config(json!({"credsStore": "empty"}));
    let login = s.env.login(&host, &format!("{PASSWORD}\n"));
    assert!(login.status.success());
    let before = s.asked("empty");
    let out = s.run(&["catalog"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.asked("empty"), before);
}
