"""A dfs or dpor search installs `tracked`'s hooks once for all its runs, not once per run
(a per-run install doubled the CPU time per schedule of a small program), and takes them
off when it ends: the classes are as written after the exploration."""

from __future__ import annotations

from typing import Any

import pytest

import odp_async.tracked as tracked_module
from odp_async.explore.runner import explore
from odp_async.tracked import tracked


@tracked
class _Box:
    def __init__(self) -> None:
        self.n = 0


@pytest.mark.parametrize("chooser", ["dpor", "dfs"])
def test_a_search_installs_the_hooks_once(chooser: str, monkeypatch: Any) -> None:
    installs: list[type] = []
    real = tracked_module._install

    def counting(klass: type, info: Any) -> None:
        installs.append(klass)
        real(klass, info)

    monkeypatch.setattr(tracked_module, "_install", counting)
    result = explore("classic:lost-update", chooser=chooser, schedules=50, shrink=False)
    assert result.schedules > 1
    assert installs.count(_Box) == 1
    assert "__getattribute__" not in _Box.__dict__
