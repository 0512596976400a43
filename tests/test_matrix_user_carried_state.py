"""The matrix watches a cell of your own protocol class as `explore` does: state carried
between the cell's runs makes it inconclusive (it was ``clean``: a protocol broken only
while its class state is cold, warmed by the first run, passed every schedule after it),
and a failure of the FIFO run made before the cell's schedules is the cell's when none of
them fails.  The protocols live in a module in ``tmp_path``, imported as a user's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odp_async.explore import replay
from odp_async.explore.matrix import explore_cell
from odp_async.scenarios import Verdict
from tests._usermod import cli_in, forget, import_user_module

USER_MODULE = """
import functools
from typing import Any, ClassVar

from odp_async import checkpoint
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.tracked import tracked


@tracked
class Cached(KvmSeq):
    name: ClassVar[str] = "u-cached"
    summary: ClassVar[str] = "kvm-seq whose retry check is off in the first instance made"
    made: ClassVar[list[int]] = []

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        Cached.made.append(1)

    def must_retry(self, umem: Any, rng: Any, token: object) -> bool:
        if len(Cached.made) <= 1:
            return False  # cold: the stale-translation race is open
        return super().must_retry(umem, rng, token)


@functools.cache
def _faults() -> list[int]:
    return []


@tracked
class Warms(KvmSeq):
    name: ClassVar[str] = "u-warms"
    summary: ClassVar[str] = "kvm-seq whose first fault in a process takes one more step"

    async def fault_begin(self, umem: Any, rng: Any) -> object:
        if not _faults():
            _faults().append(1)
            await checkpoint("cold start")
        return await super().fault_begin(umem, rng)


@tracked
class FifoBug(KvmSeq):
    name: ClassVar[str] = "u-fifo-bug"
    summary: ClassVar[str] = "raises when a fault commits before any invalidation began"

    def must_retry(self, umem: Any, rng: Any, token: object) -> bool:
        if self.seq == 0 and self.in_progress == 0:
            raise RuntimeError("committed before any invalidation")
        return super().must_retry(umem, rng, token)


@tracked
class Plain(KvmSeq):
    name: ClassVar[str] = "u-plain"
    summary: ClassVar[str] = "kvm-seq under another name (no state of its own)"
"""


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = import_user_module(tmp_path, USER_MODULE, "matrixcarried", monkeypatch)
    yield module
    forget(module.__name__)


@pytest.mark.parametrize("chooser", ["portfolio", "random"])
def test_class_state_carried_between_runs_makes_the_cell_inconclusive(
    usermod: Any, chooser: str
) -> None:
    cell = explore_cell("registration-race", usermod.Cached, 40, chooser=chooser)
    assert cell.verdict is Verdict.INCONCLUSIVE
    assert cell.inconclusive
    assert cell.expected is None
    assert cell.carried is not None
    assert "Cached.made" in cell.carried
    assert cell.claim.startswith("inconclusive: the program's runs shared state: protocol class")
    assert "40 schedules ran" in cell.claim


def test_state_the_watch_cannot_name_is_caught_by_the_fifo_rerun(usermod: Any) -> None:
    cell = explore_cell("fault-vs-munmap", usermod.Warms, 30, chooser="random")
    assert cell.verdict is Verdict.INCONCLUSIVE
    assert cell.carried is not None
    assert cell.carried.startswith("the same schedule ran differently before the search"), (
        cell.carried
    )


def test_a_failing_fifo_run_is_the_cell_failure_when_no_schedule_fails(usermod: Any) -> None:
    cell = explore_cell("fault-vs-munmap", usermod.FifoBug, 3, chooser="random")
    assert cell.verdict is Verdict.ERROR
    assert cell.first_hit == 0
    assert cell.found_by == "fifo-probe"
    assert cell.claim == "violation in a probe run before schedule 1: error"
    assert cell.token is not None
    again = replay(cell.token)
    assert again.failure is not None
    assert again.failure.kind == "error"


def test_a_protocol_without_state_gets_the_built_in_cells_claim(usermod: Any) -> None:
    mine = explore_cell("fault-vs-munmap", usermod.Plain, 3000)
    theirs = explore_cell("fault-vs-munmap", "kvm-seq", 3000)
    assert mine.carried is None
    assert mine.claim == theirs.claim
    assert mine.claim.startswith("complete: "), mine.claim
    assert (mine.verdict, mine.schedules) == (theirs.verdict, theirs.schedules)


def test_the_cli_matrix_says_which_cells_are_inconclusive(tmp_path: Path) -> None:
    (tmp_path / "cliprotos.py").write_text(USER_MODULE)
    args = ("matrix", "--scenario", "registration-race", "-p", "cliprotos:Cached")
    shown = cli_in(tmp_path, *args, "-p", "kvm-seq", "--budget", "20")
    assert shown.returncode == 5, shown.stderr
    assert "inconclusive, no verdict: registration-race/cliprotos:Cached" in shown.stderr
    assert "kvm-seq" not in shown.stderr.split("no verdict:")[1]
    as_json = cli_in(tmp_path, *args, "--budget", "20", "--json")
    assert as_json.returncode == 5, as_json.stderr
    (cell,) = json.loads(as_json.stdout)["cells"]
    assert cell["found"] == "inconclusive"
    assert "Cached.made" in cell["carried"]
