"""The corpus of tests/kcl_diff/cases/: loading, `base`/`set`/`unset` resolution, checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

try:
    import yaml  # PyYAML
except ImportError:  # reported by run.py
    yaml = None

ROOT = Path(__file__).resolve().parents[2]
KCL_DIR = ROOT / "kcl"
DOC_MD = ROOT / "docs" / "config.md"

SCHEMAS = [
    "OCIRegistryConfig", "LocalOCIConfig", "LocalHTTPConfig", "LocalStorageConfig",
    "RemoteOCIConfig", "RateLimitConfig", "OCINamespaces", "OCIRegistryFeatures",
    "ReplicationTarget", "QuotaConfig", "NamespaceQuota", "OCIArtifactReference",
    "OCIPullPolicy", "OCIPushPolicy", "ZotRegistryConfig", "ZotFeatures",
    "HarborRegistryConfig", "HarborConfig",
]
# Checks of the seed that no instance can reach, with the reason (none: "Invalid pull policy",
# guarded by the literal type of `policy`, still fires for `policy: null`).
UNREACHABLE_CHECKS: dict[str, str] = {}
MIN_CASES = 120
FORMATS = ("json", "yaml", "toml", "stdin")
ROTATION = ("yaml", "json", "toml")
CASE_KEYS = {"name", "schema", "base", "instance", "set", "unset", "expect", "error", "path",
             "values", "formats", "deviation", "ocireg", "note"}
OCIREG_KEYS = {"expect", "error", "path", "values"}


class CorpusError(Exception):
    """The corpus itself is malformed."""


def expand(v):
    """Expands the corpus macro {"$repeat": [text, n]} anywhere inside a value."""
    if isinstance(v, dict):
        if set(v) == {"$repeat"}:
            text, n = v["$repeat"]
            return text * n
        return {k: expand(x) for k, x in v.items()}
    if isinstance(v, list):
        return [expand(x) for x in v]
    return v


def split_path(path: str):
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def set_path(obj, path: str, value):
    parts = split_path(path)
    for p in parts[:-1]:
        if isinstance(p, int):
            obj = obj[p]
        else:
            obj = obj.setdefault(p, {})
    obj[parts[-1]] = value


def del_path(obj, path: str):
    parts = split_path(path)
    for p in parts[:-1]:
        obj = obj[p]
    del obj[parts[-1]]


def get_path(obj, path: str):
    """Value at a dotted path, or KeyError."""
    for p in split_path(path):
        if isinstance(p, int):
            if not isinstance(obj, list) or p >= len(obj):
                raise KeyError(path)
        elif not isinstance(obj, dict) or p not in obj:
            raise KeyError(path)
        obj = obj[p]
    return obj


def load_corpus(cases_dir: Path):
    raw = []
    for f in sorted(cases_dir.iterdir()):
        if f.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(f.read_text())
        elif f.suffix == ".json":
            data = json.loads(f.read_text())
        else:
            continue
        if not isinstance(data, list):
            raise CorpusError(f"{f.name}: expected a list of cases")
        for c in data:
            if not isinstance(c, dict) or "name" not in c:
                raise CorpusError(f"{f.name}: a case without a name: {c!r}")
            c["_file"] = f.name
            raw.append(c)
    by_name = {}
    for c in raw:
        extra = set(c) - CASE_KEYS - {"_file"}
        if extra:
            raise CorpusError(f"{c['name']}: unknown case keys {sorted(extra)}")
        if c["name"] in by_name:
            raise CorpusError(f"duplicate case name {c['name']}")
        by_name[c["name"]] = c
    resolved = {}

    def resolve(name, stack=()):
        if name in resolved:
            return resolved[name]
        if name in stack:
            raise CorpusError(f"base cycle through {name}")
        if name not in by_name:
            raise CorpusError(f"unknown base {name}")
        c = by_name[name]
        if "base" in c:
            if "instance" in c:
                raise CorpusError(f"{name}: both base and instance")
            b = resolve(c["base"], stack + (name,))
            inst = copy.deepcopy(b["instance"])
            schema = c.get("schema", b["schema"])
        else:
            inst = copy.deepcopy(expand(c.get("instance")))
            schema = c.get("schema")
        for path, v in (c.get("set") or {}).items():
            set_path(inst, path, expand(v))
        for path in c.get("unset") or []:
            del_path(inst, path)
        if schema != "document" and schema not in SCHEMAS:
            raise CorpusError(f"{name}: unknown schema {schema!r}")
        if not isinstance(inst, dict):
            raise CorpusError(f"{name}: the instance must be a mapping")
        if c.get("expect") not in ("accept", "reject"):
            raise CorpusError(f"{name}: expect must be accept or reject")
        dev = c.get("deviation")
        oc = c.get("ocireg")
        if (dev is None) != (oc is None):
            raise CorpusError(f"{name}: deviation and ocireg go together")
        if oc is not None:
            if set(oc) - OCIREG_KEYS or oc.get("expect") not in ("accept", "reject"):
                raise CorpusError(f"{name}: bad ocireg block {oc!r}")
        fmts = c.get("formats")
        if fmts == "all":
            fmts = list(ROTATION)
        if fmts is not None and (not isinstance(fmts, list) or set(fmts) - set(FORMATS)):
            raise CorpusError(f"{name}: bad formats {fmts!r}")
        r = dict(c, instance=inst, schema=schema, formats=fmts)
        resolved[name] = r
        return r

    return [resolve(c["name"]) for c in raw]
