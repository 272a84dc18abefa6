#!/usr/bin/env python3
"""Writes the hand-written seed inputs into fuzz/seeds/<target>/seed-*.

Run from anywhere: python3 fuzz/seeds/make_seeds.py. Idempotent (file names are stable).
"""
import hashlib
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "seeds"


def sha(s):
    return "sha256:" + hashlib.sha256(s.encode()).hexdigest()


D = sha("x")
D512 = "sha512:" + hashlib.sha512(b"x").hexdigest()


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


paths = [
    "/v2", "/v2/", "//v2/", "/v2/?x=1", "/v20/", "/v2x", "/v2/_catalog", "/v2/_catalog/",
    "/v2/_catalog?n=1", "/v2/_catalog?n=10&last=a%2Fb", "/v2/_ocireg", "/v2/_ocireg/",
    "/v2/_ocireg/gc/run?x=1", "/v2/_other/tags/list", "/v2/a", "/v2/a/", "/v2/a/b/c",
    "/v2/library/ubuntu/manifests/latest", f"/v2/x/y/manifests/{D}",
    f"/v2/team/app/web/blobs/{D}", f"/v2/a/b/referrers/{D}?artifactType=application%2Fx%2Bjson",
    "/v2/a/b/blobs/uploads", "/v2/a/b/blobs/uploads/",
    f"/v2/a/b/blobs/uploads/?mount={D}&from=other/repo",
    "/v2/a/b/blobs/uploads/0f9a-xyz_1=?_state=abc", "/v2/a/b/c/tags/list",
    "/v2/a/tags/list?n=5&last=v1.0", "/v2/a/tags/list?n=&last=", "/v2/a/tags/list?n=-1",
    "/v2/%61/tags/list", "/v2/a%2Fb/tags/list", "/v2/%2e%2e/x/tags/list", "/v2/a%C3%A4/tags/list",
    "/v2/a%zz/tags/list", "/v2/a/manifests/sha256:zz", f"/v2/a/blobs/sha512:{D512[7:]}",
    f"/v2/a/blobs/blake3:{'a' * 64}", "/v2/a/blobs/uploads/.x", "/v2/blobs/blobs/" + D,
    "/v2/blobs/uploads/blobs/uploads/", "/v2/manifests/manifests/latest",
    "/v2/tags/list/tags/list", "/v2/" + "/".join(["a"] * 130) + "/tags/list",
    "/v2/a__b.c--d/e_f/manifests/_Tag.1-x",
    '</v2/_catalog?n=2&last=b>; rel="next"',
    '<https://h/v2/a/tags/list?n=1&last=x>; rel=next, <x>; rel="prev"',
    '<a>; title="x,y"; rel="first next"',
]
for i, p in enumerate(paths):
    write("api_path", f"{i:03}", p)

refs = [
    D, D512, "sha256:abc", "SHA256:" + D[7:], "sha256:" + D[7:].upper(), "blake3:" + "a" * 64,
    "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", "md5:0123", "nocolon", ":",
    "latest", "v1.2.3", "_underscore", ".dot", "-dash", "a" * 128, "a" * 129,
    "library/ubuntu", "a/b/c", "a__b", "a___b", "a--b", "a-", "A", "a//b", "/a", "a/",
    "a" * 255, "a" * 256, "x/" * 100 + "y",
    "reg.io/ns/repo", "localhost:5000/ns/repo:v1.2", f"r:443/team/a/b/c:1.0@{D}",
    f"r/n/p@{D512}", "r/n/p:.bad", "r/n/p:", "r/n/p:@sha256:x", "/n/p", "r//", "reg/repo:tag",
    "r/n/a:b/c", "localhost:5000/ns/repo\nlatest\n" + D,
]
for i, r in enumerate(refs):
    write("digest_reference", f"{i:03}", r)

MT = "application/vnd.oci.image.manifest.v1+json"
IDX = "application/vnd.oci.image.index.v1+json"
DM = "application/vnd.docker.distribution.manifest.v2+json"
DML = "application/vnd.docker.distribution.manifest.list.v2+json"


def desc(mt, seed, size, **kw):
    return {"mediaType": mt, "digest": sha(seed), "size": size, **kw}


