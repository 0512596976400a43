"""Issue 10, item 9: the unlocked window, drawn with `racy_read`.

``if (list_empty(&entry)) list_add(&entry, &queue)`` without the queue's lock: two tasks
both see the entry off the queue and both add it -- the kernel's list corruption, a
``double-queue``.  Drawn with `racy_read`, the explorer finds it; read plainly, the model
runs the read and the add atomically and shows nothing (the reason to draw it); under the
lock (the fix) it is clean.
"""

from __future__ import annotations

import pytest

from odp_async import _runtime as rt
from odp_async.racy import racy_read
from odp_async.scenarios import Scenario
from odp_async.sync import Mutex
from odp_async.world import World

from ._explore import CHOOSERS, CLEAN_BUDGET, assert_clean, assert_found, find


class Entry:
    def __init__(self) -> None:
        self.queued = False


def _add_if_absent(mode: str) -> Scenario:
    async def body(w: World) -> None:
        entry, queue, lock = Entry(), [], Mutex("queue_lock")

        def add() -> None:
            if entry.queued:
                w.checker.double_queue("entry", "added to the queue while already on it")
            queue.append(entry)
            entry.queued = True

        async def adder() -> None:
            if mode == "window":
                if not await racy_read(lambda: entry.queued, "list_empty(&entry)"):
                    add()
            elif mode == "plain":
                await rt.checkpoint("before")
                if not entry.queued:
                    add()
            else:
                async with lock:
                    if not entry.queued:
                        add()

        async with rt.task_group() as tg:
            tg.start_soon(adder, name="adder1")
            tg.start_soon(adder, name="adder2")

    return Scenario(f"add-if-absent-{mode}", "", body, ("adder1", "adder2"))


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_the_drawn_window_shows_the_double_add(chooser: str) -> None:
    assert_found(_add_if_absent("window"), chooser, "double-queue")


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_without_the_window_the_model_cannot_see_it(chooser: str) -> None:
    result = find(_add_if_absent("plain"), chooser)
    assert result.failure is None
    assert result.schedules == CLEAN_BUDGET


@pytest.mark.parametrize("chooser", CHOOSERS)
def test_under_the_lock_it_is_clean(chooser: str) -> None:
    assert_clean(_add_if_absent("locked"), chooser)
