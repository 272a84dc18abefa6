"""The KCL side: instances as KCL programs against kcl/oci_registry.k, evaluated by kcl-lib."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from corpus import KCL_DIR, CorpusError
from formats import render

REGISTRY_BY_TYPE = {"zot": "ZotRegistryConfig", "harbor": "HarborRegistryConfig"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def kcl_lit(v) -> str:
    """A JSON value as a KCL literal; mappings use `=` (attribute assignment), as KCL users write."""
    if v is None:
        return "None"
    if v is True:
        return "True"
    if v is False:
        return "False"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        if "inf" in r or "nan" in r:
            raise CorpusError(f"no KCL literal for {r}")
        return r
    if isinstance(v, str):
        # JSON string escapes are KCL string escapes; `${` would interpolate, so escape `$`.
        return json.dumps(v, ensure_ascii=False).replace("$", "\\$")
    if isinstance(v, list):
        return "[" + ", ".join(kcl_lit(x) for x in v) + "]"
    if isinstance(v, dict):
        return kcl_body(v)
    raise CorpusError(f"no KCL literal for {v!r}")


def kcl_body(d: dict) -> str:
    for k in d:
        if not isinstance(k, str):
            raise CorpusError(f"non-string key {k!r}")
    return "{" + ", ".join(f"{kcl_lit(k)} = {kcl_lit(x)}" for k, x in d.items()) + "}"


def registry_expr(reg) -> str:
    if not isinstance(reg, dict):
        return kcl_lit(reg)
    t = reg.get("type")
    schema = REGISTRY_BY_TYPE.get(t, "OCIRegistryConfig") if isinstance(t, str) else "OCIRegistryConfig"
    return f"o.{schema} {kcl_body(reg)}"


def kcl_program(schema: str, inst: dict) -> str:
    lines = ["import oci_registry as o"]
    if schema != "document":
        expr = f"o.{schema} {kcl_body(inst)}"
    elif "registry" in inst:
        lines.append("import ocireg_document as d")
        parts = []
        for k, v in inst.items():
            val = registry_expr(v) if k == "registry" else kcl_lit(v)
            parts.append(f"{kcl_lit(k)} = {val}")
        expr = "d.OCIRegDocument {" + ", ".join(parts) + "}"
    else:  # a bare OCIRegistryConfig as the document root
        expr = registry_expr(inst)
    lines.append(f"result = {expr}")
    return "\n".join(lines) + "\n"


def kcl_reason(msg: str) -> str:
    """The one-line reason out of a KCL error report."""
    m = re.search(r"Check failed on the condition: (.+)", msg)
    if m:
        return m.group(1).strip()
    for line in msg.splitlines():
        m = re.match(r"^\s*\|\s*\^?\s*(\S.*)$", line)
        if m:
            return m.group(1).strip()
    return msg.strip().splitlines()[0] if msg.strip() else "(no message)"


class Kcl:
    def __init__(self, workdir: Path):
        import kcl_lib.api as api  # imported here so a missing package is reported clearly

        self.api = api
        self.client = api.API()
        self.workdir = workdir
        for name in ("oci_registry.k", "ocireg_document.k"):
            (workdir / name).write_text((KCL_DIR / name).read_text())
        self.n = 0
        self.defaults: dict = {}

    def check_schema_compiles(self):
        """kcl/oci_registry.k and kcl/ocireg_document.k compile in real KCL."""
        res = self.eval_code("import oci_registry as o\nimport ocireg_document as d\nresult = 1\n")
        return res

    def eval_code(self, code: str, workdir: Path | None = None, options: dict | None = None):
        self.n += 1
        workdir = workdir or self.workdir
        path = workdir / f"case_{self.n}.k"
        path.write_text(code)
        opts = [self.api.Argument(name=k, value=json.dumps(v)) for k, v in (options or {}).items()]
        args = self.api.ExecProgramArgs(k_filename_list=[str(path)], work_dir=str(workdir), args=opts)
        try:
            r = self.client.exec_program(args)
            err = r.err_message
        except Exception as e:  # compile and type errors are raised
            err = str(e) or "KCL raised an exception"
        finally:
            path.unlink(missing_ok=True)
        if err:
            err = ANSI.sub("", err)
            m = re.search(r"Check failed on the condition: (.+)", err)
            lines = re.findall(r"oci_registry\.k:(\d+)", err[: m.start()]) if m else []
            return {"verdict": "reject", "message": err, "reason": kcl_reason(err),
                    "check": m.group(1).strip() if m else None,
                    "check_line": int(lines[-1]) if lines else None}
        out = json.loads(r.json_result)
        return {"verdict": "accept", "values": out.get("result")}

    def evaluate(self, case):
        res = self.eval_code(kcl_program(case["schema"], case["instance"]))
        if case["schema"] == "document" and res["verdict"] == "accept":
            res["values"] = self.effective_document(case["instance"], res["values"])
        return res

    def effective_document(self, inst: dict, values: dict) -> dict:
        """KCL's output as the effective document ocireg shows: a bare registry root goes under
        `registry`, and an absent (or null) pull_policy / push_policy is the schema's defaults,
        evaluated in KCL as `OCIPullPolicy {}` / `OCIPushPolicy {}`."""
        doc = dict(values) if "registry" in inst else {"registry": values}
        out = {"registry": doc.get("registry")}
        for key, schema in (("pull_policy", "OCIPullPolicy"), ("push_policy", "OCIPushPolicy")):
            if doc.get(key) is None:
                if schema not in self.defaults:
                    d = self.eval_code(f"import oci_registry as o\nresult = o.{schema} {{}}\n")
                    if d["verdict"] != "accept":
                        raise CorpusError(f"KCL rejects {schema} {{}}: {d['reason']}")
                    self.defaults[schema] = d["values"]
                out[key] = copy.deepcopy(self.defaults[schema])
            else:
                out[key] = doc[key]
        return out


def doc_examples(kcl: Kcl, tmp: Path, sample: dict):
    """(label, result) for every KCL example in kcl/README.md and kcl/ocireg_document.k."""
    out = []
    pkg = tmp / "readme"
    (pkg / "ocireg").mkdir(parents=True)
    for name in ("oci_registry.k", "ocireg_document.k"):
        (pkg / "ocireg" / name).write_text((KCL_DIR / name).read_text())
    config = pkg / "config.yaml"
    config.write_text(render(sample, "yaml"))
    blocks = re.findall(r"```kcl\n(.*?)```", (KCL_DIR / "README.md").read_text(), re.S)
    for i, code in enumerate(blocks, 1):
        res = kcl.eval_code(code, pkg, {"config": str(config)})
        out.append((f"kcl: kcl/README.md example {i} evaluates", res))
    text = (KCL_DIR / "ocireg_document.k").read_text()
    m = re.search(r"Example:\n(.*?)\n\"\"\"", text, re.S)
    if m:
        lines = m.group(1).splitlines()
        indent = min(len(ln) - len(ln.lstrip()) for ln in lines if ln.strip())
        code = "\n".join(ln[indent:] for ln in lines) + "\n"
        out.append(("kcl: kcl/ocireg_document.k docstring example evaluates", kcl.eval_code(code)))
    else:
        out.append(("kcl: kcl/ocireg_document.k has a docstring example",
                    {"verdict": "reject", "reason": "no Example: block found"}))
    if len(blocks) < 2:
        out.append(("kcl: kcl/README.md has its two examples",
                    {"verdict": "reject", "reason": f"found {len(blocks)} ```kcl blocks"}))
    return out


def seed_checks() -> list[tuple[str, str, int]]:
    """Every check of kcl/oci_registry.k as (schema, message, line of the message)."""
    out = []
    schema = None
    in_check = False
    prev = ""
    for n, line in enumerate((KCL_DIR / "oci_registry.k").read_text().splitlines(), 1):
        s = line.strip()
        m = re.match(r"schema (\w+)", s)
        if m:
            schema, in_check = m.group(1), False
        elif s == "check:":
            in_check = True
        elif in_check:
            m = re.search(r'"([^"]+)"\s*$', line)
            if m and (re.search(r',\s*"[^"]+"\s*$', line) or prev.endswith("\\")):
                out.append((schema, m.group(1), n))
        prev = line.rstrip()
    return out
