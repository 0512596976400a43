"""A fault that retries by spinning is charged only the refusals its protocol imposes.

KVM's RET_PF_RETRY and amdgpu's ``goto retry`` do not sleep between a refused commit and
the next attempt: the vCPU re-enters the fault (``cond_resched``).  Before the fix, every
refused attempt counted toward ``max_fault_retries``, so a chooser that kept the one
invalidator off the CPU (parked between its start and its end) while the fault spun made
a correct protocol "starve": pct in 19 schedules, dfs in 8, dpor in 2 (trial18b, finding
f1: kvm-seq with ``fault_wait`` replaced by a checkpoint, ``retried 12 times``).  Now a
refusal counts only after an invalidation that let the fault go (a new one refused it) or
once the world went idle (see "Liveness" in `odp_async.odp.ucontext`); an endless spin is
left to the step bound and its fair continuation.  A protocol that refuses for no reason
is still never clean.  And a hook that returns what its contract does not allow (a
``fault_commit`` that forgets ``return``) is the author's mistake, not starvation.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from odp_async.errors import ProtocolUsageError, ScenarioUsageError
from odp_async.explore.runner import explore
from tests._usermod import forget, pythonpath_env, write_user_module

SPIN = """
    from typing import ClassVar

    from odp_async import checkpoint
    from odp_async.odp.protocols import KvmSeq


    class SpinKvm(KvmSeq):
        "kvm-seq whose retry is a cond_resched spin (KVM RET_PF_RETRY): correct."
        name: ClassVar[str] = "u-spin-kvm"
        summary: ClassVar[str] = "kvm-seq, retry by cond_resched spin"

        async def fault_wait(self, umem, rng, token):
            await checkpoint("cond_resched")


    class SpinForever(SpinKvm):
        "BUG: the commit refuses every attempt, with no invalidation at all."
        name: ClassVar[str] = "u-spin-forever"
        summary: ClassVar[str] = "refuses every commit"

        def must_retry(self, umem, rng, token):
            return True


    class ReturnsNone(KvmSeq):
        "fault_commit forgets `return`."
        name: ClassVar[str] = "u-returns-none"
        summary: ClassVar[str] = "fault_commit returns None"

        async def fault_commit(self, umem, rng, token, pages):
            await super().fault_commit(umem, rng, token, pages)


    class MustRetryNone(KvmSeq):
        name: ClassVar[str] = "u-must-retry-none"
        summary: ClassVar[str] = "must_retry returns None"

        def must_retry(self, umem, rng, token):
            self.in_progress > 0 or self.seq != token


    class HoldsBackInt(KvmSeq):
        name: ClassVar[str] = "u-holds-back-int"
        summary: ClassVar[str] = "holds_back returns an int"

        def holds_back(self, umem, rng):
            return self.in_progress
"""

#: trial18b's partial.toml, cut down: madvise of [0x2000, 0x6000) while B faults its
#: last page, then a DMA there.
PARTIAL = """
    [scenario]
    name = "partial-overlap"
    summary = "madvise of [0x2000,0x6000) while B faults 0x5000"
    protocols = ["kvm-seq"]

    [setup]
    ops = [
        { op = "mmap", start = 0x0, pages = 8 },
        { op = "populate", start = 0x0, pages = 8 },
        { op = "register", mr = "B", start = 0x0, pages = 8 },
    ]

    [[actor]]
    name = "fault"
    ops = [{ op = "fault", mr = "B", address = 0x5000, write = true }]

    [[actor]]
    name = "madvise"
    ops = [{ op = "madvise", start = 0x2000, pages = 4 }]

    [[actor]]
    name = "dma"
    after = ["fault"]
    ops = [{ op = "dma", mr = "B", address = 0x5000 }]
