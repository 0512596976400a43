"""A shrunk failure is the failure that was found, never another bug of the program.

The shrinker used to keep any candidate of the same violation *kind*, and every exception
of user code is kind ``error``: a program with two bugs (a lost update asserted on one
line, a ``KeyError`` raised on another when the tasks start the other way round) had its
lost update, found by random at seed 3, shown shrunk as the ``KeyError`` (trial 16).  Now
a candidate must have the found run's failure signature
(`odp_async.explore.signature`): for an error, the exception's type and raise site; for
a deadlock, the blocked tasks and what they wait on.  Tried on a user's own module
(tmp_path, imported by name) and the CLI in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.explore import check, shrink
from odp_async.explore.signature import FailureSignature, failure_signature
from odp_async.explore.target import Execution, Target
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

USER = """
import odp_async as oa


async def two_bugs() -> None:
    box = {"n": 0, "order": []}

    async def bump(who: str) -> None:
        box["order"].append(who)
        seen = box["n"]
        await oa.checkpoint("between")
        box["n"] = seen + 1

    async with oa.task_group() as tg:
        tg.start_soon(bump, "a", name="a")
        tg.start_soon(bump, "b", name="b")
    if box["order"] == ["b", "a"]:
        raise KeyError("b started first (a different bug)")
    assert box["n"] == 2, f"lost update: {box['n']}"


def fail(why: str) -> None:
    raise AssertionError(why)


async def one_helper_two_callers() -> None:
    box = {"n": 0, "order": []}

    async def bump(who: str) -> None:
        box["order"].append(who)
        seen = box["n"]
        await oa.checkpoint("between")
        box["n"] = seen + 1

    async with oa.task_group() as tg:
        tg.start_soon(bump, "a", name="a")
        tg.start_soon(bump, "b", name="b")
    if box["order"] == ["b", "a"]:
        fail("b started first")
    if box["n"] != 2:
        fail(f"lost update: {box['n']}")


async def _lock_order(first: oa.Mutex, second: oa.Mutex, mine: oa.Completion,
                      theirs: oa.Completion) -> None:
    async with first:
        mine.complete()
        await theirs.wait()
        async with second:
            pass


async def _deadlock(prefix: str) -> None:
    m1, m2 = oa.Mutex(prefix + "-lock-1"), oa.Mutex(prefix + "-lock-2")
    c1, c2 = oa.Completion(prefix + "-held-1"), oa.Completion(prefix + "-held-2")
    async with oa.task_group() as tg:
        tg.start_soon(_lock_order, m1, m2, c1, c2, name=prefix + "-x")
        tg.start_soon(_lock_order, m2, m1, c2, c1, name=prefix + "-y")


async def two_deadlocks() -> None:
    box = {"n": 0, "order": []}

    async def bump(who: str) -> None:
        box["order"].append(who)
        seen = box["n"]
        await oa.checkpoint("between")
        box["n"] = seen + 1

    async with oa.task_group() as tg:
        tg.start_soon(bump, "a", name="a")
        tg.start_soon(bump, "b", name="b")
    if box["order"] == ["b", "a"]:
        await _deadlock("order")
    elif box["n"] != 2:
        await _deadlock("update")
