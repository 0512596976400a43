"""Run every ``benchmarks/bench_*.py`` script in turn and write one results file.

Run from the repository root::

    .venv/bin/python benchmarks/run_all.py           # full runs -> benchmarks/results.{md,json}
    .venv/bin/python benchmarks/run_all.py --quick   # smoke runs, a few seconds each

Scripts are found by glob, in name order (``--only NAME`` keeps some), and each runs as a
subprocess of this same interpreter (``--quick`` is passed through), so one script
cannot skew another's timings through leftover state.  Their tables go to stdout as they
come, and into the results: ``results.json`` (every script's rows as data, its output,
exit status and seconds, and the run's command, date, Python and load average) and
``results.md`` (the targets met or not, then every table as printed), both in ``--out``
(default: this directory; a ``--quick`` run writes ``results-quick.*`` so it never
replaces a full run's figures).  Every benchmark runs with the garbage collector on and
reports CPU-clock figures with wall-clock ones beside them (see ``_common.py``).

``--merge`` keeps the other scripts' entries of the results file already there (a run of
some scripts with ``--only`` then updates their figures without dropping the rest); every
script's entry names the run it came from (``run``: command, date, load), and the Markdown
says which rows are older.

``--targets`` runs, in one run, exactly the scripts that carry the speed targets, each in
its targets mode (`TARGET_RUNS`: ``bench_explore.py --steps-only --repeats 15``, the
explorer's step, rate and fixed-cost tables, not its slow exploratory ones; the interval
tree, the model's world setup, the sim, the primitives and the DPOR memory scripts
whole): every target row then comes from the same run, in ``results.{md,json}``, and the
explorer's steps output is also written to ``results-explore-steps.txt`` (the file the
README's paragraph on the explorer's steps quotes; ``results-quick-explore-steps.txt``
with ``--quick``).  About ten minutes on an idle
2-core machine; with ``--merge`` the other scripts' entries are kept.

Targets missed are reported, never fatal: the exit status is 1 only if a script itself
failed (a crash, a nonzero exit), 0 otherwise.  Some scripts check a claim rather than a
speed and exit 1 when it fails (`CLAIM_CHECKS`): they are run like the others (not by
``--targets``: they carry no speed target), and their failure fails the run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: What ``--targets`` runs: each script with a target row, with its arguments (name order).
TARGET_RUNS: dict[str, tuple[str, ...]] = {
    "bench_dpor_memory.py": (),
    "bench_explore.py": ("--steps-only", "--repeats", "15"),
    "bench_intervals.py": (),
    "bench_model.py": (),
    "bench_sim.py": (),
    "bench_sync.py": (),
}

#: Scripts whose nonzero exit means a claim failed, not a crash: what each checks.
CLAIM_CHECKS: dict[str, str] = {
    "bench_dpor_parallel.py": "dpor with jobs=2 (and the cpu count) claims what jobs=1 claims",
}

#: Where ``--targets`` also writes ``bench_explore.py --steps-only``'s output as printed,
#: after the results file's stem (``results``, or ``results-quick`` for ``--quick``).
STEPS_SUFFIX = "-explore-steps.txt"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _spread(row: dict[str, Any], on_ratio: bool) -> str:
    """The range across repeats of a target row's figure: of its ratios, or of its values
    (an absolute target, such as schedules per second); empty when not measured."""
    if on_ratio and "ratio_min" in row:
        return f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
    if not on_ratio and "value_min" in row:
        return f"{row['value_min']:.3g}-{row['value_max']:.3g}"
    return ""


def targets(scripts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row with a target, across scripts: name, figure, target, met."""
    out = []
    for script, entry in scripts.items():
        for tab in entry.get("tables", []):
            for row in tab["rows"]:
                if "target" not in row:
                    continue
                on_ratio = "ratio" in row and row.get("peer") is not None
                figure = row["ratio"] if on_ratio else row.get("value", row.get("cpu"))
                out.append(
                    {
                        "script": script,
                        "table": tab["title"].split(":")[0].split(",")[0],
                        "name": row["name"],
                        "against": row.get("peer") if on_ratio else row.get("unit"),
                        "figure": figure,
                        "range": _spread(row, on_ratio),
                        "target": row["target"],
                        "met": row["met"],
                    }
                )
    return out


