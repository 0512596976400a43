"""Benchmark shrinking: the preemptions of a found failure, after shrinking, and the minimum.

Run from the repository root::

    .venv/bin/python benchmarks/bench_shrink.py            # every built-in failing cell
    .venv/bin/python benchmarks/bench_shrink.py --seeds 3
    .venv/bin/python benchmarks/bench_shrink.py --quick    # three cells, one seed

For every built-in cell expected to fail: the first failure of ``chooser=random`` (seeds
0..S-1; random schedules preempt a lot, the hardest input for a shrinker), shrunk by
`odp_async.explore.shrink.shrink`; the row shows the preemptions found -> shrunk (per
seed), the replays it took, and the minimum the shrinker proved (``minimal``: no schedule
of fewer preemptions shows that failure, its signature: `odp_async.explore.signature`,
by a bounded search; ``-`` when the
search could not tell within its budget).  Printed, not asserted
(``tests/explore/test_shrink_minimal.py`` asserts it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Report

from odp_async.explore.runner import explore
from odp_async.explore.shrink import shrink
from odp_async.explore.target import Target
from odp_async.odp.protocols import PROTOCOLS
from odp_async.scenarios import BUILTIN, Verdict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="three cells, one seed")
    parser.add_argument("--json", metavar="PATH", help="write the rows here (run_all.py)")
    args = parser.parse_args()
    report = Report(Path(__file__).name)
    rows_out: list[dict[str, str]] = []
    quick = {"fault-vs-munmap", "ctx-dereg-during-end", "registration-race"}
    if args.quick:
        args.seeds = 1
    print("| cell | preemptions found -> shrunk (per seed) | replays | minimal | s |")
    print("|---|---|---|---|---|")
    for name, scenario in BUILTIN.items():
        for protocol in PROTOCOLS:
            if scenario.expected_for(protocol) is Verdict.CLEAN:
                continue
            if args.quick and name not in quick:
                continue
            start = time.perf_counter()
            target = Target.resolve(name, protocol)
            cells, replays, minimal = [], [], []
            for seed in range(args.seeds):
                found = explore(
                    name,
                    protocol,
                    chooser="random",
                    seed=seed,
                    schedules=args.budget,
                    shrink=False,
                )
                if found.failure is None:
                    cells.append("miss")
                    continue
                f = found.failure
                s = shrink(target, f.schedule, f.violation.kind, max_steps=50_000)
                cells.append(f"{s.preemptions_before}->{s.preemptions_after}")
                replays.append(s.attempts)
                minimal.append(getattr(s, "minimal", None))
            shown_min = ",".join("-" if m is None else ("yes" if m else "no") for m in minimal)
            cols = [
                f"{name} / {protocol}",
                " ".join(cells),
                str(max(replays, default=0)),
                shown_min,
                f"{time.perf_counter() - start:.1f}",
            ]
            print("| " + " | ".join(cols) + " |", flush=True)
            heads = ["cell", "found -> shrunk", "replays", "minimal", "s"]
            rows_out.append(dict(zip(heads, cols, strict=True)))
    report.add("preemptions after shrinking", rows_out)
    report.write(args.json)


if __name__ == "__main__":
    main()
