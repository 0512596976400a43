"""`tracked` keeps a decorator that another tool put around a class's ``__init__``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from odp_async.tracked import tracked


def test_a_wrapped_init_keeps_its_wrapper() -> None:
    """A ``functools.wraps`` wrapper (a logging decorator, mutmut's trampoline) sets
    ``__wrapped__`` on ``__init__``; the class's adopting ``__init__`` calls the wrapper,
    not the function inside it, so whatever the wrapper does still happens."""
    calls: list[tuple[Any, ...]] = []

    def logged(init: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(init)
        def wrapper(self: Any, *args: Any) -> None:
            calls.append(args)
            init(self, *args)

        return wrapper

    @tracked
    class Logged:
        __slots__ = ("x",)

        @logged
        def __init__(self, x: int) -> None:
            self.x = x

    class Sub(Logged):
        __slots__ = ()

    assert Logged(1).x == 1
    assert Sub(2).x == 2
    assert calls == [(1,), (2,)]
