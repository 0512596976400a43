"""The hook-kind check a protocol class gets when it is created (`_check_hook_kinds` in
`odp/protocols/base.py`), in process, where mutmut's selection runs it: its CLI tests
(tests/test_cli_user_lastdereg_hooks.py) run it in a subprocess, which mutmut neither
selects nor maps to the function.  Each protocol is a user's module outside the package."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest

from odp_async.errors import ProtocolUsageError

UserModule = Callable[..., types.ModuleType]

SYNC_OVER_ASYNC = """
from odp_async.odp import TreeProtocol


class SyncFirst(TreeProtocol):
    name = "sync-first"
    summary = "a plain def over the async on_first_mr, after a helper of its own"

    def helper(self):
        return 1

    def on_first_mr(self):
        pass
"""

ASYNC_OVER_SYNC = """
from odp_async.odp import TreeProtocol


class AsyncInsert(TreeProtocol):
    name = "async-insert"
    summary = "an async def over the sync on_insert"

    async def on_insert(self, umem, first):
        pass
"""

STATIC_ASYNC_OVER_SYNC = """
from odp_async.odp import TreeProtocol


class StaticRemove(TreeProtocol):
    name = "static-remove"
    summary = "an async staticmethod over the sync on_remove"

    @staticmethod
    async def on_remove(umem):
        pass
"""

LEFT_ALONE = """
import functools

from odp_async.odp import TreeProtocol


async def _first(self, how):
    pass


class Base(TreeProtocol):
    name = "base"
    summary = "a user's base: no authority over its subclasses' kinds"

    def helper(self):
        return 1


class Fine(Base):
    name = "fine"
    summary = "every override of the right kind, and what the check leaves alone"

    async def __init__(self, ctx, **options):
        pass

    async def helper(self):
        return 2

    def extra(self):
        return 3

    on_first_mr = functools.partialmethod(_first, "partial")

    async def invalidate_range_start(self, inv):
        pass

    def on_insert(self, umem, first):
        pass
"""


@pytest.mark.parametrize(
    ("source", "prefix", "message"),
    [
        (
            SYNC_OVER_ASYNC,
            "syncfirst",
            ":SyncFirst: on_first_mr must be an async def, as the hook it overrides "
            "(TreeProtocol.on_first_mr) is; got a plain def",
        ),
        (
            ASYNC_OVER_SYNC,
            "asyncinsert",
            ":AsyncInsert: on_insert must be a plain def (it is sync), as the hook it "
            "overrides (TreeProtocol.on_insert) is; got an async def",
        ),
        (
            STATIC_ASYNC_OVER_SYNC,
            "staticremove",
            ":StaticRemove: on_remove must be a plain def (it is sync), as the hook it "
            "overrides (TreeProtocol.on_remove) is; got an async def",
        ),
    ],
)
def test_a_hook_of_the_other_kind_is_refused_when_the_class_is_created(
    user_module: UserModule, source: str, prefix: str, message: str
) -> None:
    with pytest.raises(ProtocolUsageError) as caught:
        user_module(source, prefix)
    text = str(caught.value)
    module, _, rest = text.removeprefix("protocol class ").partition(":")
    assert module.startswith(prefix)
    assert ":" + rest == message


def test_dunders_user_bases_new_methods_and_non_functions_are_left_alone(
    user_module: UserModule,
) -> None:
    mod = user_module(LEFT_ALONE, "leftalone")
    assert mod.Fine.name == "fine"
    assert mod.Fine.extra(None) == 3
