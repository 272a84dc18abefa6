#!/usr/bin/env python3
"""End-to-end check of a registry with the oras Python SDK (oras 0.2.x).

Driven by crates/cli/tests/e2e_clients.rs. Pushes an artifact with a custom artifactType (built
with the SDK's lower-level upload_blob / upload_manifest, since push() cannot set artifactType),
attaches a referrer with the SDK's high-level push(subject=...), discovers it through the
referrers API, pulls both back and compares them byte for byte. Prints a JSON report on stdout
(the Rust test verifies it again over raw HTTP); exits non-zero with a message on any failure.
"""

import argparse
import hashlib
import json
import os
import sys

import oras.client
import oras.oci

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ARTIFACT_TYPE = "application/vnd.ocireg.e2e.bundle.v1"
SIG_CONFIG_TYPE = "application/vnd.ocireg.e2e.signature.config.v1+json"
SIG_LAYER_TYPE = "application/vnd.ocireg.e2e.signature.v1"
TITLE = "org.opencontainers.image.title"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def expect_status(resp, allowed, what):
    check(
        resp.status_code in allowed,
        f"{what}: HTTP {resp.status_code} (expected {allowed}): {resp.text[:300]}",
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True, help="host:port")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repo", default="e2e/oras")
    ap.add_argument("--no-referrers-api", action="store_true")
    a = ap.parse_args()

    reg, repo = a.registry, a.repo
    base = f"http://{reg}"
    src = os.path.join(a.workdir, "src")
    os.makedirs(src, exist_ok=True)
    client = oras.client.OrasClient(hostname=reg, insecure=True)
    report = {}

    # --- 1. The subject artifact: custom artifactType, built from SDK building blocks. ---
    container = client.get_container(f"{reg}/{repo}:v1")
    files = {
        "payload.json": json.dumps({"nonce": os.urandom(16).hex(), "items": list(range(50))}).encode(),
        "notes.txt": os.urandom(4096).hex().encode(),
        "big.bin": os.urandom(2 * 1024 * 1024 + 12345),
    }
    layers = []
    for name, data in files.items():
        path = write(os.path.join(src, name), data)
        layer = oras.oci.NewLayer(path, media_type="application/vnd.ocireg.e2e.file.v1")
        layer["annotations"] = {TITLE: name}
        chunked = name == "big.bin"
        resp = client.upload_blob(path, container, layer, do_chunked=chunked, chunk_size=1024 * 1024)
        expect_status(resp, (201,), f"upload_blob {name} (chunked={chunked})")
        check(layer["digest"] == sha256(data), f"layer digest for {name}")
        layers.append(layer)
    config_path = write(os.path.join(src, "config.json"), b"{}")
    config = {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2}
    resp = client.upload_blob(config_path, container, config)
    expect_status(resp, (200, 201), "upload_blob empty config")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": layers,
        "annotations": {"org.opencontainers.image.created": "2024-05-01T00:00:00Z", "e2e": "subject"},
    }
    resp = client.upload_manifest(manifest, container)
    expect_status(resp, (201,), "upload_manifest (artifact)")
    subject_digest = resp.headers.get("Docker-Content-Digest")
    check(subject_digest, "no Docker-Content-Digest on manifest PUT")
    raw = client.do_request(f"{base}/v2/{repo}/manifests/{subject_digest}", "GET", headers={"Accept": OCI_MANIFEST})
    expect_status(raw, (200,), "GET subject manifest by digest")
    subject_bytes = raw.content
    check(sha256(subject_bytes) == subject_digest, "served subject manifest does not hash to its digest")
    check(json.loads(subject_bytes) == manifest, "served subject manifest differs from what was pushed")
    check(raw.headers.get("Content-Type") == OCI_MANIFEST, f"Content-Type {raw.headers.get('Content-Type')}")
    report["subject_digest"] = subject_digest
    report["subject_size"] = len(subject_bytes)

    # --- 2. The referrer: SDK push() with subject; artifactType comes from the config type. ---
    sig = os.urandom(512)
    sig_path = write(os.path.join(src, "signature.sig"), sig)
    sig_cfg_path = write(os.path.join(src, "sig-config.json"), json.dumps({"signer": "e2e"}).encode())
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_bytes))
    cwd = os.getcwd()
    os.chdir(src)
    try:
        resp = client.push(
            target=f"{reg}/{repo}:sig",
            files=[f"signature.sig:{SIG_LAYER_TYPE}"],
            manifest_config=f"sig-config.json:{SIG_CONFIG_TYPE}",
            manifest_annotations={"e2e": "referrer"},
            subject=subject,
            quiet=True,
        )
    finally:
        os.chdir(cwd)
    expect_status(resp, (201,), "push referrer")
    referrer_digest = resp.headers.get("Docker-Content-Digest")
    check(referrer_digest, "no Docker-Content-Digest on referrer PUT")
    report["referrer_digest"] = referrer_digest
    report["oci_subject_header"] = resp.headers.get("OCI-Subject")
    if not a.no_referrers_api:
        check(
            resp.headers.get("OCI-Subject") == subject_digest,
            f"OCI-Subject header {resp.headers.get('OCI-Subject')!r}, expected {subject_digest}",
        )

    # --- 3. Discover it. ---
    if not a.no_referrers_api:
        r = client.do_request(f"{base}/v2/{repo}/referrers/{subject_digest}", "GET")
        expect_status(r, (200,), "GET referrers")
        check(r.headers.get("Content-Type") == OCI_INDEX, f"referrers Content-Type {r.headers.get('Content-Type')}")
        idx = r.json()
        found = [m for m in idx.get("manifests", []) if m.get("digest") == referrer_digest]
        check(len(found) == 1, f"referrer {referrer_digest} not listed exactly once: {idx}")
        check(found[0].get("artifactType") == SIG_CONFIG_TYPE, f"referrer artifactType: {found[0]}")
        check(found[0].get("annotations", {}).get("e2e") == "referrer", f"referrer annotations: {found[0]}")
        check(found[0].get("mediaType") == OCI_MANIFEST, f"referrer mediaType: {found[0]}")
        r = client.do_request(
            f"{base}/v2/{repo}/referrers/{subject_digest}?artifactType={SIG_CONFIG_TYPE}", "GET"
        )
        expect_status(r, (200,), "GET referrers filtered")
        check(r.headers.get("OCI-Filters-Applied") == "artifactType", "OCI-Filters-Applied missing")
        check([m["digest"] for m in r.json()["manifests"]] == [referrer_digest], f"filtered: {r.text}")
        r = client.do_request(f"{base}/v2/{repo}/referrers/{subject_digest}?artifactType=application/none", "GET")
        expect_status(r, (200,), "GET referrers filtered to nothing")
        check(r.json()["manifests"] == [], f"filter to nothing: {r.text}")
        report["referrers"] = idx["manifests"]

    # --- 4. Pull both back and compare byte for byte. ---
    out1 = os.path.join(a.workdir, "pull-subject")
    pulled = client.pull(target=f"{reg}/{repo}:v1", outdir=out1)
    check(len(pulled) == len(files), f"pulled {pulled}")
    for name, data in files.items():
        check(read(os.path.join(out1, name)) == data, f"pulled {name} differs")
    out2 = os.path.join(a.workdir, "pull-referrer")
    pulled = client.pull(target=f"{reg}/{repo}@{referrer_digest}", outdir=out2)
    check(len(pulled) == 1 and read(os.path.join(out2, "signature.sig")) == sig, f"pulled referrer {pulled}")
    ref_manifest = client.get_manifest(f"{reg}/{repo}@{referrer_digest}")
    check(ref_manifest.get("subject", {}).get("digest") == subject_digest, f"referrer subject: {ref_manifest}")
    check(ref_manifest["config"]["mediaType"] == SIG_CONFIG_TYPE, "referrer config mediaType")
    tags = client.get_tags(f"{reg}/{repo}")
    check("v1" in tags and "sig" in tags, f"tags {tags}")
    report["tags"] = sorted(tags)
    print(json.dumps(report))


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"oras e2e FAILED: {e}", file=sys.stderr)
        sys.exit(1)