"""

SEEDS = range(12)


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "shrink_same_failure_user")


def _error_line(execution: Execution) -> tuple[str, int]:
    """(exception type, line of the raising frame in the user's module)."""
    sig = failure_signature(execution)
    assert sig is not None
    assert sig.kind == "error"
    assert sig.where
    return sig.what, int(sig.where[-1][1])


@pytest.mark.parametrize("chooser", ["random", "pct"])
def test_the_shrunk_error_is_the_error_found(user: ModuleType, chooser: str) -> None:
    found_assertion = 0
    for seed in SEEDS:
        result = check(user.two_bugs, chooser=chooser, seed=seed, schedules=50)
        failure = result.failure
        assert failure is not None
        assert failure.shrunk is not None
        assert _error_line(failure.shown) == _error_line(failure.execution), seed
        assert (
            failure.violation.detail.split(":")[0]
            == (failure.found_violation.detail.split(":")[0])
        )
        found_assertion += "lost update" in failure.found_violation.detail
    # not vacuous: some seeds find the lost update (which shrank to the KeyError before)
    assert found_assertion > 0


def test_random_seed_3_keeps_the_lost_update(user: ModuleType) -> None:
    """The trial's case: random at seed 3 finds the lost update; shrunk, it stays one."""
    result = check(user.two_bugs, chooser="random", seed=3)
    assert result.failure is not None
    assert "AssertionError: lost update" in result.failure.found_violation.detail
    assert "AssertionError: lost update" in result.failure.violation.detail
    assert "KeyError" not in result.failure.violation.detail


def test_shrink_keeps_the_signature_of_the_given_run(user: ModuleType) -> None:
    """Called directly on every failing schedule random finds: the result's signature is
    the given run's, and its run has it."""
    target = Target.resolve(user.two_bugs)
    seen: set[FailureSignature] = set()
    for seed in SEEDS:
        one = check(user.two_bugs, chooser="random", seed=seed, shrink=False, schedules=50)
        assert one.failure is not None
        given = failure_signature(one.failure.execution)
        result = shrink(target, one.failure.schedule, "error", max_steps=1000)
        assert result.signature == given
        assert failure_signature(result.execution) == given
        assert given is not None
        seen.add(given)
    assert len(seen) == 2  # both bugs among the finds: each kept its own


def test_one_helper_raising_for_two_callers_is_two_failures(user: ModuleType) -> None:
    """The raise site is the chain of the program's frames: `fail()` raising for the
    lost update is not `fail()` raising for the start order."""
    signatures = set()
    lines = set()
    for seed in SEEDS:
        result = check(user.one_helper_two_callers, chooser="random", seed=seed, schedules=50)
        failure = result.failure
        assert failure is not None
        found = failure_signature(failure.execution)
        assert failure_signature(failure.shown) == found, seed
        assert found is not None
        signatures.add(found)
        lines.add(found.where[-1])  # the helper's raise: the same innermost frame
    assert len(lines) == 1
    assert len(signatures) == 2


def test_the_shrunk_deadlock_is_the_deadlock_found(user: ModuleType) -> None:
    kinds = set()
    for seed in SEEDS:
        result = check(user.two_deadlocks, chooser="random", seed=seed, schedules=50)
        failure = result.failure
        assert failure is not None
        assert failure.found_violation.kind == "deadlock"
        found = failure.found_violation.detail.split("-")[0]
        assert failure.violation.detail.split("-")[0] == found, seed
        assert failure_signature(failure.shown) == failure_signature(failure.execution)
        kinds.add(found)
    assert kinds == {"order", "update"}  # both deadlocks among the finds


def test_the_cli_shows_the_lost_update_shrunk(user: ModuleType, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "odp_async.cli",
            "explore",
            f"{user.__name__}:two_bugs",
            "--chooser",
            "random",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(tmp_path),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "shrunk to" in proc.stdout
    assert "lost update" in proc.stdout
    assert "KeyError" not in proc.stdout


def _model_run(kind: str, detail: str, address: int = 0x4000) -> Execution:
    from odp_async._runtime.sim import SimResult
    from odp_async.check import Violation

    sim = SimResult("ok", None, None, None, 10, (), 0.0)
    violation = Violation(kind, 7, ("fault",), (address,), detail)  # type: ignore[arg-type]
    return Execution((violation,), sim)


def test_a_model_violation_is_its_kind_and_its_pages() -> None:
    """The same page's stale translation, caught at the install or at the unmap (the
    order a shrink changes), is one failure; another page's, or a stale DMA, is not."""
    installed = _model_run(
        "stale-translation", "B installed 0x4000 -> frame 4.1, but the page table maps nothing"
    )
    unmapped = _model_run(
        "stale-translation", "frame 4.1 was unmapped while B still translates 0x4000 to it"
    )
    other_page = _model_run(
        "stale-translation", "frame 7.1 was unmapped while B still translates 0x9000 to it", 0x9000
    )
    dma = _model_run("stale-dma", "DMA read of B[0x4000] -> frame 4.1, which has been freed")
    assert failure_signature(installed) == failure_signature(unmapped)
    assert failure_signature(installed) != failure_signature(other_page)
    assert failure_signature(installed) != failure_signature(dma)
