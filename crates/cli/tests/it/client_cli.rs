//! End-to-end tests of the client commands (`push`, `pull`, `tags`, `catalog`, `inspect`, `rm`,
//! `copy`, `login`, `logout`) with the real binary against `ocireg serve` and Debian's
//! docker-registry (CNCF Distribution 2.8.2) with htpasswd auth.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::client_support::*;
use crate::tampering::TamperingRegistry;
use serde_json::Value;

const KINDS: [(&str, &str, &str); 5] = [
    (
        "extension",
        "provisioning-extensions",
        "application/vnd.provisioning.extension.v1",
    ),
    (
        "kcl-package",
        "provisioning-kcl",
        "application/vnd.provisioning.kcl-package.v1",
    ),
    (
        "platform-image",
        "provisioning-platform",
        "application/vnd.provisioning.platform-image.v1",
    ),
    (
        "test-image",
        "provisioning-test",
        "application/vnd.provisioning.test-image.v1",
    ),
    (
        "custom:tools",
        "team-tools",
        "application/vnd.provisioning.custom.v1",
    ),
];

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// Pushes a tree of every kind and pulls each back byte-exact.
fn round_trip_all_kinds(env: &Env) {
    for (i, (kind, ns, artifact_type)) in KINDS.iter().enumerate() {
        let src = env.tree_at(&format!("src-{i}"), kind);
        let pushed = env.json(&["push", kind, src.to_str().unwrap(), "thing:1.0"]);
        assert_eq!(s(&pushed, "repository"), format!("{ns}/thing"));
        assert_eq!(s(&pushed, "artifactType"), *artifact_type);
        let digest = s(&pushed, "digest").to_owned();
        assert!(digest.starts_with("sha256:"));
        let out = env.path(&format!("out-{i}"));
        let pulled = env.json(&[
            "pull",
            &format!("{ns}/thing:1.0"),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(s(&pulled, "digest"), digest);
        assert_eq!(s(&pulled, "kind"), *kind);
        assert_same_tree(&src, &out);
        // --quiet prints only the digest.
        let q = env.ok(&["push", kind, src.to_str().unwrap(), "thing:1.0", "--quiet"]);
        assert_eq!(
            q.trim(),
            digest,
            "a same-content re-push reports the tag's digest"
        );
    }
}

#[test]
fn round_trip_every_kind_against_ocireg() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    round_trip_all_kinds(&env);
    // The default name is PATH's file name, sanitised; the text output names the reference.
    let odd = env.tree_at("My Odd_Name", "odd");
    let text = env.ok(&[
        "push",
        "extension",
        odd.to_str().unwrap(),
        "--version",
        "2.0.0",
    ]);
    assert!(
        text.contains(&format!(
            "{}/provisioning-extensions/my-odd_name:v2.0.0-",
            reg.host()
        )),
        "{text}"
    );
}

#[test]
fn round_trip_every_kind_against_distribution_with_htpasswd() {
    let reg = Registry::distribution();
    let env = Env::new(reg.port, "", "");
    // Without credentials the registry refuses.
    let src = env.tree_at("anon", "anon");
    let out = env.run(&["push", "extension", src.to_str().unwrap(), "anon:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    let want = format!(
        "error: checking {}/provisioning-extensions/anon:1: authentication failed: \
         the registry requires credentials (Basic) and none are configured",
        reg.host()
    );
    assert_eq!(err.trim_end(), want);
    // Credentials from the config: username + password_path.
    let pw = env.path("password");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    env.write_config(
        reg.port,
        &format!(
            "auth_required: true\nusername: {USER}\npassword_path: {}",
            pw.display()
        ),
        "",
    );
    round_trip_all_kinds(&env);
}

#[test]
fn overwrite_policy() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let src = env.tree_at("src", "one");
    let first = env.json(&["push", "extension", src.to_str().unwrap(), "app:v1"]);
    assert_eq!(first["unchanged"], false);
    std::thread::sleep(Duration::from_millis(1100)); // a new `created` time
    let again = env.json(&["push", "extension", src.to_str().unwrap(), "app:v1"]);
    assert_eq!(again["unchanged"], true, "{again}");
    assert_eq!(again["digest"], first["digest"]);
    fs::write(src.join("README.md"), "changed\n").unwrap();
    let err = env.fails(&["push", "extension", src.to_str().unwrap(), "app:v1"]);
    assert!(err.contains("allow_overwrite"), "{err}");
    let tag_digest = env.json(&["inspect", "provisioning-extensions/app:v1"]);
    assert_eq!(
        tag_digest["digest"], first["digest"],
        "the tag must not move"
    );
    let path = src.to_str().unwrap();
    let forced = env.json(&["push", "extension", path, "app:v1", "--force"]);
    assert_ne!(forced["digest"], first["digest"], "--force moves the tag");
    env.write_config(reg.port, "", "push_policy:\n  allow_overwrite: true\n");
    let moved = env.json(&["push", "extension", src.to_str().unwrap(), "app:v1"]);
    assert_ne!(moved["digest"], first["digest"]);
    let now = env.json(&["inspect", "provisioning-extensions/app:v1"]);
    assert_eq!(now["digest"], moved["digest"]);
}

#[test]
fn copy_follows_the_overwrite_rule() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let (one, two) = (env.tree_at("one", "one"), env.tree_at("two", "two"));
    let a = env.json(&["push", "extension", one.to_str().unwrap(), "app:v1"]);
    let b = env.json(&["push", "extension", two.to_str().unwrap(), "app:v2"]);
    let (src, dst) = (
        "provisioning-extensions/app:v2",
        "provisioning-extensions/app:v1",
    );
    let err = env.fails(&["copy", src, dst]);
    assert!(
        err.contains("allow_overwrite") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        env.json(&["inspect", dst])["digest"],
        a["digest"],
        "the tag must not move"
    );
    // A tag that already holds the same manifest is no conflict.
    let same = "provisioning-extensions/app:v3";
    env.json(&["copy", dst, same]);
    assert_eq!(env.json(&["copy", dst, same])["digest"], a["digest"]);
    let moved = env.json(&["copy", src, dst, "--force"]);
    assert_eq!(moved["digest"], b["digest"]);
    assert_eq!(env.json(&["inspect", dst])["digest"], b["digest"]);
}

