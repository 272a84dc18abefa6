//! End-to-end tests with real third-party clients: Debian's `skopeo` and PyPI's `oras` SDK.
//!
//! Both are installed by scripts/install-test-deps.sh; a missing client fails the test.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

/// Runs a command; panics with its output unless it succeeds; returns stdout.
fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run {cmd:?}: {e} (run scripts/install-test-deps.sh)")
    });
    assert_success(&out, &format!("{what}: {cmd:?}"));
    out.stdout
}

fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

/// An OCI image layout written by the test: blob bytes by digest, and the tagged roots.
struct Layout {
    dir: PathBuf,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
            blobs: BTreeMap::new(),
        }
    }

    fn add(&mut self, data: Vec<u8>) -> String {
        let d = sha256(&data);
        fs::write(
            self.dir.join("blobs/sha256").join(&d["sha256:".len()..]),
            &data,
        )
        .unwrap();
        self.blobs.insert(d.clone(), data);
        d
    }

    /// A gzip-compressed tar layer holding one random file; returns (descriptor, diff_id).
    fn layer(&mut self, name: &str, size: usize) -> (Value, String) {
        let mut tar = tar::Builder::new(Vec::new());
        let content = random_bytes(size);
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, format!("data/{name}"), content.as_slice())
            .unwrap();
        let tar = tar.into_inner().unwrap();
        let diff_id = sha256(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let size = gz.len();
        let d = self.add(gz);
        (
            json!({"mediaType": OCI_LAYER_GZIP, "digest": d, "size": size}),
            diff_id,
        )
    }

    /// An image with the given layer sizes (plus `shared` layers reused as-is); returns the
    /// manifest descriptor.
    fn image(
        &mut self,
        arch: &str,
        sizes: &[usize],
        shared: &[(Value, String)],
    ) -> (Value, Vec<(Value, String)>) {
        let mut layers: Vec<(Value, String)> = shared.to_vec();
        for (i, s) in sizes.iter().enumerate() {
            layers.push(self.layer(&format!("{arch}-{i}.bin"), *s));
        }
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>()},
            "history": layers.iter().enumerate().map(|(i, _)| json!({"created_by": format!("ocireg e2e layer {i}")})).collect::<Vec<_>>()
        }))
        .unwrap();
        let config_len = config.len();
        let cd = self.add(config);
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config_len},
            "layers": layers.iter().map(|l| l.0.clone()).collect::<Vec<_>>(),
            "annotations": {"org.opencontainers.image.description": format!("ocireg e2e {arch}")}
        }))
        .unwrap();
        let len = manifest.len();
        let md = self.add(manifest);
        (
            json!({"mediaType": OCI_MANIFEST, "digest": md, "size": len, "platform": {"architecture": arch, "os": "linux"}}),
            layers,
        )
    }

    fn write_index(&self, roots: &[(String, Value)]) {
        let manifests: Vec<Value> = roots
            .iter()
            .map(|(tag, d)| {
                let mut d = d.clone();
                d.as_object_mut().unwrap().remove("platform");
                d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index).unwrap(),
        )
        .unwrap();
    }
}

/// Reads an OCI layout back: the digest tagged `tag` and every blob.
fn read_layout(dir: &Path, tag: &str) -> (String, BTreeMap<String, Vec<u8>>) {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let root = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("tag {tag} not in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut blobs = BTreeMap::new();
    for e in fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let d = format!("sha256:{}", e.file_name().to_string_lossy());
        let data = fs::read(e.path()).unwrap();
        assert!(
            digest_matches(&d, &data),
            "pulled blob {d} does not match its digest"
        );
        blobs.insert(d, data);
    }
    (root, blobs)
}

/// The source layout of the skopeo test: a two-arch image, tagged `v1` (amd64) and `multi`
/// (the index).
struct TwoArch {
    lay: Layout,
    amd64_digest: String,
    index_digest: String,
    /// The amd64 manifest, its config and its layers.
    amd64_blobs: Vec<String>,
    /// The amd64 layers' descriptors.
    amd64_layers: Vec<Value>,
}

