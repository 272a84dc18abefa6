"""Judging one run: KCL's result against ocireg's, and the corpus's claims against KCL."""

from __future__ import annotations

import json
import re

from corpus import DOC_MD, expand, get_path


def first_line(s: str) -> str:
    s = s.strip()
    return s.splitlines()[0] if s else "(empty)"


def strip_nulls(v):
    if isinstance(v, dict):
        return {k: strip_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [strip_nulls(x) for x in v]
    return v


def same_scalar(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def diff(a, b, path="") -> list[str]:
    """Differences between KCL's values (a) and ocireg's (b), after null-dropping."""
    here = path or "(root)"
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        missing = [k for k in a if k not in b]
        extra = [k for k in b if k not in a]
        if missing:
            out.append(f"{here}: ocireg lacks {missing}")
        if extra:
            out.append(f"{here}: ocireg has extra {extra}")
        for k in a:
            if k in b:
                out += diff(a[k], b[k], f"{path}.{k}" if path else k)
        common_a = [k for k in a if k in b]
        common_b = [k for k in b if k in a]
        if not out and common_a != common_b:
            out.append(f"{here}: key order KCL {common_a} vs ocireg {common_b}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{here}: list length KCL {len(a)} vs ocireg {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}.{i}")
        return out
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)) or not same_scalar(a, b):
        return [f"{here}: KCL {json.dumps(a)} vs ocireg {json.dumps(b)}"]
    return []


def check_values(expected: dict, actual, who: str) -> list[str]:
    out = []
    for path, want in expected.items():
        want = expand(want)
        try:
            got = get_path(actual, path)
        except KeyError:
            got = None
        if want is None and got is None:
            continue
        if diff(strip_nulls(want), strip_nulls(got)):
            out.append(f"{who} {path} = {json.dumps(got)}, corpus expects {json.dumps(want)}")
    return out


def error_lines(stderr: str) -> list[str]:
    return [ln.strip() for ln in stderr.splitlines() if ln.strip()]


def check_path(path: str, stderr: str) -> list[str]:
    if any(ln.startswith(f"{path}: ") for ln in error_lines(stderr)):
        return []
    return [f"ocireg errors name no `{path}: ...` line: {first_line(stderr)}"]


def deviation_section() -> str | None:
    if not DOC_MD.exists():
        return None
    text = DOC_MD.read_text()
    m = re.search(r"^(#+)\s*Deviations from KCL.*$", text, re.M | re.I)
    if not m:
        return None
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(rf"^#{{1,{level}}}\s", rest, re.M)
    return rest[: end.start()] if end else rest


def deviation_titles(section: str) -> list[str]:
    """The titles of the numbered items: `1. **Title.** ...`, or `1. Title: ...`; no backticks."""
    titles = []
    for item in re.findall(r"^\d+\.\s+(.+)$", section, re.M):
        m = re.match(r"\*\*(.+?)\*\*", item)
        titles.append((m.group(1) if m else item.split(":")[0]).replace("`", ""))
    return titles


def judge(case, k, o, doc_section) -> list[str]:
    """All problems with one (case, format) run; empty means pass."""
    problems = []
    if o["validate_rc"] != o["rc"]:
        problems.append(f"`config validate` exit {o['validate_rc']} but `config show` exit {o['rc']}")
    if o["verdict"] == "error":
        return problems + [o["problem"]]
    dev = case.get("deviation")
    if dev:
        want = case["ocireg"]
        if doc_section is None:
            problems.append(f"deviation {dev!r}: docs/config.md has no 'Deviations from KCL' section")
        elif not any(dev.lower() in t.lower() for t in deviation_titles(doc_section)):
            problems.append(f"deviation {dev!r} names no item of docs/config.md's 'Deviations from KCL'")
        if k["verdict"] == want["expect"] and k["verdict"] == "reject" and "error" not in want:
            problems.append("deviation asserts nothing beyond KCL's verdict")
        if o["verdict"] != want["expect"]:
            why = f": {first_line(o['stderr'])}" if o["verdict"] == "reject" else ""
            problems.append(f"ocireg {o['verdict']}s{why}; the documented deviation says {want['expect']}")
            return problems
        if want["expect"] == "reject":
            if "error" in want and want["error"] not in o["stderr"]:
                problems.append(f"ocireg errors lack {want['error']!r}: {first_line(o['stderr'])}")
            if "path" in want:
                problems += check_path(want["path"], o["stderr"])
        elif "values" in want:
            problems += check_values(want["values"], o["values"], "ocireg")
        return problems
    if o["verdict"] != k["verdict"]:
        if o["verdict"] == "reject":
            problems.append(f"KCL accepts, ocireg rejects: {first_line(o['stderr'])}")
        else:
            problems.append(f"KCL rejects ({k['reason']}), ocireg accepts")
        return problems
    if k["verdict"] == "accept":
        problems += diff(strip_nulls(k["values"]), strip_nulls(o["values"]))
        if case.get("values"):
            problems += check_values(case["values"], o["values"], "ocireg")
    else:
        if not o["stderr"].strip():
            problems.append("ocireg rejects without any error message")
        if k["check"] and k["check"] not in o["stderr"]:
            problems.append(f"ocireg errors lack KCL's {k['check']!r}: {first_line(o['stderr'])}")
        if case.get("path"):
            problems += check_path(case["path"], o["stderr"])
    return problems


def judge_kcl(case, k) -> list[str]:
    """The corpus's own claims, checked against KCL."""
    problems = []
    if k["verdict"] != case["expect"]:
        why = f" ({k['reason']})" if k["verdict"] == "reject" else ""
        problems.append(f"corpus expects {case['expect']} but KCL {k['verdict']}s{why}")
        return problems
    if k["verdict"] == "reject" and case.get("error") and case["error"] not in k["message"]:
        problems.append(f"corpus expects KCL error {case['error']!r}, KCL says {k['reason']!r}")
    if k["verdict"] == "accept" and case.get("values"):
        problems += check_values(case["values"], k["values"], "KCL")
    return problems
