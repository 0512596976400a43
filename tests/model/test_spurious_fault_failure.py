"""Trial 16b, item 1: a re-registered subscription is live, and a fault the protocol
gives up on a registered region of a live mm is a ``spurious-fault-failure``.

``dereg-during-notifier`` deregisters the last MR (``mmu_notifier_unregister`` calls
``->release``), registers C (``mmu_notifier_register`` of a new subscription) and
faults on C.  kvm-seq's release used to mark the *context* dead for good: C's fault
ended ``failed`` in every schedule and the cell passed as clean without reaching its
race.  Now the release ends the registration it belongs to, and a fault aborted with no
deregistration and no mm release behind it is a violation, so such a cell cannot pass.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async._runtime.choosers import RandomChooser
from odp_async.addr import PAGE_SIZE as P
from odp_async.check import Checker, Violation
from odp_async.explore import explore
from odp_async.explore.target import Target
from odp_async.world import World, run_world

#: kvm-seq as it was: a release (even the unregister's) kills the context for good.
STALE_DEAD = """
from typing import ClassVar

from odp_async.odp.protocols import KvmSeq


class StaleDead(KvmSeq):
    name: ClassVar[str] = "stale-dead"
    summary: ClassVar[str] = "kvm-seq whose release outlives its registration"

    async def on_first_mr(self):
        self.in_progress = 0  # and `dead` stays as the last release left it
"""


def _outcomes(protocol: str, n: int) -> collections.Counter[tuple[str, tuple[str, ...]]]:
    target = Target.resolve("dereg-during-notifier", protocol)
    seen: collections.Counter[tuple[str, tuple[str, ...]]] = collections.Counter()
    for seed in range(n):
        run = target.run(RandomChooser(seed), max_steps=20_000)
        seen[(run.sim.value["fault"], tuple(v.kind for v in run.violations))] += 1
    return seen


@pytest.mark.parametrize("protocol", ["kvm-seq", "odp2014", "interval-seq", "odp2014-ctx"])
def test_the_fault_on_the_re_registered_region_resolves(protocol: str) -> None:
    assert _outcomes(protocol, 20) == {("resolved", ()): 20}


def test_a_release_outliving_its_registration_is_found(tmp_path: Path) -> None:
    (tmp_path / "stale_dead.py").write_text(STALE_DEAD)
    sys.path.insert(0, str(tmp_path))
    try:
        result = explore("dereg-during-notifier", "stale_dead:StaleDead", schedules=20)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("stale_dead", None)
    assert result.failure is not None
    violation = result.failure.violation
    assert violation.kind == "spurious-fault-failure"
    assert violation.detail == (
        "a fault on C [0x4000, 0x5000) failed while the region is registered and the mm "
        "alive: the mm was released"
    )


def test_the_cli_reports_the_vacuous_cell_as_found(tmp_path: Path) -> None:
    (tmp_path / "stale_dead.py").write_text(STALE_DEAD)
    argv = ["explore", "dereg-during-notifier", "-p", "stale_dead:StaleDead"]
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv, "--schedules", "20"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[1] == "violation at schedule 1: spurious-fault-failure"


def test_a_fault_failing_for_a_release_or_a_deregistration_is_no_violation() -> None:
    async def body(w: World) -> list[str]:
        await w.mm.mmap(0, 4 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        out = [(await w.ctx.fault(a, 0, write=True)).value]
        await w.mm.exit()  # the release marks A and B dying
        out.append((await w.ctx.fault(b, 0, write=True)).value)
        return out

    for protocol in ("odp2014", "kvm-seq", "interval-seq", "range-list", "hmm-pool"):
        run = run_world(body, protocol=protocol)
        assert run.sim.unwrap() == ["resolved", "failed"], protocol
        assert run.violations == (), protocol


def test_the_checker_records_the_kind() -> None:
    checker = Checker(where=lambda: (3, "fault"))
    checker.fault_failed_spuriously("C", "[0x0, 0x1000) failed: why")
    assert list(checker.violations) == [
        Violation(
            "spurious-fault-failure", 3, ("fault",), (), "a fault on C [0x0, 0x1000) failed: why"
        )
    ]


def test_a_subscriber_registered_again_after_unregister_is_live() -> None:
    from odp_async.subscribers import KvmMmu

    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 4 * P)
        kvm = KvmMmu(w.mm, w.checker)
        await kvm.register()
        await kvm.unregister()  # ->release: dead, for this registration
        out: list[object] = [kvm.dead]
        await kvm.register()
        out += [kvm.dead, await kvm.fault(0, write=True)]
        await w.mm.exit()  # the mm's release: dead for good
        await kvm.register()  # refused: insert-after-release
        out.append(kvm.dead)
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [True, False, "resolved", True]
    assert [v.kind for v in run.violations] == ["insert-after-release"]


def test_a_fault_on_an_unmapped_range_fails_as_the_mm_s_no_violation() -> None:
    """gup finding no mapping (`FaultError`) is the mm's answer, not the protocol's."""

    async def body(w: World) -> str:
        await w.mm.mmap(0, 4 * P)
        a = await w.ctx.register_mr(0, 4 * P, name="A")
        await w.mm.munmap(0, 4 * P)
        return (await w.ctx.fault(a, 0, write=True)).value

    for protocol in ("odp2014", "kvm-seq", "interval-seq"):
        run = run_world(body, protocol=protocol)
        assert run.sim.unwrap() == "failed", protocol
        assert run.violations == (), protocol