impl TwoArch {
    /// amd64: 4 layers, one of 3 MiB; arm64 shares the first layer and adds one.
    fn write(src: &Path) -> TwoArch {
        let mut lay = Layout::new(src);
        let (amd64, amd_layers) =
            lay.image("amd64", &[20_000, 3 * 1024 * 1024 + 7, 200_000, 512], &[]);
        let (arm64, _) = lay.image("arm64", &[70_000], &amd_layers[..1]);
        let index = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd64.clone(), arm64]
        }))
        .unwrap();
        let index_len = index.len();
        let index_digest = lay.add(index);
        let multi = json!({"mediaType": OCI_INDEX, "digest": index_digest, "size": index_len});
        lay.write_index(&[
            ("v1".to_string(), amd64.clone()),
            ("multi".to_string(), multi),
        ]);
        let amd64_digest = amd64["digest"].as_str().unwrap().to_string();
        let amd64_manifest: Value = serde_json::from_slice(&lay.blobs[&amd64_digest]).unwrap();
        let amd64_layers: Vec<Value> = amd_layers.iter().map(|l| l.0["digest"].clone()).collect();
        let mut amd64_blobs: Vec<String> = vec![
            amd64_digest.clone(),
            amd64_manifest["config"]["digest"]
                .as_str()
                .unwrap()
                .to_string(),
        ];
        amd64_blobs.extend(amd64_layers.iter().map(|d| d.as_str().unwrap().to_string()));
        TwoArch {
            lay,
            amd64_digest,
            index_digest,
            amd64_blobs,
            amd64_layers,
        }
    }

    /// The layout as a skopeo `oci:` reference for `tag`.
    fn oci(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.lay.dir.display())
    }
}

/// skopeo against the registry at `host` (plain HTTP).
struct Skopeo {
    host: String,
}

impl Skopeo {
    fn docker(&self, repo: &str, tag: &str) -> String {
        format!("docker://{}/{repo}:{tag}", self.host)
    }

    /// `skopeo copy FLAGS FROM TO`.
    fn copy(&self, flags: &[&str], from: &str, to: &str, what: &str) {
        run(skopeo().arg("copy").args(flags).arg(from).arg(to), what);
    }

    /// `skopeo inspect --raw` of `repo:tag`: the manifest bytes as served.
    fn raw(&self, repo: &str, tag: &str, what: &str) -> Vec<u8> {
        run(
            skopeo()
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(self.docker(repo, tag)),
            what,
        )
    }
}

#[test]
fn skopeo_copies_a_multi_layer_image_in_and_out() {
    let srv = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = TwoArch::write(&tmp.path().join("src"));
    let sk = Skopeo {
        host: srv.addr.to_string(),
    };
    // Push the single image and the multi-arch index.
    sk.copy(
        &["--preserve-digests", "--dest-tls-verify=false"],
        &img.oci("v1"),
        &sk.docker("e2e/img", "v1"),
        "skopeo copy oci -> registry (v1)",
    );
    sk.copy(
        &["--all", "--preserve-digests", "--dest-tls-verify=false"],
        &img.oci("multi"),
        &sk.docker("e2e/img", "multi"),
        "skopeo copy --all oci -> registry (multi)",
    );
    inspect_and_list_tags(&sk, &img);
    copy_back_out(&sk, &img, tmp.path());
    docker_schema2_conversion(&srv, &sk, &img);

    // Registry to registry (skopeo may cross-mount), then delete.
    sk.copy(
        &[
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ],
        &sk.docker("e2e/img", "v1"),
        &sk.docker("e2e/copy", "v1"),
        "skopeo copy registry -> registry",
    );
    assert_eq!(
        sha256(&sk.raw("e2e/copy", "v1", "inspect copy")),
        img.amd64_digest
    );
    run(
        skopeo()
            .args(["delete", "--tls-verify=false"])
            .arg(sk.docker("e2e/copy", "v1")),
        "skopeo delete",
    );
    let c = client();
    let amd64_digest = &img.amd64_digest;
    get(&srv, &c, &format!("/v2/e2e/copy/manifests/{amd64_digest}"))
        .expect(404, "deleted by skopeo");
    get(&srv, &c, &format!("/v2/e2e/img/manifests/{amd64_digest}"))
        .expect(200, "original untouched");
}

