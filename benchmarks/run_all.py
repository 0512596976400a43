"""Run every ``benchmarks/bench_*.py`` script in turn: the whole suite in one command.

Run from the repository root::

    .venv/bin/python benchmarks/run_all.py           # full runs
    .venv/bin/python benchmarks/run_all.py --quick   # smoke runs, a few seconds each

Scripts are found by glob, in name order, and each runs as a subprocess of this same
interpreter (``--quick`` is passed through), so one script cannot skew another's
timings through leftover state.  Their tables go straight to stdout.  Targets missed are
only printed by the scripts; the exit status is 1 only if a script itself failed (a
crash, a nonzero exit), 0 otherwise.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    args = parser.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    failed: list[str] = []
    for script in scripts:
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        print(f"### {script.name}{' --quick' if args.quick else ''}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, check=False).returncode
        took = time.perf_counter() - t0
        print(f"### {script.name}: exit {rc}, {took:.1f} s\n", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
        return 1
    print(f"all {len(scripts)} benchmark scripts ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
