#!/usr/bin/env python3
"""oras (Python SDK 0.2.x) through a registry's Docker token flow.

Driven by crates/cli/tests/security/auth_flow.rs. Logs in with a username and password (the SDK
keeps them as Basic credentials and trades them for bearer tokens at the realm the registry's
401 challenge names), pushes a file as an artifact and pulls it back byte for byte; with
--expect-denied the push must fail instead. Prints a JSON report on stdout; exits non-zero with a
message on any failure.
"""

import argparse
import hashlib
import json
import os
import sys
import types

import oras.client
import oras.decorator


class Failure(Exception):
    pass


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True, help="host:port")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--expect-denied", action="store_true")
    a = ap.parse_args()

    reg = a.registry
    target = f"{reg}/{a.repo}:v1"
    os.makedirs(a.workdir, exist_ok=True)
    client = oras.client.OrasClient(hostname=reg, insecure=True)
    login = client.login(
        username=a.user,
        password=a.password,
        hostname=reg,
        config_path=os.path.join(a.workdir, "docker-config.json"),
    )
    report = {"login": login}

    data = os.urandom(300_000) + b"oras through the token flow\n"
    src_dir = os.path.join(a.workdir, "src")
    os.makedirs(src_dir, exist_ok=True)
    name = "artifact.bin"
    with open(os.path.join(src_dir, name), "wb") as f:
        f.write(data)

    # oras-py 0.2.x caches ONE bearer token: after a 401 it re-sends the cached token and asks
    # the realm for a new one only after a 403 (provider.Registry.do_request and
    # auth.token.TokenAuth.authenticate_request). Its push starts with a HEAD (scope: pull), so
    # the cached token would never be upgraded to push on the 401 `insufficient_scope` that
    # registries answer (Distribution does the same). Prime the cache through the SDK's own
    # token flow with a request whose challenge asks for pull,push, then cancel that session.
    base = f"http://{reg}"
    if a.expect_denied:
        # The SDK retries refused requests five times with 3^n-second sleeps; a refusal is
        # final here, so skip the waiting (the requests themselves still go to the registry).
        oras.decorator.time = types.SimpleNamespace(sleep=lambda _s: None)
    try:
        primed = client.do_request(f"{base}/v2/{a.repo}/blobs/uploads/", "POST")
        report["prime_status"] = primed.status_code
    except ValueError as e:  # no token for these credentials
        if not a.expect_denied:
            raise Failure(f"token flow failed: {e}")
        primed = None
        report["prime_status"] = str(e)[:200]
    if primed is not None and primed.status_code == 202:
        loc = primed.headers.get("Location", "")
        if loc.startswith("/"):
            loc = base + loc
        client.do_request(loc, "DELETE")

    if a.expect_denied and primed is not None and primed.status_code not in (401, 403):
        raise Failure(f"a push session for a refused user: HTTP {primed.status_code}")

    # oras-py resolves file paths relative to the working directory (and refuses others).
    os.chdir(src_dir)
    try:
        resp = client.push(target=target, files=[name])
        pushed = getattr(resp, "status_code", None)
        report["push_status"] = pushed
        if pushed is not None and pushed >= 400:
            raise Failure(f"push answered HTTP {pushed}: {resp.text[:300]}")
    except Exception as e:  # the SDK raises on refusals
        if a.expect_denied:
            report["push"] = "denied"
            report["error"] = str(e)[:300]
            print(json.dumps(report))
            return 0
        raise Failure(f"push failed: {type(e).__name__}: {e}")
    if a.expect_denied:
        raise Failure(f"push was expected to be refused but succeeded: {report}")
    report["push"] = "ok"

    out_dir = os.path.join(a.workdir, "out")
    os.makedirs(out_dir, exist_ok=True)
    files = client.pull(target=target, outdir=out_dir)
    report["pulled"] = [os.path.relpath(p, out_dir) for p in files]
    got_path = os.path.join(out_dir, name)
    if not os.path.exists(got_path):
        raise Failure(f"pulled files {files} lack {name}")
    with open(got_path, "rb") as f:
        got = f.read()
    if got != data:
        raise Failure(f"pulled {len(got)} bytes that differ from the {len(data)} pushed")
    report["digest"] = sha256(data)
    report["bytes"] = len(data)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