manifests = [
    {"schemaVersion": 2, "mediaType": MT,
     "config": desc("application/vnd.oci.image.config.v1+json", "cfg", 2),
     "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", "l1", 10),
                desc("application/vnd.oci.image.layer.v1.tar", "l2", 20)],
     "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
     "unknownField": {"kept": True}},
    {"schemaVersion": 2, "mediaType": MT, "artifactType": "application/vnd.example.sbom.v1",
     "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "size": 2, "data": "e30="},
     "layers": [], "subject": desc(MT, "subject", 123)},
    {"schemaVersion": 2, "mediaType": IDX, "artifactType": "application/vnd.example.bundle",
     "manifests": [desc(MT, "m1", 5, platform={"architecture": "amd64", "os": "linux"}),
                   desc(MT, "m2", 6, artifactType="x/y", annotations={"a": "b"})],
     "subject": desc(IDX, "s", 9)},
    {"schemaVersion": 2, "mediaType": IDX, "manifests": []},
    {"schemaVersion": 2, "manifests": []},
    {"schemaVersion": 2, "config": desc("a/b", "c", 1), "layers": []},
    {"schemaVersion": 2, "mediaType": DM,
     "config": desc("application/vnd.docker.container.image.v1+json", "dc", 1469),
     "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", "dl", 2811969,
                     urls=["https://example.com/layer"])]},
    {"schemaVersion": 2, "mediaType": DML,
     "manifests": [desc(DM, "a", 7, platform={"architecture": "arm64", "os": "linux",
                                              "variant": "v8"})]},
    {"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []},
    {"schemaVersion": 2, "mediaType": MT, "config": desc("a/b", "c", 1), "layers": [],
     "manifests": []},
    {"schemaVersion": 2, "mediaType": IDX, "manifests": [], "layers": []},
    {"schemaVersion": 2, "mediaType": MT,
     "config": {"mediaType": "a/b", "digest": "sha256:zz", "size": -1}, "layers": []},
    {"schemaVersion": 2, "mediaType": MT,
     "config": {"mediaType": "a/b", "digest": D512, "size": 1.5}, "layers": [{}]},
]
for i, m in enumerate(manifests):
    write("manifest", f"{i:03}", json.dumps(m, indent=2 if i % 2 else None))
write("manifest", "raw-truncated", b'{"schemaVersion": 2,')
write("manifest", "raw-array", b"[1, 2, 3]")

ranges = [
    "bytes=0-9", "bytes=10-", "bytes=-10", "bytes=-1000", "bytes=99-99", "bytes=50-5000",
    "bytes=0-1,5-6", " Bytes = 1 - 2 ", "items=0-1", "bytes=abc", "bytes=5-2",
    "bytes=0-18446744073709551615", "bytes=18446744073709551616-", "bytes=-0",
    "0-99", " 7-8 ", "10-5", "bytes 100-199/*", "bytes 100-199/1000", "bytes=5-5",
    "bytes 0-0/x", "0-0", "bytes=0-0", "0-18446744073709551614", "size=12345\nbytes=100-",
    "bytes=0-9\nsize=10\n0-9\nbytes 0-9/10",
]
for i, r in enumerate(ranges):
    write("range", f"{i:03}", r)

for f in sorted((ROOT / "examples").iterdir()):
    text = f.read_bytes()
    write("config", f"example-{f.name}", text)
    prefix = {".yaml": b"Y", ".toml": b"T", ".json": b"J"}.get(f.suffix)
    if prefix:
        write("config", f"forced-{f.name}", prefix + text)
configs = [
    "registry: {deployment: disabled, type: zot, endpoint: localhost, namespaces: {}}",
    "deployment: local\ntype: distribution\nendpoint: localhost\n",
    'J{"registry": {"deployment": "remote", "type": "harbor", "endpoint": "h.io", '
    '"namespaces": {}}}',
    'T[registry]\ndeployment = "disabled"\ntype = "zot"\nendpoint = "x"\n[registry.namespaces]\n',
    "Yregistry:\n  port: 99999\n  endpoint: ''\n",
    "Y", "T", "J", "",
    "Ya: &a [1, 2]\nb: *a\n",
]
for i, c in enumerate(configs):
    write("config", f"{i:03}", c)