#[test]
fn auto_tag_format() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let src = env.tree_at("src", "auto");
    let p = env.json(&[
        "push",
        "kcl-package",
        src.to_str().unwrap(),
        "lib",
        "--version",
        "1.2.3",
    ]);
    let tag = s(&p, "tag");
    let re = regex_lite(tag);
    assert!(re, "tag {tag:?} must match v1.2.3-YYYYMMDDTHHMMSSZ");
    let tags = env.json(&["tags", "provisioning-kcl/lib"]);
    assert_eq!(tags["tags"], serde_json::json!([tag]));
    // The format needs {version}: refused without --version.
    let err = env.fails(&["push", "kcl-package", src.to_str().unwrap(), "lib"]);
    assert!(err.contains("--version"), "{err}");
    // A version that makes an invalid tag is refused by the tag rule.
    let err = env.fails(&[
        "push",
        "kcl-package",
        src.to_str().unwrap(),
        "lib",
        "--version",
        "1+x",
    ]);
    assert!(err.contains("not a valid tag"), "{err}");
    // Custom format; auto_tag off → latest.
    env.write_config(
        reg.port,
        "",
        "push_policy:\n  tag_format: \"build-{timestamp}\"\n",
    );
    let p = env.json(&["push", "kcl-package", src.to_str().unwrap(), "lib2"]);
    let t = s(&p, "tag");
    assert!(
        t.starts_with("build-") && t.len() == "build-".len() + 16 && t.ends_with('Z'),
        "{t}"
    );
    env.write_config(reg.port, "", "push_policy:\n  auto_tag: false\n");
    let p = env.json(&["push", "kcl-package", src.to_str().unwrap(), "lib3"]);
    assert_eq!(s(&p, "tag"), "latest");
}

/// `v1.2.3-` + `YYYYMMDDTHHMMSSZ` with plausible field values.
fn regex_lite(tag: &str) -> bool {
    let Some(ts) = tag.strip_prefix("v1.2.3-") else {
        return false;
    };
    let b = ts.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && (1..=12).contains(&ts[4..6].parse::<u32>().unwrap())
        && ts[9..11].parse::<u32>().unwrap() < 24
}

