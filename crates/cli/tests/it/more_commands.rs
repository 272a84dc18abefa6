//! End-to-end tests of the commands users of oras and crane reach for: `tag`, `digest`,
//! `manifest get`, `blob get`, `push --artifact-type` of several files, `attach`, `discover`,
//! `repo delete` and `pull --force`, against `ocireg serve` and (where the registry matters:
//! no referrers API) Debian's docker-registry.
use std::fs;

use crate::client_support::*;
use serde_json::Value;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// Two files in the environment; returns their paths as strings.
fn two_files(env: &Env) -> (String, String) {
    let a = env.path("notes.txt");
    let b = env.path("data.bin");
    fs::write(&a, b"hello notes\n").unwrap();
    fs::write(&b, random_bytes(200_000)).unwrap();
    (
        a.to_str().unwrap().to_owned(),
        b.to_str().unwrap().to_owned(),
    )
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn generic_push_tag_digest_manifest_and_blob_get() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let (a, b) = two_files(&env);
    let pushed = env.json(&[
        "push",
        "--artifact-type",
        "application/vnd.example.bundle",
        "team/bundle:v1",
        &a,
        &b,
    ]);
    let digest = s(&pushed, "digest").to_owned();
    assert_eq!(s(&pushed, "artifactType"), "application/vnd.example.bundle");
    let layers = pushed["layers"].as_array().unwrap().clone();
    let titles: Vec<&str> = layers
        .iter()
        .map(|l| {
            l["annotations"]["org.opencontainers.image.title"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(titles, ["notes.txt", "data.bin"]);
    // The same files again: the same manifest, nothing uploaded.
    let again = env.json(&[
        "push",
        "--artifact-type",
        "application/vnd.example.bundle",
        "team/bundle:v1",
        &a,
        &b,
    ]);
    assert_eq!(
        (s(&again, "digest"), again["unchanged"].as_bool()),
        (digest.as_str(), Some(true))
    );

    // digest resolves the tag; -q and text print the digest alone.
    assert_eq!(env.ok(&["digest", "team/bundle:v1"]).trim(), digest);
    assert_eq!(env.ok(&["digest", "team/bundle:v1", "-q"]).trim(), digest);
    let out = env.run(&["digest", "team/bundle:nope"]);
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("team/bundle:nope not found"),
        "{}",
        stderr(&out)
    );

    manifest_and_blob_get(&env, &digest, &layers[1], &b);
    tag_without_copying(&env, reg.port, &digest);
    let out = env.run(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/bundle:v3",
        "missing.txt",
    ]);
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
}

/// attach + discover on one registry: the tree, the filter, --json and -q.
fn attach_and_discover(env: &Env, subject: &str) {
    let (a, b) = two_files(env);
    let sig = env.json(&[
        "attach",
        "--artifact-type",
        "application/vnd.example.sig",
        "-a",
        "note=ci",
        subject,
        &a,
    ]);
    let sig_digest = s(&sig, "digest").to_owned();
    let subject_digest = env.ok(&["digest", subject, "-q"]).trim().to_owned();
    assert_eq!(sig["subject"]["digest"], subject_digest.as_str());
    let repo = subject.split(':').next().unwrap();
    let m: Value =
        serde_json::from_str(&env.ok(&["manifest", "get", &format!("{repo}@{sig_digest}")]))
            .unwrap();
    assert_eq!(m["subject"]["digest"], subject_digest.as_str());
    assert_eq!(m["artifactType"], "application/vnd.example.sig");
    assert_eq!(m["annotations"]["note"], "ci");
    let sbom = env.ok(&[
        "attach",
        "--artifact-type",
        "application/spdx+json",
        subject,
        &b,
        "-q",
    ]);
    let sbom = sbom.trim();
    // A referrer of a referrer.
    let nested = env.ok(&[
        "attach",
        "--artifact-type",
        "application/vnd.example.sig",
        &format!("{repo}@{sbom}"),
        &a,
        "-q",
    ]);
    let nested = nested.trim();

    let tree = env.json(&["discover", subject]);
    let top: Vec<&str> = tree["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(r, "digest"))
        .collect();
    assert_eq!(top.len(), 2, "{tree}");
    assert!(
        top.contains(&sig_digest.as_str()) && top.contains(&sbom),
        "{tree}"
    );
    let sbom_node = tree["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| s(r, "digest") == sbom)
        .unwrap();
    assert_eq!(sbom_node["referrers"][0]["digest"], nested, "{tree}");
    // Ordered by artifact type: the SBOM (with its own referrer) first.
    let text = env.ok(&["discover", subject]);
    assert!(
        text.contains(&format!("├── application/spdx+json {sbom}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("│   └── application/vnd.example.sig {nested}")),
        "{text}"
    );
    let only = env.ok(&[
        "discover",
        subject,
        "--artifact-type",
        "application/spdx+json",
        "-q",
    ]);
    assert_eq!(only.trim(), sbom);
    let none = env.ok(&["discover", &format!("{repo}@{nested}")]);
    assert!(none.contains("(no referrers)"), "{none}");
}

#[test]
fn attach_and_discover_against_ocireg() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let (a, _) = two_files(&env);
    env.ok(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/app:1.0",
        &a,
    ]);
    attach_and_discover(&env, "team/app:1.0");
    let out = env.run(&["attach", "--artifact-type", "a/b", "team/app:nope", &a]);
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
}

/// Distribution 2.8 has no referrers API: attach writes, and discover reads, the referrers tag
/// schema index (`sha256-<hex>`).
#[test]
fn attach_and_discover_fall_back_to_the_tag_schema_on_distribution() {
    let reg = Registry::distribution();
    let env = Env::new(reg.port, "", "");
    env.login_ok(&reg.host(), &format!("{PASSWORD}\n"));
    let (a, _) = two_files(&env);
    env.ok(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/app:1.0",
        &a,
    ]);
    attach_and_discover(&env, "team/app:1.0");
    let subject = env.ok(&["digest", "team/app:1.0", "-q"]);
    let fallback = subject.trim().replace("sha256:", "sha256-");
    let tags = env.ok(&["tags", "team/app"]);
    assert!(tags.lines().any(|t| t == fallback), "{tags}");
}

#[test]
fn repo_delete_needs_confirmation_and_removes_every_tag() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let (a, b) = two_files(&env);
    env.ok(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/gone:1",
        &a,
    ]);
    env.ok(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/gone:2",
        &b,
    ]);
    env.ok(&[
        "attach",
        "--artifact-type",
        "application/sig",
        "team/gone:1",
        &b,
    ]);
    env.ok(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/kept:1",
        &a,
    ]);
    // Not on a terminal, without --yes: a usage error, nothing deleted.
    let out = env.run(&["repo", "delete", "team/gone"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "error: refusing to delete repository team/gone without --yes (standard input is not a terminal to ask on)"
    );
    assert_eq!(env.ok(&["tags", "team/gone"]).lines().count(), 2);
    let done = env.json(&["repo", "delete", "team/gone", "--yes"]);
    assert_eq!(done["manifestsDeleted"].as_u64(), Some(3), "{done}");
    assert_eq!(env.ok(&["tags", "team/gone"]).trim(), "");
    for t in ["1", "2"] {
        let out = env.run(&["digest", &format!("team/gone:{t}")]);
        assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    }
    assert_eq!(
        env.ok(&["tags", "team/kept"]).trim(),
        "1",
        "other repositories stay"
    );
}