/// `skopeo inspect` (parsed and raw) and `list-tags` see what was pushed.
fn inspect_and_list_tags(sk: &Skopeo, img: &TwoArch) {
    let out = run(
        skopeo()
            .args(["inspect", "--tls-verify=false"])
            .arg(sk.docker("e2e/img", "v1")),
        "skopeo inspect",
    );
    let info: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(info["Digest"], img.amd64_digest, "skopeo inspect Digest");
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(
        info["Layers"].as_array().unwrap(),
        &img.amd64_layers,
        "skopeo inspect Layers"
    );
    assert_eq!(
        sk.raw("e2e/img", "v1", "inspect --raw"),
        img.lay.blobs[&img.amd64_digest],
        "skopeo inspect --raw returns the exact manifest bytes"
    );
    let raw = sk.raw("e2e/img", "multi", "inspect index");
    assert_eq!(sha256(&raw), img.index_digest, "index pushed byte-exact");
    let tags = run(
        skopeo()
            .args(["list-tags", "--tls-verify=false"])
            .arg(format!("docker://{}/e2e/img", sk.host)),
        "skopeo list-tags",
    );
    let tags: Value = serde_json::from_slice(&tags).unwrap();
    let mut tags: Vec<String> = serde_json::from_value(tags["Tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["multi", "v1"]);
}

/// Copies `v1` and `multi` back out into fresh layouts under `tmp` and compares every digest.
fn copy_back_out(sk: &Skopeo, img: &TwoArch, tmp: &Path) {
    let cases = [
        ("v1", &img.amd64_digest, false),
        ("multi", &img.index_digest, true),
    ];
    for (tag, root, all) in cases {
        let back = tmp.join(format!("back-{tag}"));
        let mut flags = vec!["--preserve-digests", "--src-tls-verify=false"];
        if all {
            flags.push("--all");
        }
        sk.copy(
            &flags,
            &sk.docker("e2e/img", tag),
            &format!("oci:{}:{tag}", back.display()),
            "skopeo copy registry -> oci",
        );
        let (got_root, got_blobs) = read_layout(&back, tag);
        assert_eq!(&got_root, root, "{tag}: root digest after the round trip");
        // v1: the amd64 manifest, its config and layers; multi: every blob of the layout.
        let expect: Vec<&String> = if all {
            img.lay.blobs.keys().collect()
        } else {
            img.amd64_blobs.iter().collect()
        };
        for d in &expect {
            assert_eq!(
                got_blobs.get(*d),
                Some(&img.lay.blobs[*d]),
                "{tag}: blob {d} after the round trip"
            );
        }
        assert_eq!(
            got_blobs.len(),
            expect.len(),
            "{tag}: blob count after the round trip"
        );
    }
}

/// Docker schema2: skopeo converts the manifest; the layers stay byte-identical.
fn docker_schema2_conversion(srv: &Server, sk: &Skopeo, img: &TwoArch) {
    sk.copy(
        &["--format", "v2s2", "--dest-tls-verify=false"],
        &img.oci("v1"),
        &sk.docker("e2e/docker", "v1"),
        "skopeo copy --format v2s2",
    );
    let raw = sk.raw("e2e/docker", "v1", "inspect v2s2");
    let m: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["mediaType"], DOCKER_MANIFEST, "converted manifest type");
    let c = client();
    let r = get(srv, &c, "/v2/e2e/docker/manifests/v1").expect(200, "GET v2s2 manifest");
    assert_eq!(r.h("Content-Type"), DOCKER_MANIFEST);
    assert_eq!(r.body, raw);
    for l in m["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        assert!(
            img.lay.blobs.contains_key(d),
            "v2s2 layer {d} is one of the original layers"
        );
        let b = get(srv, &c, &format!("/v2/e2e/docker/blobs/{d}")).expect(200, "v2s2 layer");
        assert_eq!(b.body, img.lay.blobs[d]);
    }
}

#[test]
fn oras_pushes_an_artifact_and_a_referrer() {
    let srv = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oras_e2e.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg("--registry")
        .arg(srv.addr.to_string())
        .arg("--workdir")
        .arg(tmp.path());
    let referrers_api =
        !skip_on_reference("v1.1-only: referrers API and OCI-Subject in the oras flow");
    if !referrers_api {
        cmd.arg("--no-referrers-api");
    }
    let out = run(&mut cmd, "oras e2e script");
    let line = String::from_utf8_lossy(&out)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let report: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("oras report {line:?}: {e}"));
    let subject = report["subject_digest"].as_str().unwrap().to_string();
    let referrer = report["referrer_digest"].as_str().unwrap().to_string();

    // Check again over raw HTTP, independently of the SDK.
    let c = client();
    let r = get(&srv, &c, &format!("/v2/e2e/oras/manifests/{subject}"))
        .expect(200, "subject by digest");
    assert_eq!(sha256(&r.body), subject);
    let m = r.json();
    assert_eq!(m["artifactType"], "application/vnd.ocireg.e2e.bundle.v1");
    for l in m["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let b = get(&srv, &c, &format!("/v2/e2e/oras/blobs/{d}")).expect(200, "artifact layer");
        assert_eq!(sha256(&b.body), d);
        assert_eq!(b.body.len() as u64, l["size"].as_u64().unwrap());
    }
    let r = get(&srv, &c, "/v2/e2e/oras/manifests/sig").expect(200, "referrer by tag");
    assert_eq!(sha256(&r.body), referrer);
    assert_eq!(r.json()["subject"]["digest"], subject.as_str());
    if referrers_api {
        assert_eq!(report["oci_subject_header"], subject.as_str());
        let r =
            get(&srv, &c, &format!("/v2/e2e/oras/referrers/{subject}")).expect(200, "referrers");
        let list = r.json()["manifests"].as_array().unwrap().clone();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["digest"], referrer.as_str());
        assert_eq!(
            list[0]["artifactType"],
            "application/vnd.ocireg.e2e.signature.config.v1+json"
        );
    }
    let mut srv = srv;
    srv.assert_alive();
}
