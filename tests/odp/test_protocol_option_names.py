"""A protocol's option becomes an attribute of each instance: an option named like the
constructor's parameter or an attribute of the class is refused when the class is made,
and one the constructor sets again when an instance is built; a hook written as an async
generator is named as one.  (Exact messages: the mutation tool's selection runs these.)"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pytest

from odp_async.errors import InvalidArgument, ProtocolUsageError
from odp_async.odp.protocols.hmm_pool import HmmPool
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.world import World

HERE = __name__


def _made(option: str) -> None:
    class Clashes(KvmSeq):
        name: ClassVar[str] = "u-clashes"
        summary: ClassVar[str] = "an option named like something else"
        OPTIONS: ClassVar[dict[str, Any]] = {option: "x"}


@pytest.mark.parametrize(
    ("option", "what"),
    [
        ("ctx", "the constructor's parameter"),
        ("name", "an attribute of the class (str)"),
        ("fault_commit", "an attribute of the class (function)"),
        ("LAST_MR_UNREGISTER", "an attribute of the class (str)"),
    ],
)
def test_an_option_named_like_the_parameter_or_an_attribute(option: str, what: str) -> None:
    with pytest.raises(ProtocolUsageError) as raised:
        _made(option)
    assert str(raised.value) == (
        f"protocol class {HERE}:_made.<locals>.Clashes: option {option!r} is named like "
        f"{what}; give the option another name"
    )


def test_an_option_of_its_own_name_is_made() -> None:
    _made("label")


class SetsTheLock(KvmSeq):
    name: ClassVar[str] = "u-sets-the-lock"
    summary: ClassVar[str] = "an option the constructor overwrites (KvmSeq sets mmu_lock)"
    OPTIONS: ClassVar[dict[str, Any]] = {"literal_release": False, "mmu_lock": "x"}


class SetsAnEqualValue(KvmSeq):
    name: ClassVar[str] = "u-sets-an-equal-value"
    summary: ClassVar[str] = "a constructor that stores an equal option value again"
    OPTIONS: ClassVar[dict[str, Any]] = {"literal_release": False, "label": "ab"}

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.label = "".join(["a", "b"]) if self.label == "ab" else self.label


class SetsAnotherType(KvmSeq):
    name: ClassVar[str] = "u-sets-another-type"
    summary: ClassVar[str] = "a constructor that stores 1 for the option True"
    OPTIONS: ClassVar[dict[str, Any]] = {"literal_release": False, "on": True}

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.on = 1


class DeletesIt(KvmSeq):
    name: ClassVar[str] = "u-deletes-it"
    summary: ClassVar[str] = "a constructor that deletes an option's attribute"
    OPTIONS: ClassVar[dict[str, Any]] = {"literal_release": False, "gone": 0}

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        del self.gone


def test_an_option_the_constructor_sets_again_is_refused() -> None:
    with pytest.raises(ProtocolUsageError) as raised:
        World.build(SetsTheLock)
    assert re.fullmatch(
        rf"protocol class {HERE}:SetsTheLock: option 'mmu_lock' was 'x', but the "
        r"constructor set the attribute 'mmu_lock' to <Mutex 'mmu_lock' unlocked waiting=0> "
        r"after it: the option would do nothing; give the option another name",
        str(raised.value),
    ), str(raised.value)
    with pytest.raises(ProtocolUsageError, match="option 'mmu_lock' was 'y', but"):
        World.build(SetsTheLock, options={"mmu_lock": "y"})


def test_an_equal_value_stored_again_is_the_option() -> None:
    world = World.build(SetsAnEqualValue)
    assert world.ctx.protocol.label == "ab"
    tuned = World.build(SetsAnEqualValue, options={"label": "cd"})
    assert tuned.ctx.protocol.label == "cd"


def test_an_equal_value_of_another_type_or_none_at_all_is_refused() -> None:
    with pytest.raises(ProtocolUsageError, match="option 'on' was True, but the constructor"):
        World.build(SetsAnotherType)
    with pytest.raises(ProtocolUsageError) as raised:
        World.build(DeletesIt)
    assert "option 'gone' was 0, but the constructor set the attribute 'gone' to no value " in (
        str(raised.value)
    )


def test_a_long_value_is_cut_in_the_message() -> None:
    class SetsALongValue(KvmSeq):
        name: ClassVar[str] = "u-sets-a-long-value"
        summary: ClassVar[str] = "x"
        OPTIONS: ClassVar[dict[str, Any]] = {"literal_release": False, "text": ""}

        def __init__(self, ctx: Any, **options: Any) -> None:
            super().__init__(ctx, **options)
            self.text = "y" * 100

    with pytest.raises(ProtocolUsageError) as raised:
        World.build(SetsALongValue)
    assert f"to '{'y' * 56}... after it" in str(raised.value)


def test_a_hook_written_as_an_async_generator_is_named_as_one() -> None:
    with pytest.raises(ProtocolUsageError) as raised:

        class Yields(KvmSeq):
            name: ClassVar[str] = "u-yields"
            summary: ClassVar[str] = "x"

            async def after_end(self, inv: Any) -> Any:  # type: ignore[override]
                yield 1

    assert str(raised.value).endswith(
        "got an async generator (an async def with yield, which cannot be awaited)"
    )


def test_hmm_pool_size_bounds() -> None:
    HmmPool.check_options({})
    HmmPool.check_options({"pool_size": 1})
    for bad in (0, 1_048_577):
        with pytest.raises(InvalidArgument, match="must be from 1 to 1048576"):
            HmmPool.check_options({"pool_size": bad})
