"""A storm N tasks wide starves a KVM-style fault as a storm 2 tasks wide does, and
correct protocols stay clean under it (see "Liveness" in `odp_async.odp.ucontext`).

verify20 v3: the bound counted generations of holders (an end charged a held-back fault
only once every invalidation in flight at its last charge had ended), so a storm whose
invalidations keep N in flight took about N ends per charge: 8 tasks x 4 madvises on A
(32 ends) or 16 x 2 left a fault on B under kvm-seq, which waits while any invalidation
runs, `clean` under random and the default portfolio (a missed bug reported as a pass).
Now an end charges the fault unless the scheduler passed over the faulting task, or the
task of an invalidation in flight at the last charge and still in flight, since that
charge.  The scenarios are files and the user protocols a module outside the package,
run in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._usermod import module_name, pythonpath_env

HEAD = """
[scenario]
name = "storm-TASKSxROUNDS"
summary = "TASKS tasks x ROUNDS madvises on A, a fault on B"

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 16 },
    { op = "populate", start = 0x0, pages = 16 },
    { op = "register", mr = "A", start = 0x0, pages = 16 },
    { op = "mmap", start = 0x20000, pages = 16 },
    { op = "populate", start = 0x20000, pages = 16 },
    { op = "register", mr = "B", start = 0x20000, pages = 16 },
]

[[actor]]
name = "fault"
ops = [{ op = "fault", mr = "B", address = 0x24000, write = true }]
"""


def storm(tasks: int, rounds: int) -> str:
    """`tasks` actors invalidating 2 pages of A `rounds` times each (four spots, so
    neighbours overlap), and one fault on B."""
    text = HEAD.replace("TASKS", str(tasks)).replace("ROUNDS", str(rounds))
    for t in range(tasks):
        op = f'{{ op = "madvise", start = {(t % 4) * 0x4000:#x}, pages = 2 }}'
        text += f'\n[[actor]]\nname = "storm{t}"\nops = [{", ".join([op] * rounds)}]\n'
    return text


SOURCE = '''
from typing import Any, ClassVar

from odp_async.odp import FaultAborted, TreeProtocol
from odp_async.sync import Mutex, WaitQueue
from odp_async.tracked import TrackedList, tracked


@tracked
class Seq(TreeProtocol):
    """KVM style: a context-wide count of running invalidations and a generation; a
    fault waits while any runs and retries if one ended since it read the generation.
    Keeps TreeProtocol's holds_back (busy or generation moved)."""

    name: ClassVar[str] = "user-seq"
    summary: ClassVar[str] = "ctx-wide busy count + generation"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.lock = Mutex("user_seq_lock")
        self.busy = 0
        self.gen = 0
        self.quiet = WaitQueue("user seq quiet")

    async def on_first_mr(self):
        self.busy = 0

    async def before_start(self, inv):
        async with self.lock:
            self.busy += 1

    async def after_end(self, inv):
        async with self.lock:
            self.gen += 1
            self.busy -= 1
            if self.busy <= 0:
                self.quiet.wake_all()

    def read_token(self, umem):
        return self.gen

    async def fault_commit(self, umem, rng, token, pages):
        async with self.lock:
            async with umem.mutex:
                return await self.commit_under_lock(umem, rng, token, pages)

    def must_retry(self, umem, rng, token):
        return self.busy > 0 or self.gen != token

    async def fault_wait(self, umem, rng, token):
        while self.busy > 0:
            await self.quiet.park()


@tracked
class Ranges(TreeProtocol):
    """A list of the ranges being invalidated; a fault waits until none overlaps it,
    and commits if its region's seq did not move.  Keeps TreeProtocol's holds_back."""

    name: ClassVar[str] = "user-ranges"
    summary: ClassVar[str] = "active ranges, per-region seq"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.lock = Mutex("user_ranges_lock")
        self.active = TrackedList()
        self.changed = WaitQueue("user ranges changed")

    async def on_first_mr(self):
        self.active.clear()

    async def before_start(self, inv):
        async with self.lock:
            self.active.append(inv.range)

    async def end_account(self, umem, inv):
        async with umem.mutex:
            umem.seq += 1

    async def after_end(self, inv):
        async with self.lock:
            self.active.remove(inv.range)
            self.changed.wake_all()

    async def release_account(self, umem):
        async with umem.mutex:
            umem.seq += 1
            umem.dying = True
        self.changed.wake_all()

    def _busy(self, rng):
        return any(r.overlaps(rng) for r in self.active)

    def must_retry(self, umem, rng, token):
        return self._busy(rng) or umem.seq != token

    async def fault_begin(self, umem, rng):
        while self._busy(rng) and not umem.dying:
            await self.changed.park()
        return await super().fault_begin(umem, rng)

    async def fault_wait(self, umem, rng, token):
        if umem.dying:
            raise FaultAborted("dying")
        while self._busy(rng) and not umem.dying:
            await self.changed.park()
'''

RUNNER = """
import json, sys
from odp_async.explore.runner import explore
out = []
for scenario, protocol, chooser, budget in json.loads(sys.argv[1]):
    r = explore(scenario, protocol, chooser=chooser, schedules=budget, seed=0, shrink=False)
    out.append(
        [r.failure.violation.kind if r.failure else "clean", r.schedules, r.inconclusive]
    )
print(json.dumps(out))
"""

#: (tasks, rounds): 32 and 32 invalidations, each of them N-wide.
WIDE = ((8, 4), (16, 2))


def _run(tmp_path: Path, cells: list[tuple[tuple[int, int], str, str, int]]) -> list[list[object]]:
    name = module_name("width", tmp_path)
    (tmp_path / f"{name}.py").write_text(SOURCE)
    args = []
    for (tasks, rounds), protocol, chooser, budget in cells:
        toml = tmp_path / f"storm{tasks}x{rounds}.toml"
        toml.write_text(storm(tasks, rounds))
        args.append([str(toml), protocol.replace("USER", f"{name}:"), chooser, budget])
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(args)],
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got: list[list[object]] = json.loads(done.stdout)
    return got


@pytest.mark.parametrize("chooser", ["random", "portfolio"])
def test_a_wide_storm_starves_a_kvm_style_fault(tmp_path: Path, chooser: str) -> None:
    """Before: clean in 300 schedules, each of these (generations: about 4 of 32 ends)."""
    cells = [(w, p, chooser, 300) for w in WIDE for p in ("kvm-seq", "USERSeq")]
    got = _run(tmp_path, cells)
    assert [kind for kind, _, _ in got] == ["starvation"] * len(cells), got


#: Correct protocols: budgets per chooser.  dfs runs the 8 x 4 storm's first schedule
#: only: its second comes after sleep-set-blocked executions (range-list: 127, 11 s, on a
#: slow 2-core host, 12-05); the built-in storm cells get more dfs in
#: tests/odp/test_liveness.py.
CLEAN_BUDGET = {"random": 150, "pct": 150, "dfs": 1, "dpor": 40}


@pytest.mark.timeout(1200)  # about 50 s alone on 2 cores (dpor), far more when loaded
@pytest.mark.parametrize("chooser", ["random", "pct", "dfs", "dpor"])
def test_correct_protocols_stay_clean_under_a_wide_storm(tmp_path: Path, chooser: str) -> None:
    budget = CLEAN_BUDGET[chooser]
    protocols = ("range-list", "interval-seq", "odp2014-ctx", "USERRanges")
    widths = WIDE[:1] if chooser == "dfs" else WIDE
    got = _run(tmp_path, [(w, p, chooser, budget) for w in widths for p in protocols])
    assert got == [["clean", budget, False]] * (len(widths) * len(protocols))
