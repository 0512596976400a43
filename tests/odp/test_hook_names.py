"""A protocol class whose public name is a typo of a hook it leaves alone is refused when
the class is created (`_check_hook_names` in `odp/protocols/base.py`): the core would never
call the misspelt method, and a run would check the inherited hook and report its verdict
as the user's protocol's.  Each protocol is a user's module outside the package."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest

from odp_async.errors import ProtocolUsageError
from odp_async.odp.protocols.base import _typo_of

UserModule = Callable[..., types.ModuleType]

HEADER = """
from odp_async.odp import TreeProtocol


class Mine(TreeProtocol):
    name = "mine"
    summary = "a user's protocol"
"""


@pytest.mark.parametrize(
    ("body", "name", "hook"),
    [
        # a swapped pair of letters in a sync hook
        (
            "    def must_retyr(self, umem, rng, token):\n        return True\n",
            "must_retyr",
            "TreeProtocol.must_retry",
        ),
        # a dropped letter in an async hook of OdpProtocol
        (
            "    async def invalidate_rang_start(self, inv):\n        pass\n",
            "invalidate_rang_start",
            "TreeProtocol.invalidate_range_start",
        ),
        # a dropped underscore
        (
            "    def holdsback(self, umem, rng):\n        return False\n",
            "holdsback",
            "TreeProtocol.holds_back",
        ),
        # case only
        (
            "    async def Fault_Begin(self, umem, rng):\n        return 0\n",
            "Fault_Begin",
            "TreeProtocol.fault_begin",
        ),
        # a class setting, not a method
        (
            '    LAST_MR_UNREGISTR = "unlocked"\n',
            "LAST_MR_UNREGISTR",
            "TreeProtocol.LAST_MR_UNREGISTER",
        ),
        # two edits in a long hook name
        (
            "    async def invalidate_rnge_strat(self, inv):\n        pass\n",
            "invalidate_rnge_strat",
            "TreeProtocol.invalidate_range_start",
        ),
    ],
)
def test_a_misspelt_hook_is_refused_when_the_class_is_created(
    user_module: UserModule, body: str, name: str, hook: str
) -> None:
    with pytest.raises(ProtocolUsageError) as caught:
        user_module(HEADER + body, "typo")
    text = str(caught.value)
    assert text.startswith("protocol class typo"), text
    assert text.endswith(
        f":Mine: {name!r} is spelt almost like {hook}, which the class does not override; "
        f"the core never reads {name!r}: name it {hook.rpartition('.')[2]!r}, or start a "
        "helper's name with '_'"
    ), text


SUBCLASS_OF_A_USER_BASE = """
from odp_async.odp import TreeProtocol


class Base(TreeProtocol):
    name = "base"
    summary = "a user's base overriding must_retry"

    def must_retry(self, umem, rng, token):
        return umem.seq != token


class Child(Base):
    name = "child"
    summary = "means to override its base's must_retry"

    def must_rerty(self, umem, rng, token):
        return True
"""


def test_a_typo_in_a_subclass_of_a_users_base_is_refused(user_module: UserModule) -> None:
    """The hook is the package's even where a user's base overrides it: the subclass's
    misspelt method would leave the base's in force."""
    with pytest.raises(ProtocolUsageError, match=r":Child: 'must_rerty' is spelt almost like"):
        user_module(SUBCLASS_OF_A_USER_BASE, "childtypo")


LEFT_ALONE = """
from odp_async.odp import TreeProtocol


class Fine(TreeProtocol):
    name = "fine"
    summary = "names near hooks that are meant"

    def must_retry(self, umem, rng, token):
        return umem.seq != token

    def must_retyr(self, umem, rng, token):  # the hook is overridden: a name of its own
        return False

    async def _fault_begin(self, umem, rng):  # private: never looked at
        return 0

    async def invalidate_range_start_locked(self, inv):  # a hook with a suffix
        pass

    def released(self):
        return False

    def must_retry2(self):
        return 2

    def names(self):
        return [self.name]

    def helper(self):
        return 1
"""


def test_names_that_are_meant_are_left_alone(user_module: UserModule) -> None:
    mod = user_module(LEFT_ALONE, "fine")
    assert mod.Fine.helper(None) == 1


@pytest.mark.parametrize(
    ("name", "hook", "typo"),
    [
        ("must_retry", "must_retry", True),
        ("MUST_RETRY", "must_retry", True),
        ("must_retyr", "must_retry", True),  # adjacent swap: one edit
        ("must_rety", "must_retry", True),  # a letter dropped
        ("must_rettry", "must_retry", True),  # a letter added
        ("must_retri", "must_retry", True),  # a letter changed
        ("must_rtyr", "must_retry", False),  # two edits in a hook under 12 letters
        ("on_first_m", "on_first_mr", True),
        ("fault_bgein", "fault_begin", True),
        ("fault_bgn", "fault_begin", False),
        ("invalidate_rnge_strat", "invalidate_range_start", True),  # two edits, long hook
        ("invalidate_rng_strat", "invalidate_range_start", False),  # three
        ("released", "release", False),  # the hook with a suffix
        ("insert", "remove", False),
        ("start_account", "end_account", False),
        ("invalidate_range_end", "invalidate_range_start", False),
    ],
)
def test_what_counts_as_a_typo(name: str, hook: str, typo: bool) -> None:
    assert _typo_of(name, hook) is typo