#[test]
fn pull_cache_hit_miss_and_never() {
    let mut reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let src = env.tree_at("src", "cache");
    env.json(&["push", "test-image", src.to_str().unwrap(), "env:1"]);
    env.json(&["push", "test-image", src.to_str().unwrap(), "other:1"]);
    let first = env.json(&["pull", "provisioning-test/env:1", "-o", "a"]);
    assert_eq!(first["cached"]["manifest"], false);
    assert_eq!(first["cached"]["layer"], false);
    reg.stop();
    // Hit: the registry is gone, if-not-present serves from the cache.
    let second = env.json(&["pull", "provisioning-test/env:1", "-o", "b"]);
    assert_eq!(second["cached"]["manifest"], true);
    assert_eq!(second["cached"]["layer"], true);
    assert_eq!(second["digest"], first["digest"]);
    assert_same_tree(&src, &env.path("b"));
    // Miss: never pulled, the registry is gone → a connection error.
    let err = env.fails(&["pull", "provisioning-test/other:1", "-o", "c"]);
    assert!(err.contains("no registry answers on"), "{err}");
    // never: served from the cache when present, a clear error when not.
    env.write_config(reg.port, "", "pull_policy:\n  policy: never\n");
    env.json(&["pull", "provisioning-test/env:1", "-o", "d"]);
    assert_same_tree(&src, &env.path("d"));
    let err = env.fails(&["pull", "provisioning-test/other:1", "-o", "e"]);
    assert!(
        err.contains("not in the local cache") && err.contains("never"),
        "{err}"
    );
    assert!(!env.path("e").exists());
    // never with an empty cache (another HOME).
    let fresh = Env::new(reg.port, "", "pull_policy:\n  policy: never\n");
    let err = fresh.fails(&["pull", "provisioning-test/env:1", "-o", "x"]);
    assert!(err.contains("not in the local cache"), "{err}");
}

#[test]
fn pull_cache_expiry_and_corruption() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "pull_policy:\n  cache_ttl: 1\n");
    let src = env.tree_at("src", "ttl");
    let pushed = env.json(&["push", "platform-image", src.to_str().unwrap(), "svc:1"]);
    env.json(&["pull", "provisioning-platform/svc:1", "-o", "a"]);
    std::thread::sleep(Duration::from_millis(1500));
    // Expired tag entry: the manifest is fetched again; the layer (content addressed) is reused.
    let p = env.json(&["pull", "provisioning-platform/svc:1", "-o", "b"]);
    assert_eq!(p["cached"]["manifest"], false, "{p}");
    assert_eq!(p["cache"]["expired"], 1, "{p}");
    assert_eq!(p["cached"]["layer"], true);
    // never + expired → error.
    std::thread::sleep(Duration::from_millis(1500));
    env.write_config(
        reg.port,
        "",
        "pull_policy:\n  policy: never\n  cache_ttl: 1\n",
    );
    let err = env.fails(&["pull", "provisioning-platform/svc:1", "-o", "c"]);
    assert!(err.contains("expired"), "{err}");
    // Corruption: flip a byte of the cached layer → dropped and re-fetched.
    env.write_config(reg.port, "", "pull_policy:\n  cache_ttl: 3600\n");
    let layer = s(&pushed["layer"], "digest")
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = env.cache_dir().join("blobs/sha256").join(&layer);
    let good = fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x40;
    fs::write(&blob, &bad).unwrap();
    let p = env.json(&["pull", "provisioning-platform/svc:1", "-o", "d"]);
    assert_eq!(p["cached"]["layer"], false, "{p}");
    assert_eq!(p["cache"]["corrupt"], 1, "{p}");
    assert_same_tree(&src, &env.path("d"));
    assert_eq!(
        fs::read(&blob).unwrap(),
        good,
        "the cache holds the re-fetched blob"
    );
    // always: the registry is asked even with a fresh entry.
    env.write_config(reg.port, "", "pull_policy:\n  policy: always\n");
    let p = env.json(&["pull", "provisioning-platform/svc:1", "-o", "e"]);
    assert_eq!(p["cached"]["manifest"], false);
    // An existing non-empty destination is refused before anything is fetched.
    let err = env.fails(&["pull", "provisioning-platform/svc:1", "-o", "e"]);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn require_signing_is_refused() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "push_policy:\n  require_signing: true\n");
    let src = env.tree_at("src", "sig");
    let err = env.fails(&["push", "extension", src.to_str().unwrap(), "signed:1"]);
    assert!(
        err.contains("require_signing") && err.contains("signing"),
        "{err}"
    );
    let cat = env.json(&["catalog"]);
    assert_eq!(
        cat["repositories"],
        serde_json::json!([]),
        "nothing was pushed"
    );
}

