//! Harness for the client CLI tests: the two registries (ocireg serve, Debian's docker-registry
//! with htpasswd auth) on loopback ports, killed on drop; an isolated environment (HOME,
//! credentials, config) for running `ocireg` client commands; directory trees to compare.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::assert_success;
pub use crate::common::random_bytes;
use ocireg_test_support::{Distribution, Serve};
use serde_json::Value;

/// The binary under test.
pub const OCIREG: &str = env!("CARGO_BIN_EXE_ocireg");
/// User and password of the docker-registry's htpasswd file.
pub const USER: &str = "tester";
/// Password of [`USER`].
pub const PASSWORD: &str = "s3cret-pass";

/// A registry process, killed and reaped on drop.
pub struct Registry {
    proc: Proc,
    /// Port on 127.0.0.1.
    pub port: u16,
}

enum Proc {
    Ocireg(Serve),
    Distribution(Distribution),
}

impl Registry {
    /// `host:port`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts `ocireg serve` on a free port with a fresh root.
    pub fn ocireg() -> Registry {
        let s = Serve::start();
        Registry {
            port: s.port(),
            proc: Proc::Ocireg(s),
        }
    }

    /// Starts Debian's docker-registry (Distribution 2.8) with htpasswd auth for [`USER`].
    pub fn distribution() -> Registry {
        let d = Distribution::builder().user(USER, PASSWORD).start();
        Registry {
            port: d.port(),
            proc: Proc::Distribution(d),
        }
    }

    /// Kills the process now.
    pub fn stop(&mut self) {
        match &mut self.proc {
            Proc::Ocireg(s) => s.kill(),
            Proc::Distribution(d) => d.kill(),
        }
    }
}

/// An isolated client environment: its own HOME (pull cache, credentials, Docker config) and
/// config file.
pub struct Env {
    /// Temporary root.
    pub dir: tempfile::TempDir,
    /// `$HOME` for the commands.
    pub home: PathBuf,
    /// The config file passed with `--config`.
    pub config: PathBuf,
}

impl Env {
    /// A fresh environment whose config points at `registry` (`host:port`); `extra` is YAML
    /// appended at the top level (pull_policy / push_policy), `registry_extra` inside `registry`.
    pub fn new(registry_port: u16, registry_extra: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir_all(&home).unwrap();
        let env = Env {
            config: dir.path().join("ocireg.yaml"),
            home,
            dir,
        };
        env.write_config(registry_port, registry_extra, extra);
        env
    }

    /// Rewrites the config file.
    pub fn write_config(&self, port: u16, registry_extra: &str, extra: &str) {
        let mut y = format!(
            "registry:\n  deployment: remote\n  type: distribution\n  endpoint: 127.0.0.1\n  port: {port}\n\
             \x20 namespaces:\n    custom:\n      tools: team-tools\n\
             \x20 remote:\n    timeout: 10\n    retries: 1\n    retry_delay: 0\n"
        );
        for line in registry_extra.lines().filter(|l| !l.trim().is_empty()) {
            y.push_str("  ");
            y.push_str(line);
            y.push('\n');
        }
        y.push_str(extra);
        fs::write(&self.config, y).unwrap();
    }

    /// A path inside the environment.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `ocireg --config <cfg> ARGS` with HOME set to ours and no proxy or credential variables.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(OCIREG);
        c.arg("--config").arg(&self.config).args(args);
        c.env("HOME", &self.home)
            .current_dir(self.dir.path())
            .env_remove("OCIREG_CONFIG")
            .env_remove("OCIREG_CREDENTIALS")
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::null());
        for v in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "no_proxy",
            "NO_PROXY",
        ] {
            c.env_remove(v);
        }
        c
    }

    /// A fresh source tree at `rel` (see [`make_tree`]); `seed` makes its content.
    pub fn tree_at(&self, rel: &str, seed: &str) -> PathBuf {
        let dir = self.path(rel);
        make_tree(&dir, seed);
        dir
    }

    /// Runs a command and returns its output (whatever the status).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ocireg")
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(&out, &format!("ocireg {args:?}"));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command with `--json` that must succeed; returns the parsed object.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Runs a command that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "ocireg {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs a command with `input` on stdin; returns the output.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        ocireg_test_support::output_with_stdin(&mut self.cmd(args), input.as_bytes())
    }

    /// `ocireg login HOST -u USER --password-stdin` with `input` on stdin; returns the output.
    pub fn login(&self, host: &str, input: &str) -> Output {
        self.run_stdin(&["login", host, "-u", USER, "--password-stdin"], input)
    }

    /// [`Env::login`] that must succeed.
    pub fn login_ok(&self, host: &str, input: &str) {
        let out = self.login(host, input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pull cache of this environment (no `local` section: below HOME).
    pub fn cache_dir(&self) -> PathBuf {
        self.home.join(".provisioning/oci-registry/cache")
    }

    /// Our credentials file.
    pub fn credentials(&self) -> PathBuf {
        self.home
            .join(".provisioning/oci-registry/credentials.json")
    }
}

/// A source tree with nested directories, an empty file and directory, an executable, random
/// data and in-tree symlinks; `seed` makes its content differ between calls.
pub fn make_tree(dir: &Path, seed: &str) {
    fs::create_dir_all(dir.join("sub/deep")).unwrap();
    fs::create_dir_all(dir.join("emptydir")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("README.md"), format!("artifact {seed}\n")).unwrap();
    fs::write(dir.join("empty.txt"), b"").unwrap();
    fs::write(dir.join("sub/deep/data.bin"), random_bytes(300_000)).unwrap();
    fs::write(dir.join("sub/conf.k"), b"schema X:\n    a: int = 1\n").unwrap();
    fs::write(dir.join("bin/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(dir.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("README.md", dir.join("link")).unwrap();
    symlink("../README.md", dir.join("sub/up")).unwrap();
}

/// One entry of a tree listing.
#[derive(Debug, PartialEq, Eq)]
pub enum Node {
    /// Directory.
    Dir,
    /// Regular file: content and whether any executable bit is set.
    File(Vec<u8>, bool),
    /// Symlink target.
    Link(PathBuf),
}

/// Every entry below `dir`, by relative path.
pub fn tree(dir: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&p).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &p, out);
            } else {
                let exec = meta.permissions().mode() & 0o111 != 0;
                out.insert(rel, Node::File(fs::read(&p).unwrap(), exec));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts two trees are identical (paths, types, bytes, executable bits, link targets).
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "entries of {} and {}",
        a.display(),
        b.display()
    );
    for (k, v) in &ta {
        assert!(
            tb[k] == *v,
            "{k} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Names in `dir` (empty when it does not exist).
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}
