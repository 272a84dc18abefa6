#!/usr/bin/env python3
"""Differential test of ocireg's config model against real KCL.

For every case of tests/kcl_diff/cases/ (see README.md there for the case format):
  1. evaluate it in real KCL (the kcl-lib Python package) against kcl/oci_registry.k
     (and kcl/ocireg_document.k for whole documents): verdict, and on accept the output values;
  2. run `ocireg config show FILE --format json [--schema NAME]` and `ocireg config validate`
     on the same instance written as JSON, YAML or TOML (or piped to stdin);
  3. compare: same verdict; on accept the same values (nulls dropped, numbers compared
     numerically, keys in the same order); on reject the KCL check message appears in ocireg's
     errors. A case tagged `deviation` instead asserts what docs/config.md documents.
The corpus is asserted too: a case's `expect` (and `error`, `values`) must hold in KCL, every
schema has accepted and rejected cases, and every check of the seed is violated by some case.

Usage: python3 tests/kcl_diff/run.py [--ocireg target/debug/ocireg] [-k SUBSTRING] [-v]
Without --ocireg only the KCL half runs (corpus self-check). Exit status 0 iff nothing failed.
Modules: corpus.py (cases), kcl_side.py (KCL), formats.py (JSON/YAML/TOML writers),
compare.py (judging); this file runs ocireg and reports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tests/kcl_diff free of __pycache__

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from compare import deviation_section, first_line, judge, judge_kcl
from corpus import (MIN_CASES, ROTATION, SCHEMAS, UNREACHABLE_CHECKS, CorpusError,
                    load_corpus, yaml)
from formats import has_null, render
from kcl_side import Kcl, doc_examples, seed_checks

HERE = Path(__file__).resolve().parent


def run_ocireg(binary: str, case, fmt: str, tmp: Path):
    text = render(case["instance"], fmt)
    schema_args = [] if case["schema"] == "document" else ["--schema", case["schema"]]
    if fmt == "stdin":
        file_arg, stdin = "-", text
    else:
        f = tmp / f"case.{fmt}"
        f.write_text(text)
        file_arg, stdin = str(f), None
    show = subprocess.run([binary, "config", "show", file_arg, *schema_args, "--format", "json"],
                          input=stdin, capture_output=True, text=True, timeout=60)
    val = subprocess.run([binary, "config", "validate", file_arg, *schema_args],
                         input=stdin, capture_output=True, text=True, timeout=60)
    res = {"rc": show.returncode, "stderr": show.stderr, "stdout": show.stdout,
           "validate_rc": val.returncode, "validate_stderr": val.stderr}
    if show.returncode == 0:
        try:
            res["values"] = json.loads(show.stdout)
            res["verdict"] = "accept"
        except json.JSONDecodeError as e:
            res["verdict"] = "error"
            res["problem"] = f"`config show` exit 0 but stdout is not JSON ({e})"
    elif show.returncode == 3 and " syntax error in " not in show.stderr:
        # 3 is an invalid config; a rendering ocireg cannot parse is the harness's fault.
        res["verdict"] = "reject"
    else:
        res["verdict"] = "error"
        res["problem"] = f"`config show` exit {show.returncode}: {first_line(show.stderr)}"
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ocireg", help="path of the ocireg binary (omit: KCL side only)")
    ap.add_argument("--cases", default=str(HERE / "cases"), help="corpus directory")
    ap.add_argument("-k", dest="filter", help="run only cases whose name contains this")
    ap.add_argument("-j", "--jobs", type=int, default=4, help="ocireg processes run at once")
    ap.add_argument("-v", "--verbose", action="store_true", help="print values and errors of failures")
    args = ap.parse_args()

    if yaml is None:
        print("error: PyYAML is not importable; run scripts/install-test-deps.sh", file=sys.stderr)
        return 2
    try:
        import kcl_lib.api  # noqa: F401
    except ImportError:
        print("error: kcl_lib is not importable; run scripts/install-test-deps.sh", file=sys.stderr)
        return 2
    if args.ocireg and not Path(args.ocireg).is_file():
        print(f"error: no ocireg binary at {args.ocireg}", file=sys.stderr)
        return 2

    started = time.monotonic()
    passed = failed = 0

    def report(ok: bool, label: str, problems=(), detail: str = ""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok   {label}")
        else:
            failed += 1
            print(f"FAIL {label}: " + "; ".join(problems))
            if args.verbose and detail:
                print("     " + detail.replace("\n", "\n     "))

    try:
        cases = load_corpus(Path(args.cases))
    except CorpusError as e:
        print(f"FAIL corpus: {e}")
        print("0 passed, 1 failed")
        return 1
    selected = [c for c in cases if not args.filter or args.filter in c["name"]]
    doc_section = deviation_section()

    with tempfile.TemporaryDirectory(prefix="kcl_diff_") as tmpd:
        tmp = Path(tmpd)
        kdir = tmp / "kcl"
        kdir.mkdir()
        kcl = Kcl(kdir)
        comp = kcl.check_schema_compiles()
        report(comp["verdict"] == "accept", "kcl: kcl/oci_registry.k and kcl/ocireg_document.k compile",
               [comp.get("reason", "")])
        by_name = {c["name"]: c for c in cases}
        if not args.filter and "doc-zot-max" in by_name:
            for label, res in doc_examples(kcl, tmp, by_name["doc-zot-max"]["instance"]):
                report(res["verdict"] == "accept", label, [res.get("reason", "")])

        # 1. KCL, one evaluation per case (one API object, sequential)
        kcl_results = {}
        jobs = []  # (case, kcl result, format)
        rotation = 0
        for case in selected:
            try:
                k = kcl.evaluate(case)
            except CorpusError as e:
                report(False, case["name"], [f"corpus: {e}"])
                continue
            kcl_results[case["name"]] = k
            problems = judge_kcl(case, k)
            if problems or not args.ocireg:
                detail = json.dumps(k.get("values")) if k["verdict"] == "accept" else k.get("message", "")
                report(not problems, f"{case['name']} [kcl]", problems, detail)
                continue
            fmts = case["formats"]
            if fmts is None:
                fmt = ROTATION[rotation % len(ROTATION)]
                rotation += 1
                if fmt == "toml" and has_null(case["instance"]):
                    fmt = "json"
                fmts = [fmt]
            jobs += [(case, k, fmt) for fmt in fmts]

        # 2. ocireg, in parallel (each run has its own file)
        def run_job(i_job):
            i, (case, _k, fmt) = i_job
            d = tmp / f"run_{i}"
            d.mkdir()
            try:
                return run_ocireg(args.ocireg, case, fmt, d)
            except (CorpusError, subprocess.TimeoutExpired) as e:
                return {"exception": str(e)}

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = list(pool.map(run_job, enumerate(jobs)))

        # 3. judge, in corpus order
        for (case, k, fmt), o in zip(jobs, outcomes):
            tag = f"{case['name']} [{k['verdict']}, {fmt}]"
            if "exception" in o:
                report(False, tag, [o["exception"]])
                continue
            problems = judge(case, k, o, doc_section)
            detail = ""
            if problems:
                kcl_out = json.dumps(k.get("values")) if k["verdict"] == "accept" else k["reason"]
                detail = (f"instance: {json.dumps(case['instance'])}\n"
                          f"KCL: {kcl_out}\n"
                          f"ocireg exit {o['rc']}: {o['stdout'].strip() or o['stderr'].strip()}")
            report(not problems, tag, problems, detail)

        if not args.filter:
            # corpus-wide guarantees
            report(len(cases) >= MIN_CASES, f"corpus: {len(cases)} cases (at least {MIN_CASES})",
                   [f"only {len(cases)} cases"])
            for s in SCHEMAS:
                verdicts = {kcl_results[c["name"]]["verdict"] for c in cases
                            if c["schema"] == s and c["name"] in kcl_results}
                report(verdicts == {"accept", "reject"}, f"corpus: {s} has accepted and rejected cases",
                       [f"KCL verdicts over its cases: {sorted(verdicts) or 'none'}"])
            seen = {(r.get("check"), r.get("check_line")) for r in kcl_results.values()}
            for schema, msg, line in seed_checks():
                label = f"corpus: check {schema} {msg!r} (oci_registry.k:{line})"
                if msg in UNREACHABLE_CHECKS:
                    report((msg, line) not in seen, f"{label} is unreachable ({UNREACHABLE_CHECKS[msg]})",
                           ["a case reached it after all: remove it from UNREACHABLE_CHECKS"])
                else:
                    report((msg, line) in seen, f"{label} is violated by some case",
                           ["no case makes KCL report it"])

    elapsed = time.monotonic() - started
    print(f"# {len(selected)} cases, {kcl.n} KCL evaluations, {elapsed:.1f}s"
          + ("" if args.ocireg else " (KCL side only: pass --ocireg to compare)"))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