fn mode(p: &std::path::Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn login_logout_and_docker_config() {
    let reg = Registry::distribution();
    let env = Env::new(reg.port, "", "");
    let src = env.tree_at("src", "login");
    let host = reg.host();
    // A wrong password is refused and nothing is stored.
    assert!(!env.login(&host, "wrong\n").status.success());
    assert!(!env.credentials().exists());
    env.login_ok(&host, &format!("{PASSWORD}\n"));
    assert_eq!(mode(&env.credentials()), 0o600);
    let text = fs::read_to_string(env.credentials()).unwrap();
    assert!(
        text.contains(&host) && !text.contains(PASSWORD),
        "stored base64, not clear text"
    );
    env.json(&["push", "extension", src.to_str().unwrap(), "withlogin:1"]);
    let out = env.json(&["logout", &host]);
    assert_eq!(out["removed"], true);
    assert_eq!(mode(&env.credentials()), 0o600);
    assert!(!fs::read_to_string(env.credentials())
        .unwrap()
        .contains(&host));
    env.fails(&["push", "extension", src.to_str().unwrap(), "withlogin:2"]);
    // Docker's config.json is read too.
    let docker = env.home.join(".docker");
    fs::create_dir_all(&docker).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs::write(
        docker.join("config.json"),
        serde_json::json!({"auths": {host.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    env.json(&["push", "extension", src.to_str().unwrap(), "withlogin:3"]);
    let tags = env.json(&["tags", "provisioning-extensions/withlogin"]);
    let mut tags: Vec<String> = serde_json::from_value(tags["tags"].clone()).unwrap();
    tags.sort(); // Distribution 2.8 lists unpaginated tags in no particular order
    assert_eq!(tags, ["1", "3"]);
}

#[test]
fn tags_catalog_inspect_rm_copy() {
    let reg = Registry::ocireg();
    let dist = Registry::distribution();
    let env = Env::new(reg.port, "", "");
    let src = env.tree_at("src", "ops");
    let a = push_two_versions_and_list_them(&env, &src);
    inspect_shows_the_manifest(&env, &reg, &a);
    let dst = copy_mounts_within_and_streams_across(&env, &reg, &dist, &src, &a);
    rm_by_tag_then_by_digest(&env, &a, &dst);
}

/// Pushes `src` as `tool:1.0` (annotated) and another tree as `tool:2.0`; `tags` (whole and
/// paged) and `catalog` list them. Returns the first push's report.
fn push_two_versions_and_list_them(env: &Env, src: &std::path::Path) -> Value {
    let src2 = env.tree_at("src2", "ops2");
    let a = env.json(&[
        "push",
        "extension",
        src.to_str().unwrap(),
        "tool:1.0",
        "-a",
        "org.example.team=infra",
    ]);
    env.json(&["push", "extension", src2.to_str().unwrap(), "tool:2.0"]);
    let tags = env.json(&["tags", "provisioning-extensions/tool"]);
    assert_eq!(tags["tags"], serde_json::json!(["1.0", "2.0"]));
    let page = env.json(&["tags", "provisioning-extensions/tool", "--n", "1"]);
    assert_eq!(page["tags"], serde_json::json!(["1.0"]));
    assert_eq!(page["more"], true);
    let page = env.json(&[
        "tags",
        "provisioning-extensions/tool",
        "--n",
        "1",
        "--last",
        "1.0",
    ]);
    assert_eq!(page["tags"], serde_json::json!(["2.0"]));
    let cat = env.json(&["catalog"]);
    assert_eq!(
        cat["repositories"],
        serde_json::json!(["provisioning-extensions/tool"])
    );
    a
}

/// `inspect` (JSON and text) shows the digest, media and artifact type, annotations, size and
/// referrers of the pushed `a`.
fn inspect_shows_the_manifest(env: &Env, reg: &Registry, a: &Value) {
    let ins = env.json(&["inspect", "provisioning-extensions/tool:1.0"]);
    assert_eq!(ins["digest"], a["digest"]);
    assert_eq!(
        s(&ins, "mediaType"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        s(&ins, "artifactType"),
        "application/vnd.provisioning.extension.v1"
    );
    assert_eq!(
        s(&ins["annotations"], "org.opencontainers.image.title"),
        "tool"
    );
    assert_eq!(s(&ins["annotations"], "org.example.team"), "infra");
    assert!(ins["size"].as_u64().unwrap() > 100);
    assert_eq!(ins["referrers"], serde_json::json!([]));
    let text = env.ok(&[
        "inspect",
        &format!("{}/provisioning-extensions/tool:1.0", reg.host()),
    ]);
    assert!(
        text.contains(s(a, "digest")) && text.contains("referrers"),
        "{text}"
    );
}

/// `copy` within one registry mounts the blobs; to the docker-registry (logged in) it streams
/// them, and the copy pulls back as `src`. Returns the copy's reference there.
fn copy_mounts_within_and_streams_across(
    env: &Env,
    reg: &Registry,
    dist: &Registry,
    src: &std::path::Path,
    a: &Value,
) -> String {
    let c = env.json(&[
        "copy",
        "provisioning-extensions/tool:1.0",
        "mirror/tool:1.0",
    ]);
    assert_eq!(c["digest"], a["digest"]);
    assert_eq!(c["blobs"]["streamed"], 0, "{c}");
    assert_eq!(c["blobs"]["mounted"], 2, "{c}");
    env.login_ok(&dist.host(), PASSWORD);
    let dst = format!("{}/copied/tool:1.0", dist.host());
    let c = env.json(&[
        "copy",
        &format!("{}/provisioning-extensions/tool:1.0", reg.host()),
        &dst,
    ]);
    assert_eq!(c["digest"], a["digest"]);
    assert_eq!(c["blobs"]["streamed"], 2, "{c}");
    let pulled = env.json(&["pull", &dst, "-o", "from-dist"]);
    assert_eq!(pulled["digest"], a["digest"]);
    assert_same_tree(src, &env.path("from-dist"));
    dst
}

/// `rm` by tag, then by digest, then of the copy `dst`; each is gone afterwards.
fn rm_by_tag_then_by_digest(env: &Env, a: &Value, dst: &str) {
    let rm = env.json(&["rm", "provisioning-extensions/tool:2.0"]);
    assert!(rm["digest"].as_str().unwrap().starts_with("sha256:"));
    let tags = env.json(&["tags", "provisioning-extensions/tool"]);
    assert_eq!(tags["tags"], serde_json::json!(["1.0"]));
    env.fails(&["inspect", "provisioning-extensions/tool:2.0"]);
    let d = s(a, "digest");
    env.json(&["rm", &format!("provisioning-extensions/tool@{d}")]);
    env.fails(&["inspect", &format!("provisioning-extensions/tool@{d}")]);
    env.json(&["rm", dst]);
    let err = env.fails(&["inspect", dst]);
    assert!(
        err.contains("404") || err.contains("MANIFEST_UNKNOWN"),
        "{err}"
    );
}

#[test]
fn corrupt_streamed_pull_leaves_nothing_in_dir_or_cache() {
    use ocireg_client::artifact::{pack, ArtifactKind, PackOptions};
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src, "tamper");
    let packed = pack(
        &src,
        &PackOptions::new(ArtifactKind::Extension, "app"),
        work.path(),
    )
    .unwrap();
    let good = fs::read(&packed.layer.path).unwrap();
    // Flip a byte in the last file's content (past the first 512-byte header), keeping the tar
    // well formed: only the digest can tell.
    let mut bad = good.clone();
    let at = good.len() - 1024 - 1;
    let at = (0..at).rev().find(|i| good[*i] != 0).unwrap();
    bad[at] ^= 0x01;
    let layer_digest = packed.layer.descriptor.digest.to_string();
    let cfg = &packed.config;
    let reg = TamperingRegistry::start(
        packed.manifest.bytes.clone(),
        vec![
            (layer_digest.clone(), good.clone(), bad),
            (
                cfg.descriptor.digest.to_string(),
                cfg.bytes.clone(),
                cfg.bytes.clone(),
            ),
        ],
    );
    let env = Env::new(reg.port, "", "pull_policy:\n  policy: always\n");
    let cache_blob = env
        .cache_dir()
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    let out = env.path("out/dir");

    reg.corrupt.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = env.fails(&[
        "pull",
        "provisioning-extensions/app:1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(!out.exists(), "nothing in DIR");
    assert_eq!(
        names_in(&env.path("out")),
        Vec::<String>::new(),
        "no staging left"
    );
    assert!(!cache_blob.exists(), "no layer in the cache");
    assert_eq!(names_in(&env.cache_dir().join("tmp")), Vec::<String>::new());

    // Control: the same pull with the real bytes unpacks the tree and caches the layer.
    reg.corrupt
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let p = env.json(&[
        "pull",
        "provisioning-extensions/app:1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(p["cached"]["layer"], false, "{p}");
    assert_same_tree(&src, &out);
    assert_eq!(fs::read(&cache_blob).unwrap(), good);
    assert_eq!(names_in(&env.cache_dir().join("tmp")), Vec::<String>::new());
}

#[test]
fn a_registry_that_is_not_running_fails_at_once_with_a_hint() {
    let port = ocireg_test_support::free_port();
    let env = Env::new(port, "", "");
    // Retries that would take 5 + 10 + 20 s if a refused connection were retried.
    fs::write(&env.config, retrying_config(port, 3, 5)).unwrap();
    for args in [
        vec!["catalog"],
        vec!["tags", "provisioning-test/app"],
        vec!["inspect", "provisioning-test/app:1"],
    ] {
        let start = std::time::Instant::now();
        let err = env.fails(&args);
        let secs = start.elapsed().as_secs_f64();
        assert!(secs < 3.0, "{args:?} took {secs:.1} s");
        let want = format!(
            "no registry answers on 127.0.0.1:{port} — start it with \"ocireg up\" or \"ocireg serve\""
        );
        assert!(err.contains(&want), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
    // A reference by digest is shown as `name@digest`.
    let digest = format!("sha256:{}", "0".repeat(64));
    let by_digest = format!("provisioning-test/app@{digest}");
    let err = env.fails(&["pull", &by_digest, "-o", "x"]);
    assert!(err.contains(&format!("/{by_digest}")), "{err}");
}

#[test]
fn retries_are_announced_as_they_happen() {
    // A registry that accepts connections and closes them at once: every attempt fails.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let closer = std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => drop(conn),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let env = Env::new(port, "", "");
    fs::write(&env.config, retrying_config(port, 2, 0)).unwrap();
    let err = env.fails(&["catalog"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    closer.join().unwrap();
    assert!(err.contains("retrying in 0 s (1/2)"), "{err}");
    assert!(err.contains("retrying in 0 s (2/2)"), "{err}");
    assert_eq!(err.matches("retrying in").count(), 2, "{err}");
    // Log lines to a pipe or a file carry no colour escapes.
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn a_push_of_a_missing_path_asks_nothing_of_the_registry() {
    let serve = ocireg_test_support::Serve::start();
    let env = Env::new(serve.port(), "", "");
    let missing = env.path("no-such-dir");
    let err = env.fails(&["push", "extension", missing.to_str().unwrap(), "app:v1"]);
    assert!(
        err.contains(&format!("reading {}", missing.display())),
        "{err}"
    );
    assert!(err.contains("No such file or directory"), "{err}");
    // No upload session was opened (nor anything else stored).
    let root = serve.root.clone().unwrap();
    assert!(names_in(&root.join("repositories")).is_empty(), "{root:?}");
    // One access-log line per request: method, path, status, bytes, duration, client, user.
    env.ok(&["catalog"]);
    let log = serve.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("path=/v2/_catalog") && l.contains("response"))
        .unwrap_or_else(|| panic!("no access line for the catalog in {log}"));
    for field in [
        "method=GET",
        "status=200",
        "bytes=",
        "micros=",
        "peer=127.0.0.1:",
        "user=-",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
    // `serve` logs to a file here: plain text, no colour escapes.
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

/// A remote-registry config on 127.0.0.1:`port` with the given retries and first retry delay.
fn retrying_config(port: u16, retries: u32, delay_secs: u32) -> String {
    format!(
        "registry:\n  deployment: remote\n  type: distribution\n  endpoint: 127.0.0.1\n  \
         port: {port}\n  namespaces:\n    custom:\n      tools: team-tools\n  \
         remote:\n    retries: {retries}\n    retry_delay: {delay_secs}\n"
    )
}