def targets_table(rows: list[dict[str, Any]]) -> list[str]:
    """The targets as a Markdown table (the README quotes these lines)."""
    lines = [
        "| script | table | row | against | figure | range | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in rows:
        lines.append(
            f"| {t['script']} | {t['table']} | {t['name']} | {t['against'] or '-'} | "
            f"{t['figure']:.3g} | {t['range'] or '-'} | {t['target']} | "
            f"{'yes' if t['met'] else 'NO'} |"
        )
    return lines


def _provenance(meta: dict[str, Any], entry: dict[str, Any]) -> str:
    """Where a kept (merged) entry came from, when not from this run; else empty."""
    run = entry.get("run")
    if run is None or (run.get("command") == meta["command"] and run.get("date") == meta["date"]):
        return ""
    return f"; kept from `{run['command']}` on {run['date']}, load {run['load_start']}"


def markdown(meta: dict[str, Any], scripts: dict[str, Any]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{meta['command']}` on {meta['date']} (Python {meta['python']}, "
        f"{meta['cpus']} cpus, load average {meta['load_start']} at the start, "
        f"{meta['load_end']} at the end).  Garbage collector on; CPU-clock medians over "
        "repeats with wall-clock beside them; a ratio is the median of per-repeat ratios "
        "against a peer measured in the same run, with its range (min-max).",
        "",
        "## Targets",
        "",
        *targets_table(targets(scripts)),
    ]
    for script, entry in scripts.items():
        lines += [
            "",
            f"## {' '.join([script, *entry.get('args', ())])} "
            f"(exit {entry['exit']}, {entry['seconds']:.1f} s"
            f"{_provenance(meta, entry)})",
            "",
            "```",
            entry["stdout"].rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"


#: The modules of the ``bench`` extra the scripts measure against (frontrun is optional:
#: bench_dpor.py says so and leaves its column out).
PEERS = ("intervaltree", "aiorwlock")


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--only", action="append", default=None, help="run only this script")
    parser.add_argument("--out", default=str(HERE), help="where to write the results files")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other scripts' entries of the results file already in --out",
    )
    parser.add_argument(
        "--targets",
        action="store_true",
        help="run only the scripts with targets, each in its targets mode (TARGET_RUNS)",
    )
    args = parser.parse_args(argv)
    if not Path(args.out).is_dir():
        parser.error(f"--out {args.out!r} is not a directory")  # before minutes of runs
    missing = [name for name in PEERS if importlib.util.find_spec(name) is None]
    if missing:
        parser.error(
            f"the peers {', '.join(missing)} are not installed: pip install -e '.[bench]'"
        )
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        unknown = set(args.only) - {s.name for s in scripts}
        if unknown:
            parser.error(f"no such benchmark script: {', '.join(sorted(unknown))}")
    if args.targets:
        untargeted = set(args.only or ()) - set(TARGET_RUNS)
        if untargeted:
            parser.error(
                f"--targets runs only {', '.join(TARGET_RUNS)}; not "
                f"{', '.join(sorted(untargeted))}"
            )
        scripts = [s for s in scripts if s.name in TARGET_RUNS]
    if args.only:
        scripts = [s for s in scripts if s.name in args.only]
    extra = TARGET_RUNS if args.targets else {}
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    if args.targets:
        command += " --targets"
    if args.merge:
        command += " --merge"
    if args.only:
        command += "".join(f" --only {name}" for name in args.only)
    meta: dict[str, Any] = {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_start": _load(),
        "quick": args.quick,
    }
    results: dict[str, Any] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            rows_file = Path(tmp) / f"{script.stem}.json"
            cmd = [sys.executable, str(script), "--json", str(rows_file)]
            script_args = [*extra.get(script.name, ()), *(["--quick"] if args.quick else [])]
            cmd += script_args
            print(f"### {' '.join([script.name, *script_args])}", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
            took = time.perf_counter() - t0
            sys.stdout.write(proc.stdout)
            print(f"### {script.name}: exit {proc.returncode}, {took:.1f} s\n", flush=True)
            entry: dict[str, Any] = {
                "exit": proc.returncode,
                "seconds": took,
                "stdout": proc.stdout,
                "tables": [],
                "run": {k: meta[k] for k in ("command", "date", "load_start")},
                "args": list(extra.get(script.name, ())),
            }
            if rows_file.exists():
                entry["tables"] = json.loads(rows_file.read_text())["tables"]
            results[script.name] = entry
            if proc.returncode != 0:
                failed.append(script.name)
                if script.name in CLAIM_CHECKS:
                    print(f"### claim failed: {CLAIM_CHECKS[script.name]}", flush=True)
    meta["load_end"] = _load()
    out = Path(args.out)
    stem = "results-quick" if args.quick else "results"
    if args.merge and (out / f"{stem}.json").exists():
        kept = json.loads((out / f"{stem}.json").read_text())
        old_meta = kept.get("meta", {})
        for name, old in kept.get("scripts", {}).items():
            if name not in results:
                old.setdefault("run", {k: old_meta.get(k, "?") for k in ("command", "date")})
                old["run"].setdefault("load_start", old_meta.get("load_start", "?"))
                results[name] = old
        results = dict(sorted(results.items()))
    (out / f"{stem}.json").write_text(
        json.dumps({"meta": meta, "targets": targets(results), "scripts": results}, indent=1)
        + "\n"
    )
    (out / f"{stem}.md").write_text(markdown(meta, results))
    print(f"results written to {out / stem}.md and .json", flush=True)
    steps = results.get("bench_explore.py")
    ran_steps = any(s.name == "bench_explore.py" for s in scripts)  # this run's, not kept
    if args.targets and ran_steps and steps and steps["exit"] == 0:
        (out / f"{stem}{STEPS_SUFFIX}").write_text(steps["stdout"])
        print(f"and the explorer's steps to {out / stem}{STEPS_SUFFIX}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
        return 1
    print(f"all {len(scripts)} benchmark scripts ran", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
