#!/usr/bin/env python3
"""Compare plugd-scan with Bandit on the Python files of examples/ plus the scan corpus.

Creates a venv in a temp dir, installs Bandit from PyPI there (never into the product), copies the
files into one tree so both tools see the same paths, then reports:
  recall  = Bandit medium/high findings that plugd also reports (same file, line and test id)
  extra   = plugd medium/high findings with a Bandit id that Bandit does not report at all
  speed   = median wall time of N runs of each tool (plugd's release example binary)
Usage: python3 crates/scan/benches/bandit_compare.py [--runs N]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5


def timed(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t, p


def main():
    work = Path(tempfile.mkdtemp(prefix="bandit-compare-"))
    try:
        tree = work / "tree"
        for py in sorted((ROOT / "examples").rglob("*.py")):
            dst = tree / "examples" / py.relative_to(ROOT / "examples")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(py, dst)
        shutil.copytree(ROOT / "crates/scan/tests/corpus/python", tree / "corpus")
        shutil.copytree(ROOT / "crates/scan/tests/corpus/clean", tree / "clean", ignore=shutil.ignore_patterns("*.sh", "*.R", "*.js"))
        nfiles = len(list(tree.rglob("*.py")))

        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "bandit"], check=True)
        bandit = [str(venv / "bin/bandit"), "-q", "-r", "-f", "json", str(tree)]

        subprocess.run(["cargo", "build", "-q", "--release", "-p", "plugd-scan", "--example", "scan"], check=True, cwd=ROOT)
        plugd = [str(ROOT / "target/release/examples/scan"), "--json", str(tree)]

        b_times, p_times = [], []
        for _ in range(RUNS):
            t, bp = timed(bandit)
            b_times.append(t)
            t, pp = timed(plugd)
            p_times.append(t)
        b = json.loads(bp.stdout)
        p = json.loads(pp.stdout)

        def rel(f):
            return str(Path(f).resolve().relative_to(tree.resolve()))

        bandit_all = {(rel(r["filename"]), r["line_number"], r["test_id"]) for r in b["results"]}
        bandit_mh = {(rel(r["filename"]), r["line_number"], r["test_id"]) for r in b["results"] if r["issue_severity"] in ("MEDIUM", "HIGH")}
        plugd_all = {(f["file"], f["line"], f["rule_id"]) for f in p["findings"]}
        plugd_b_mh = {(f["file"], f["line"], f["rule_id"]) for f in p["findings"] if f["rule_id"].startswith("B") and f["severity"] in ("medium", "high")}
        plugd_only = sorted({f["rule_id"] for f in p["findings"] if not f["rule_id"].startswith("B")})

        hit = bandit_mh & plugd_all
        missed = sorted(bandit_mh - plugd_all)
        extra = sorted(plugd_b_mh - bandit_all)
        recall = len(hit) / len(bandit_mh) if bandit_mh else 1.0
        extra_rate = len(extra) / len(plugd_b_mh) if plugd_b_mh else 0.0
        bm, pm = statistics.median(b_times), statistics.median(p_times)

        print(f"files: {nfiles} Python files (examples/ + corpus), {RUNS} runs each")
        print(f"| metric | value | target |")
        print(f"|---|---|---|")
        print(f"| Bandit medium/high findings | {len(bandit_mh)} | |")
        print(f"| recall (file+line+test id) | {recall:.1%} ({len(hit)}/{len(bandit_mh)}) | >= 95% |")
        print(f"| extra Bandit-class findings | {extra_rate:.1%} ({len(extra)}/{len(plugd_b_mh)}) | <= 10% |")
        print(f"| Bandit median time | {bm * 1000:.0f} ms | |")
        print(f"| plugd-scan median time | {pm * 1000:.1f} ms | |")
        print(f"| speed-up | {bm / pm:.1f}x | >= 10x |")
        print(f"plugd-only rules seen (not comparable with Bandit): {', '.join(plugd_only)}")
        for m in missed:
            print("missed:", m)
        for e in extra:
            print("extra:", e)
        return 0 if recall >= 0.95 and extra_rate <= 0.10 and bm / pm >= 10 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