#[test]
fn pull_force_replaces_a_non_empty_destination() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let src = env.tree_at("src", "force");
    env.ok(&["push", "extension", src.to_str().unwrap(), "forced:1"]);
    let out_dir = env.path("out");
    fs::create_dir_all(&out_dir).unwrap();
    fs::write(out_dir.join("stale.txt"), b"old").unwrap();
    let dest = out_dir.to_str().unwrap();
    let out = env.run(&["pull", "provisioning-extensions/forced:1", "-o", dest]);
    assert_eq!(code(&out), Some(9), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exists and is not empty (pull --force replaces it)"),
        "{}",
        stderr(&out)
    );
    assert!(out_dir.join("stale.txt").exists());
    // A forced pull that fails keeps what was there.
    let out = env.run(&[
        "pull",
        "provisioning-extensions/forced:nope",
        "-o",
        dest,
        "--force",
    ]);
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert_eq!(fs::read(out_dir.join("stale.txt")).unwrap(), b"old");
    env.ok(&[
        "pull",
        "provisioning-extensions/forced:1",
        "-o",
        dest,
        "--force",
    ]);
    assert_same_tree(&src, &out_dir);
    assert!(names_in(&env.path(""))
        .iter()
        .all(|n| !n.contains("ocireg-replaced")));
}

