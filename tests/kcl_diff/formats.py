"""Writing an instance as JSON, YAML or TOML for ocireg; every rendering must parse back."""

from __future__ import annotations

import json
import re
import tomllib

from corpus import CorpusError, yaml


def has_null(v) -> bool:
    if v is None:
        return True
    if isinstance(v, dict):
        return any(has_null(x) for x in v.values())
    if isinstance(v, list):
        return any(has_null(x) for x in v)
    return False


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def toml_val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_val(x)}" for k, x in v.items()) + "}"
    raise CorpusError(f"no TOML for {v!r}")


def toml_table(d: dict, path: list, out: list):
    scalars = [(k, v) for k, v in d.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in d.items() if isinstance(v, dict)]
    if path and (scalars or not tables):
        out.append("")
        out.append("[" + ".".join(toml_key(p) for p in path) + "]")
    for k, v in scalars:
        out.append(f"{toml_key(k)} = {toml_val(v)}")
    for k, v in tables:
        toml_table(v, path + [k], out)


def strict_equal(a, b) -> bool:
    """Equal with equal types (1 is not 1.0 nor True); mapping key order is not compared."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return set(a) == set(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return a == b


def render(inst: dict, fmt: str) -> str:
    """The instance as text in a format; each rendering is checked to parse back identically."""
    if fmt == "json":
        text = json.dumps(inst, indent=2, ensure_ascii=False) + "\n"
        back = json.loads(text)
    elif fmt in ("yaml", "stdin"):
        text = yaml.safe_dump(inst, sort_keys=False, allow_unicode=True, default_flow_style=False)
        back = yaml.safe_load(text)
    elif fmt == "toml":
        out: list = []
        toml_table(inst, [], out)
        text = "\n".join(out).lstrip("\n") + "\n"
        back = tomllib.loads(text)
    else:
        raise CorpusError(f"unknown format {fmt}")
    if not strict_equal(back, inst):
        raise CorpusError(f"{fmt} rendering does not round-trip: {text!r}")
    return text
