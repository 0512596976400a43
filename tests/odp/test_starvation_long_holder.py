"""A fault delayed by ONE long invalidation is not charged for a storm's ends elsewhere
(see "Liveness" in `odp_async.odp.ucontext`).

New-user trial 22a f2: a slow secondary subscriber keeps one invalidation ("long", over
the fault's page of A) between its start and its end for a long time, while a storm of
short madvises runs on region B.  Every storm end found the fault held back (by "long")
and, no task being passed over (the holder sleeps, the fault is parked), was charged:
``starvation ... held back by the protocol across 14 invalidations`` for range-list,
odp2014-ctx and odp2014 under random (seed 0: schedules 1, 5, 5), the portfolio and
``--jobs 2``, though the protocol only made the fault wait for one holder.  Now charges
are provisional until the invalidations in flight at the wait's first charge have all
ended with the fault still held back (then at most that window's width + 1 count); a
wait the protocol ends before that counts one.

kvm-seq waits while any invalidation runs, so when the storm outlasts the long holder
("holder-then-storm": the holder ends after the storm's first round) its fault is still
starved there, and the storm-width cells (tests/odp/test_starvation_storm_width.py) still
find it.  The scenarios are a user module outside the package, run in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._usermod import module_name, pythonpath_env

SOURCE = '''
from odp_async import Completion, sleep, task_group
from odp_async.addr import PAGE_SIZE as P
from odp_async.scenarios import Scenario

A, B = 0x0, 0x40000


class Slow:
    """A secondary MMU whose start over A is slow (it flushes a big TLB): `sleep`s, or
    waits for `until`.  Registered after ODP's subscription, so called after ODP's start."""

    def __init__(self, mm, until=None):
        self.mm = mm
        self.until = until
        self.slow = 0

    async def invalidate_range_start(self, inv):
        if inv.range.start < A + 16 * P:
            self.slow += 1
            if self.until is None:
                await sleep(float(self.slow))  # the second over A outlasts the first
            else:
                await self.until.wait()

    async def invalidate_range_end(self, inv):
        pass

    async def release(self):
        pass


def make(tasks, rounds, outlast, second=False):
    async def body(w):
        await w.mm.mmap(A, 16 * P)
        await w.mm.mmap(B, 16 * P)
        for vpn in range(16):
            await w.mm.cpu_fault(A + vpn * P, write=True)
            await w.mm.cpu_fault(B + vpn * P, write=True)
        a = await w.ctx.register_mr(A, 16 * P, name="A")
        await w.ctx.register_mr(B, 16 * P, name="B")
        first_round = Completion("storm0's first round")
        await w.mm.register_notifier(Slow(w.mm, first_round if outlast else None))

        async def storm(t):
            for i in range(rounds):
                await w.mm.madvise_dontneed(B + (t % 4) * 4 * P, 2 * P)
                if i == 0 and t == 0:
                    first_round.complete_all()

        async def long2():  # a second slow one over the fault, once the storm has begun
            await first_round.wait()
            await w.mm.madvise_dontneed(A + 4 * P, P)

        async def fault():
            await w.ctx.fault(a, A + 4 * P, write=True)

        async with task_group() as tg:
            tg.start_soon(w.mm.madvise_dontneed, A, 8 * P, name="long")
            tg.start_soon(fault, name="fault")
            for t in range(tasks):
                tg.start_soon(storm, t, name=f"storm{t}")
            if second:
                tg.start_soon(long2, name="long2")

    return body


def actors(tasks, second=False):
    return ("long", "fault", *(f"storm{t}" for t in range(tasks)), *(("long2",) * second))


long_holder = Scenario(
    "long-holder",
    "one slow invalidation over the fault's page, a storm of madvises on another region",
    make(4, 5, False),
    actors(4),
)

two_holders = Scenario(
    "two-holders",
    "one slow invalidation over the fault's page, a slower one begun during the storm",
    make(4, 5, False, second=True),
    actors(4, second=True),
)

holder_then_storm = Scenario(
    "holder-then-storm",
    "one slow invalidation over the fault's page until a wide storm on B has begun",
    make(8, 4, True),
    actors(8),
)
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

CORRECT = ("range-list", "odp2014-ctx", "odp2014")


def _module(tmp_path: Path) -> str:
    name = module_name("longholder", tmp_path)
    (tmp_path / f"{name}.py").write_text(SOURCE)
    return name


def _run(tmp_path: Path, cells: list[tuple[str, str, str, int]]) -> list[list[object]]:
    name = _module(tmp_path)
    args = [[f"{name}:{s}", p, chooser, budget] for s, p, chooser, budget in cells]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(args)],
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got: list[list[object]] = json.loads(done.stdout)
    return got


@pytest.mark.parametrize("chooser", ["random", "portfolio", "pct"])
def test_a_long_holder_is_not_charged_for_a_storm_elsewhere(tmp_path: Path, chooser: str) -> None:
    """kvm-seq too: the storm ends before the holder, so the fault waited for it alone."""
    protocols = (*CORRECT, "kvm-seq")
    got = _run(tmp_path, [("long_holder", p, chooser, 150) for p in protocols])
    assert got == [["clean", 150, False]] * len(protocols)


@pytest.mark.parametrize("chooser", ["random", "portfolio"])
def test_a_window_turned_over_counts_its_width_plus_one(tmp_path: Path, chooser: str) -> None:
    """The second slow invalidation may begin after the wait's first charge: the first
    one's end then turns the window over with the fault still held (by the second), and
    of the storm's ends charged meanwhile only the window's width + 1 count."""
    protocols = (*CORRECT, "kvm-seq")
    got = _run(tmp_path, [("two_holders", p, chooser, 150) for p in protocols])
    assert got == [["clean", 150, False]] * len(protocols)


def test_a_long_holder_is_not_charged_under_jobs_2(tmp_path: Path) -> None:
    """The CLI, as the trial ran it: the portfolio over two worker processes."""
    name = _module(tmp_path)
    cli = [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:long_holder"]
    for protocol in CORRECT:
        done = subprocess.run(
            [*cli, "-p", protocol, "--schedules", "100", "--jobs", "2"],
            env=pythonpath_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert done.returncode == 0, (protocol, done.stdout, done.stderr)
        assert "starvation" not in done.stdout


@pytest.mark.parametrize("chooser", ["random", "portfolio"])
def test_a_storm_that_outlasts_the_holder_still_starves_kvm_seq(
    tmp_path: Path, chooser: str
) -> None:
    """kvm-seq waits while any invalidation runs: the storm on B keeps the fault on A
    waiting after the holder ends.  The protocols that wait per range let it go."""
    protocols = ("kvm-seq", *CORRECT)
    got = _run(tmp_path, [("holder_then_storm", p, chooser, 150) for p in protocols])
    assert [kind for kind, _, _ in got] == ["starvation", "clean", "clean", "clean"], got
