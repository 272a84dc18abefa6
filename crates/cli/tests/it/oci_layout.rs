//! `ocireg copy` to and from OCI image layout directories (`oci:DIR:TAG`), checked with the
//! real `skopeo` both ways: what ocireg writes skopeo reads, and what skopeo writes ocireg
//! reads, digests preserved.
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::client_support::*;
use crate::common::assert_success;
use serde_json::{json, Value};

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert_success(&out, &format!("skopeo {args:?}"));
    out.stdout
}

fn index_json(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn copy_to_and_from_layouts_with_skopeo_on_the_other_side() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let host = reg.host();
    let src = env.tree_at("src", "layout");
    let pushed = env.json(&["push", "extension", src.to_str().unwrap(), "img:1"]);
    let digest = pushed["digest"].as_str().unwrap().to_owned();

    // ocireg writes a layout; skopeo reads it and pushes it with the same digest.
    let lay = env.path("lay");
    let out = env.json(&[
        "copy",
        "provisioning-extensions/img:1",
        &format!("oci:{}:v1", lay.display()),
    ]);
    assert_eq!(out["digest"], digest.as_str());
    assert_eq!(
        out["blobs"]["copied"].as_u64(),
        Some(2),
        "config and layer: {out}"
    );
    assert_eq!(
        fs::read_to_string(lay.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let idx = index_json(&lay);
    assert_eq!(idx["manifests"][0]["digest"], digest.as_str());
    assert_eq!(
        idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", lay.display())]);
    assert_eq!(crate::common::sha256(&raw), digest);
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", lay.display()),
        &format!("docker://{host}/sk/img:v1"),
    ]);
    assert_eq!(env.ok(&["digest", "sk/img:v1", "-q"]).trim(), digest);
    // A second copy into the same layout finds every blob there.
    let again = env.json(&[
        "copy",
        "provisioning-extensions/img:1",
        &format!("oci:{}:v1", lay.display()),
    ]);
    assert_eq!(again["blobs"]["existed"].as_u64(), Some(2), "{again}");
    assert_eq!(index_json(&lay)["manifests"].as_array().unwrap().len(), 1);

    // skopeo writes a layout; ocireg reads it, and the artifact pulls back whole.
    let sk = env.path("sk");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{host}/provisioning-extensions/img:1"),
        &format!("oci:{}:t1", sk.display()),
    ]);
    let back = env.json(&["copy", &format!("oci:{}:t1", sk.display()), "back/img"]);
    assert_eq!(back["digest"], digest.as_str());
    assert_eq!(
        back["destination"],
        format!("{host}/back/img:t1"),
        "the layout's tag is kept"
    );
    let out_dir = env.path("out");
    env.ok(&["pull", "back/img:t1", "-o", out_dir.to_str().unwrap()]);
    assert_same_tree(&src, &out_dir);

    layout_errors(&env, reg.port, &src, &sk);
}

/// Copies from layouts that cannot work: a tag the layout `sk` lacks (not found), a directory
/// that is no layout (`src`), and the overwrite rule of push.
fn layout_errors(env: &Env, port: u16, src: &Path, sk: &Path) {
    // Errors: a tag the layout lacks (not found), a directory that is no layout (unreadable
    // input: failed), the overwrite rule of push.
    let out = env.run(&["copy", &format!("oci:{}:nope", sk.display()), "back/img:x"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no manifest named \"nope\""));
    let out = env.run(&["copy", &format!("oci:{}:x", src.display()), "back/img:x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an OCI image layout"));
    let other = env.tree_at("other", "other");
    env.ok(&["push", "extension", other.to_str().unwrap(), "other:1"]);
    let strict = Env::new(port, "", "push_policy:\n  allow_overwrite: false\n");
    let out = strict.run(&[
        "copy",
        &format!("oci:{}:t1", sk.display()),
        "provisioning-extensions/other:1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    strict.ok(&[
        "copy",
        &format!("oci:{}:t1", sk.display()),
        "provisioning-extensions/other:1",
        "--force",
    ]);
}

#[test]
fn an_index_and_its_children_travel_through_layouts() {
    let reg = Registry::ocireg();
    let env = Env::new(reg.port, "", "");
    let host = reg.host();
    let (a, b) = (env.path("a.txt"), env.path("b.bin"));
    fs::write(&a, b"first").unwrap();
    fs::write(&b, random_bytes(50_000)).unwrap();
    let mut children = Vec::new();
    for (tag, file) in [("a", &a), ("b", &b)] {
        let p = env.json(&[
            "push",
            "--artifact-type",
            "application/x",
            &format!("team/multi:{tag}"),
            file.to_str().unwrap(),
        ]);
        let d = p["digest"].as_str().unwrap().to_owned();
        let raw = env
            .cmd(&["manifest", "get", &format!("team/multi@{d}")])
            .output()
            .unwrap();
        children.push(json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": raw.stdout.len()}));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children,
    }))
    .unwrap();
    let put = crate::common::client()
        .put(format!("http://{host}/v2/team/multi/manifests/idx"))
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(index.clone())
        .send()
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let index_digest = crate::common::sha256(&index);

    let lay = env.path("lay");
    let out = env.json(&[
        "copy",
        "team/multi:idx",
        &format!("oci:{}:all", lay.display()),
    ]);
    assert_eq!(out["manifests"].as_u64(), Some(3), "{out}");
    // Only the index is named in index.json; its children are blobs of the layout.
    assert_eq!(index_json(&lay)["manifests"].as_array().unwrap().len(), 1);
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:all", lay.display()),
        &format!("docker://{host}/sk/multi:all"),
    ]);
    assert_eq!(
        env.ok(&["digest", "sk/multi:all", "-q"]).trim(),
        index_digest
    );
    let sk = env.path("sk");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{host}/sk/multi:all"),
        &format!("oci:{}:x", sk.display()),
    ]);
    let back = env.json(&["copy", &format!("oci:{}:x", sk.display()), "back/multi:y"]);
    assert_eq!(back["digest"], index_digest.as_str());
    assert_eq!(back["manifests"].as_u64(), Some(3), "{back}");
    for child in &children {
        let d = child["digest"].as_str().unwrap();
        assert_eq!(
            env.ok(&["digest", &format!("back/multi@{d}"), "-q"]).trim(),
            d
        );
    }
}