"""

CHOOSERS = ("random", "pct", "dfs", "dpor")
#: A spinner the chooser favours spins to the step bound, then the fair continuation
#: runs as many steps again: a small bound keeps those schedules cheap.
MAX_STEPS = 1500


@pytest.fixture
def spin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    name = write_user_module(tmp_path, SPIN, "spinproto", monkeypatch)
    (tmp_path / "partial.toml").write_text(textwrap.dedent(PARTIAL))
    yield name, tmp_path
    forget(name)


@pytest.mark.parametrize("chooser", CHOOSERS)
@pytest.mark.parametrize("scenario", ["partial", "registration-race"])
def test_a_spin_the_chooser_caused_is_not_starvation(spin, scenario: str, chooser: str) -> None:  # type: ignore[no-untyped-def]
    name, where = spin
    target = str(where / "partial.toml") if scenario == "partial" else scenario
    result = explore(
        target,
        f"{name}:SpinKvm",
        chooser=chooser,
        schedules=60,
        seed=0,
        max_steps=MAX_STEPS,
        shrink=False,
    )
    assert result.failure is None, result.failure.describe()
    assert result.schedules > 0


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_a_protocol_that_refuses_for_no_reason_is_never_clean(spin, chooser: str) -> None:  # type: ignore[no-untyped-def]
    """No invalidation runs at all, yet every commit is refused: the spin counts nothing
    (no invalidation let the fault go, and the spinner keeps the world busy), so the
    step bound decides: its fair continuation does not finish either, and the search is
    inconclusive (exit 5), never a pass."""
    name, where = spin
    result = explore(
        str(where / "partial.toml"),
        f"{name}:SpinForever",
        chooser=chooser,
        schedules=5,
        seed=0,
        max_steps=MAX_STEPS,
        shrink=False,
    )
    if result.failure is not None:
        assert result.failure.violation.kind == "starvation"
    else:
        assert result.inconclusive
        assert result.unfinished > 0


@pytest.mark.parametrize(
    ("cls", "hook", "value"),
    [
        ("ReturnsNone", "fault_commit", "None"),
        ("MustRetryNone", "must_retry", "None"),
        ("HoldsBackInt", "holds_back", "1"),
    ],
)
def test_a_hook_returning_the_wrong_type_is_a_usage_error(  # type: ignore[no-untyped-def]
    spin, cls: str, hook: str, value: str
) -> None:
    name, _ = spin
    scenario = "storm-preregistered" if hook == "holds_back" else "registration-race"
    with pytest.raises(ScenarioUsageError) as caught:
        explore(scenario, f"{name}:{cls}", chooser="random", schedules=20, seed=0, shrink=False)
    text = str(caught.value)
    assert f"{hook}() returned {value} " in text
    assert f"({name}:{cls})" in text


def test_the_cli_says_which_hook_returned_what(spin) -> None:  # type: ignore[no-untyped-def]
    """In a fresh process, from a module outside the package: one line on stderr, exit 2,
    under explore (the default portfolio) and under run (live)."""
    name, where = spin
    for argv in (
        ["explore", "registration-race", "-p", f"{name}:ReturnsNone", "--schedules", "20"],
        ["run", "registration-race", "-p", f"{name}:ReturnsNone"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "odp_async.cli", *argv],
            env=pythonpath_env(where),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        errors = [x for x in done.stderr.splitlines() if x.startswith("odp-async: error:")]
        assert len(errors) == 1, done.stderr
        assert errors[0].startswith("odp-async: error: protocol 'u-returns-none'")
        assert "fault_commit() returned None" in errors[0]
        assert "starvation" not in done.stdout


def test_the_hook_raises_protocol_usage_error_in_the_run(spin) -> None:  # type: ignore[no-untyped-def]
    """Inside a run (a world of your own), the fault raises `ProtocolUsageError`, an
    `InvalidArgument`: never a ``starvation`` nor a retry."""
    import importlib

    from odp_async.addr import PAGE_SIZE
    from odp_async.world import World, run_world

    name, _ = spin
    cls = importlib.import_module(name).ReturnsNone

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * PAGE_SIZE)
        a = await w.ctx.register_mr(0, 8 * PAGE_SIZE, name="A")
        with pytest.raises(ProtocolUsageError, match=r"fault_commit\(\) returned None"):
            await w.ctx.fault(a, 0, write=True)

    run = run_world(body, protocol=cls)
    run.sim.unwrap()
    assert run.violations == ()


def _spin_world(new_each_time: bool) -> tuple[list[object], list[str]]:
    """A spinning kvm-seq fault refused 6 times while invalidations run: by a new one
    each time (the previous one ended, another started: `new_each_time`), or by the same
    one, still running, that ends after the 6th refusal."""
    from odp_async import checkpoint
    from odp_async.addr import PAGE_SIZE, AddrRange
    from odp_async.mm import InvalidateEvent, Invalidation
    from odp_async.odp.protocols import KvmSeq
    from odp_async.world import World, run_world

    out: list[object] = []
    inv = [Invalidation(100, AddrRange(0, PAGE_SIZE), InvalidateEvent.UNMAP)]

    class Spin(KvmSeq):
        name = "t-spin"
        summary = "kvm-seq, retry by spinning"

        async def fault_wait(self, umem, rng, token):  # type: ignore[no-untyped-def]
            await checkpoint("cond_resched")
            waits = len(out)
            out.append("refused")
            if new_each_time or waits == 5:
                await self.ctx.subscription.invalidate_range_end(inv[-1])
            if new_each_time and waits < 5:
                inv.append(Invalidation(101 + waits, inv[0].range, InvalidateEvent.UNMAP))
                await self.ctx.subscription.invalidate_range_start(inv[-1])

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * PAGE_SIZE)
        a = await w.ctx.register_mr(0, 8 * PAGE_SIZE, name="A")
        await w.ctx.subscription.invalidate_range_start(inv[0])
        out.append(await w.ctx.fault(a, 0, write=True))

    run = run_world(body, protocol=Spin, max_fault_retries=4)
    run.sim.unwrap()
    return out, [v.detail for v in run.violations]


def test_refusals_by_new_invalidations_count() -> None:
    """Each refusal after an invalidation ended (the protocol let the fault go) and a new
    one started counts: the 4th is starvation."""
    from odp_async.device import FaultOutcome

    out, violations = _spin_world(new_each_time=True)
    assert out == ["refused"] * 3 + [FaultOutcome.STARVED]
    assert violations == ["a fault on A [0x0, 0x1000) retried 4 times"]


def test_refusals_by_the_same_running_invalidation_count_once() -> None:
    """Six refusals by one invalidation that is still running count as one: when it ends,
    the fault resolves."""
    from odp_async.device import FaultOutcome

    out, violations = _spin_world(new_each_time=False)
    assert out == ["refused"] * 6 + [FaultOutcome.RESOLVED]
    assert violations == []