#[test]
fn new_commands_have_examples_in_their_help() {
    let env = Env::new(1, "", "");
    for cmd in [
        vec!["tag"],
        vec!["digest"],
        vec!["manifest", "get"],
        vec!["blob", "get"],
        vec!["attach"],
        vec!["discover"],
        vec!["repo", "delete"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let help = env.ok(&args);
        assert!(help.contains("\nEXAMPLES:\n  ocireg "), "{cmd:?}: {help}");
    }
}

#[test]
fn compression_is_skipped_when_it_does_not_pay_and_inspect_says_why() {
    let reg = Registry::ocireg();
    // compression_enabled is on by default.
    let env = Env::new(reg.port, "", "push_policy:\n  compression_level: 6\n");
    let noisy = env.path("noisy");
    fs::create_dir_all(&noisy).unwrap();
    fs::write(noisy.join("blob.bin"), random_bytes(2 << 20)).unwrap();
    let text = env.path("text");
    fs::create_dir_all(&text).unwrap();
    fs::write(
        text.join("conf.k"),
        "schema X:\n    a: int = 1\n".repeat(20_000),
    )
    .unwrap();

    let p = env.json(&["push", "extension", noisy.to_str().unwrap(), "noisy:1"]);
    assert_eq!(
        p["layer"]["mediaType"], "application/vnd.oci.image.layer.v1.tar",
        "{p}"
    );
    let shown = env.ok(&["inspect", "provisioning-extensions/noisy:1"]);
    assert!(
        shown.contains("(stored uncompressed: incompressible: a 256 KiB sample compressed to"),
        "{shown}"
    );
    let out = env.path("noisy-out");
    env.ok(&[
        "pull",
        "provisioning-extensions/noisy:1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_same_tree(&noisy, &out);

    let p = env.json(&["push", "extension", text.to_str().unwrap(), "text:1"]);
    assert_eq!(
        p["layer"]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{p}"
    );
    assert!(p["layer"]["size"].as_u64().unwrap() < 100_000, "{p}");
    let shown = env.ok(&["inspect", "provisioning-extensions/text:1"]);
    assert!(!shown.contains("stored uncompressed"), "{shown}");

    // compression_enabled = false stays the switch: no gzip, and nothing to explain.
    let off = Env::new(reg.port, "", "push_policy:\n  compression_enabled: false\n");
    let p = off.json(&["push", "extension", text.to_str().unwrap(), "text:2"]);
    assert_eq!(
        p["layer"]["mediaType"], "application/vnd.oci.image.layer.v1.tar",
        "{p}"
    );
    let shown = off.ok(&["inspect", "provisioning-extensions/text:2"]);
    assert!(!shown.contains("stored uncompressed"), "{shown}");
}

/// `manifest get` (exact bytes, pretty, descriptor) and `blob get` (stdout, file) of a pushed
/// bundle whose second layer is the file `b`.
fn manifest_and_blob_get(env: &Env, digest: &str, layer: &Value, b: &str) {
    // manifest get: the exact bytes (they hash to the digest), pretty, the descriptor.
    let raw = env
        .cmd(&["manifest", "get", "team/bundle:v1"])
        .output()
        .unwrap();
    assert!(raw.status.success());
    assert_eq!(crate::common::sha256(&raw.stdout), digest);
    let m: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(m["subject"], Value::Null);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let pretty = env.ok(&["manifest", "get", "team/bundle:v1", "--pretty"]);
    assert!(pretty.contains("\n  \"schemaVersion\": 2"), "{pretty}");
    let desc: Value =
        serde_json::from_str(&env.ok(&["manifest", "get", "team/bundle:v1", "--descriptor"]))
            .unwrap();
    assert_eq!(desc["digest"], digest);
    assert_eq!(desc["size"], raw.stdout.len());

    // blob get to stdout and to a file; the bytes are the file's.
    let layer = s(layer, "digest").to_owned();
    let out = env
        .cmd(&["blob", "get", &format!("team/bundle@{layer}"), "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, fs::read(b).unwrap());
    let file = env.path("got.bin");
    let got = env.json(&[
        "blob",
        "get",
        &format!("team/bundle@{layer}"),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(got["size"].as_u64(), Some(200_000));
    assert_eq!(fs::read(&file).unwrap(), fs::read(b).unwrap());
    let out = env.run(&["blob", "get", "team/bundle:v1", "-o", "-"]);
    assert_eq!(
        code(&out),
        Some(2),
        "a blob needs a digest: {}",
        stderr(&out)
    );
}

/// `tag`: new tags point to the pushed manifest `digest` without copying; the overwrite rule.
fn tag_without_copying(env: &Env, port: u16, digest: &str) {
    // tag: new tags point to the same manifest without copying.
    let tagged = env.json(&["tag", "team/bundle:v1", "stable", "latest"]);
    assert_eq!(s(&tagged, "digest"), digest);
    for t in ["stable", "latest"] {
        assert_eq!(
            env.ok(&["digest", &format!("team/bundle:{t}"), "-q"])
                .trim(),
            digest
        );
    }
    let text = env.ok(&["tag", "team/bundle:v1", "stable"]);
    assert!(
        text.contains(&format!(
            "team/bundle:stable already points to {digest} (unchanged)"
        )),
        "{text}"
    );
    // A tag holding other content is refused (allow_overwrite false), then moved with --force.
    let other = env.path("other.txt");
    fs::write(&other, b"other").unwrap();
    env.ok(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/bundle:v2",
        other.to_str().unwrap(),
    ]);
    let env_strict = Env::new(port, "", "push_policy:\n  allow_overwrite: false\n");
    let out = env_strict.run(&["tag", "team/bundle:v2", "stable"]);
    assert_eq!(code(&out), Some(9), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already points to"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.ok(&["digest", "team/bundle:stable", "-q"]).trim(),
        digest,
        "refused: unchanged"
    );
    let moved = env_strict.json(&["tag", "team/bundle:v2", "stable", "--force"]);
    assert_eq!(moved["tags"][0]["movedFrom"], digest);
    // The generic push honours the same rule.
    let out = env_strict.run(&[
        "push",
        "--artifact-type",
        "application/x",
        "team/bundle:v1",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(9), "{}", stderr(&out));
}
