#!/usr/bin/env python3
"""plugd against its floor and against the source documents' hosts, in one run.

    python3 benches/compare.py            # full run (a few minutes)
    python3 benches/compare.py --quick    # a tenth of the calls, for a smoke test
    python3 benches/compare.py --json     # one JSON document instead of the table

Measured side by side on this machine, in this order:

1. the library bench (`cargo bench -p plugd-runtime --bench warm -- --json`):
   the raw pipe round trip to `cat` (the floor), warm calls to the Rust echo
   plugin through a Worker and a Pool, throughput with 64 callers, warm calls to
   the Python echo plugin, one `python3` process per call (what OmniFlow,
   OmniScope and Stage7 do), and the host's RSS with 10 warm workers;
2. `plugd bench` through the real binary: the same plugins installed in a
   scratch home and called through warm pools of sandboxed workers.

Then each of issue 3's targets is checked against the figures of this run.
Nothing is hard-coded: every number printed comes from the run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, text=True, **kw)


def plugd_json(plugd, home, *args):
    out = run([str(plugd), "--home", str(home), "--json", *args], capture_output=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the calls")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    opts = ap.parse_args()
    scale = 10 if opts.quick else 1
    log = (lambda *a: print(*a, file=sys.stderr)) if opts.json else print

    log("building plugd and rust-echo (release)…")
    run(["cargo", "build", "--release", "--quiet", "-p", "plugd-cli", "-p", "plugd-example-rust-echo"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    plugd = target / "release" / "plugd"
    rust_echo = target / "release" / "rust-echo"

    log("library bench (cargo bench -p plugd-runtime --bench warm)…")
    bench_args = ["--json"] + (["--quick"] if opts.quick else [])
    lib = json.loads(
        run(
            ["cargo", "bench", "--quiet", "-p", "plugd-runtime", "--bench", "warm", "--", *bench_args],
            capture_output=True,
        ).stdout.strip().splitlines()[-1]
    )

    log("plugd bench through the binary (sandboxed warm pools)…")
    home = Path(tempfile.mkdtemp(prefix="plugd-compare-"))
    cli = {}
    try:
        scratch = home / "pkgs"
        rust_dir = scratch / "rust-echo"
        shutil.copytree(ROOT / "examples" / "rust-echo", rust_dir, ignore=shutil.ignore_patterns("target"))
        (rust_dir / "bin").mkdir(exist_ok=True)
        shutil.copy2(rust_echo, rust_dir / "bin" / "rust-echo")
        for plugin in [rust_dir, ROOT / "examples" / "python-echo"]:
            plugd_json(plugd, home, "install", "--enable", str(plugin))
        calls = 20000 // scale
        for name, plugin, conc in [
            ("rust_echo_c1", "rust-echo", 1),
            ("rust_echo_c64", "rust-echo", 64),
            ("python_echo_c1", "python-echo", 1),
        ]:
            cli[name] = plugd_json(
                plugd, home, "bench", plugin, "echo", "--args", '{"message":"hello"}',
                "--calls", str(calls), "--concurrency", str(conc),
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)

    raw = lib["raw_pipe_cat"]["p50_us"]
    checks = [
        (
            "Rust warm call p50 ≤ 3× raw pipe (library Worker)",
            lib["worker_rust_echo"]["p50_us"] / raw,
            "≤ 3.0",
            lib["worker_rust_echo"]["p50_us"] / raw <= 3.0,
        ),
        (
            "Rust warm call p50 ≤ 3× raw pipe (library Pool)",
            lib["pool_rust_echo"]["p50_us"] / raw,
            "≤ 3.0",
            lib["pool_rust_echo"]["p50_us"] / raw <= 3.0,
        ),
        (
            "Python warm call p50 ≤ 100 µs (library Worker)",
            lib["worker_python_echo"]["p50_us"],
            "≤ 100 µs",
            lib["worker_python_echo"]["p50_us"] <= 100.0,
        ),
        (
            "Python warm vs one python3 per call (speed-up)",
            lib["spawn_per_call_python_echo"]["p50_us"] / lib["worker_python_echo"]["p50_us"],
            "≥ 100×",
            lib["spawn_per_call_python_echo"]["p50_us"] / lib["worker_python_echo"]["p50_us"] >= 100,
        ),
        (
            "Throughput to Rust echo, 2 workers, concurrency 64 (library Pool)",
            lib["pool_throughput"]["calls_per_sec"],
            "≥ 50,000/s",
            lib["pool_throughput"]["calls_per_sec"] >= 50000,
        ),
        (
            "Host RSS with 10 warm workers (MiB)",
            lib["host_rss"]["vm_rss_kib"] / 1024,
            "≤ 30 MiB",
            lib["host_rss"]["vm_rss_kib"] / 1024 <= 30,
        ),
    ]
    sandboxed_ratio = cli["rust_echo_c1"]["p50_us"] / lib["pool_rust_echo"]["p50_us"]
    checks.append((
        "Sandboxed warm call (plugd bench) vs unsandboxed library Pool, p50 ratio",
        sandboxed_ratio,
        "≈ 1× (issue 4: zero added cost per warm call; ≤ 1.25 allows for noise)",
        sandboxed_ratio <= 1.25,
    ))
    result = {"library": lib, "cli": cli, "targets": [
        {"target": t, "value": round(v, 2), "goal": g, "met": m} for t, v, g, m in checks
    ]}
    if opts.json:
        print(json.dumps(result, indent=2))
        return
    print()
    print("| measure | p50 µs | p99 µs | calls/s |")
    print("| --- | ---: | ---: | ---: |")
    for key, row in lib.items():
        if isinstance(row, dict) and "p50_us" in row:
            print(f"| library: {key} | {row['p50_us']:.1f} | {row['p99_us']:.1f} | {row.get('calls_per_sec', 0):,.0f} |")
    for key, row in cli.items():
        print(f"| plugd bench: {key} ({row['workers']} workers, sandboxed) | {row['p50_us']:.1f} | {row['p99_us']:.1f} | {row['calls_per_sec']:,.0f} |")
    print()
    print("| target | this run | goal | met |")
    print("| --- | ---: | --- | --- |")
    for t, v, g, m in checks:
        print(f"| {t} | {v:,.2f} | {g} | {'yes' if m else 'NO'} |")


if __name__ == "__main__":
    main()
