"""A tracked class nobody holds any more is collected, even after tracking runs hooked it.

Every tracking run hooks every live tracked class, so a class kept alive by one of the
tracking machinery's own memos (the hooks' registry, the opaque-type and primitive-state
memos, a tracked class's scan, a function's escaping-state memo) would be hooked at every
later run: in a long process (a test session, a service exploring user modules) each
run's start and end would cost more with every class ever made.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async import tracked as tracked_module
from odp_async._runtime import sim
from odp_async._tracked_code import _held, _same_values
from odp_async.explore import explore
from odp_async.explore.dpor import DporChooser
from odp_async.tracked import tracked
from tests._usermod import forget, import_user_module

USER_MODULE = '''
import attrs

from odp_async import checkpoint, task_group
from odp_async._tracked_code import _held, _same_values
from odp_async.tracked import tracked


class Setting:
    """A plain class of the same module: its methods' globals reach the module."""

    def value(self):
        return 1


@tracked
@attrs.define(eq=False)
class Box:
    value: int = 0
    DEFAULT = Setting()  # a class attribute holding an instance of a same-module class


BOX = Box()


async def one():
    await checkpoint()
    BOX.value += 1


async def main():
    async with task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
'''


def _searched_and_dropped(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, weakref.ref[type]]:
    module = import_user_module(directory, USER_MODULE, "user_collected", monkeypatch)
    chooser = DporChooser(noted_only=True)
    while chooser.has_more:
        sim.run(module.main, chooser=chooser)
    # A session too: it scans the tracked classes' data attributes.
    result = explore(module.main, chooser="dpor", schedules=50)
    assert result.failure is None
    assert module.BOX.value >= 2  # two increments per run
    return module.__name__, weakref.ref(module.Box)


def _hooked(module: str, qualname: str) -> bool:
    # (Other tests in this process may hook classes of the same name: xdist.)
    return any(
        klass.__module__ == module and klass.__qualname__ == qualname
        for klass, _ in tracked_module._hooked_classes()
    )


def test_a_user_module_class_nobody_holds_is_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, gone = _searched_and_dropped(tmp_path, monkeypatch)
    forget(name)
    gc.collect()
    assert gone() is None
    assert not _hooked(name, "Box")


def _made_and_searched() -> weakref.ref[type]:
    @tracked
    @attrs.define(eq=False)
    class Local:
        value: int = 0

    box = Local()

    async def main() -> None:
        async def one() -> None:
            await rt.checkpoint()
            box.value += 1

        async with rt.task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)

    chooser = DporChooser(noted_only=True)
    while chooser.has_more:
        sim.run(main, chooser=chooser)
    assert box.value >= 2
    return weakref.ref(Local)


def test_a_local_class_nobody_holds_is_collected_and_no_longer_hooked() -> None:
    gone = _made_and_searched()
    gc.collect()
    assert gone() is None
    assert not _hooked(__name__, "_made_and_searched.<locals>.Local")


def test_the_escaping_memo_matches_by_identity_and_a_dead_reference_matches_nothing() -> None:
    class Kind:
        pass

    value = Kind()
    held = [_held(value), _held(None), _held(3)]
    assert _same_values(held, [value, None, 3])
    assert not _same_values(held, [Kind(), None, 3])
    del value
    gc.collect()
    # The global was rebound to None after its value died: not the value the memo read.
    assert not _same_values(held, [None, None, 3])
