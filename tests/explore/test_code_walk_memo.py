"""The walk of a noted-only run's main function reads each function's code once.

A run under the noted-only promise starts by walking the main function's code for state
no note sees (`odp_async._tracked_code`): locals shared with nested functions, fresh
state handed on, functions made at run time.  A program driving `sim.run`
with a chooser (as these tests do; a search by `explore` keeps one walk for its session)
runs the same main function thousands of times, and reading its bytecode at every run
was most of a run's time (test_dpor_primitive_footprints[p3]: 87 s of DPOR over 5,105
traces; 16 s read once).  Each reading is kept per code object while the globals its
code names are the same objects (a rebound one reads the code again: pinned in
test_dpor_escaping_locals.py::test_a_global_rebound_between_walks_is_read_again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from odp_async import _tracked_code
from odp_async._runtime import sim
from odp_async.explore.dfs import PrunedExecution
from odp_async.explore.dpor import DporChooser
from tests.conftest import UserModule

PROGRAM = """
from odp_async import checkpoint, task_group
from odp_async.explore.shared import SharedCell
from odp_async.tracked import tracked


@tracked
class Noted:
    def __init__(self):
        self.n = 0


Maker = Noted


async def body():
    box = Maker()
    last = SharedCell(0, "last")

    async def put(k):
        for _ in range(2):
            await checkpoint("before")
            await last.store(k)
        box.n = k

    async with task_group() as tg:
        for k in range(3):
            tg.start_soon(put, k)

"""

READINGS = ("_shared_locals_read", "_escaping_state_read", "_made_at_run_time_read")


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    calls: Counter[tuple[str, str]] = Counter()
    for name in READINGS:
        read: Callable[[Any], Any] = getattr(_tracked_code, name)

        def counted(fn: Any, read: Callable[[Any], Any] = read, name: str = name) -> Any:
            calls[(name, fn.__qualname__)] += 1
            return read(fn)

        monkeypatch.setattr(_tracked_code, name, counted)
    return calls


def test_a_search_reads_the_main_function_once(
    user_module: UserModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = user_module(PROGRAM, "code_walk_memo")
    calls = _counting(monkeypatch)
    chooser, runs = DporChooser(noted_only=True), 0
    while chooser.has_more:  # runs of their own: no search session keeps the walk
        try:
            sim.run(mod.body, chooser=chooser)
        except PrunedExecution:
            continue
        runs += 1
    assert runs > 20
    assert {key[0] for key in calls} == set(READINGS)
    assert set(calls.values()) == {1}, calls
