"""`ProtocolOptions.of`: a protocol's declared ``OPTIONS`` frozen, and what it refuses, word
for word.  The metaclass calls it when a protocol class is made (mostly at import), so
these call it in the test itself (tools/mutation.sh runs a mutant in the test's process;
tests/test_user_protocol_options_and_names.py covers the metaclass from a user module)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from odp_async.errors import InvalidArgument
from odp_async.odp.protocols.base import ProtocolOptions, _immutable


def test_declared_options_are_frozen_in_order_and_compare_as_a_dict() -> None:
    declared: dict[str, Any] = {
        "literal_release": False,
        "label": "x",
        "retries": 3,
        "scale": 1.5,
        "tag": b"t",
        "none": None,
        "pair": (1, ("a", frozenset({2}))),
    }
    frozen = ProtocolOptions.of("P", declared)
    assert isinstance(frozen, ProtocolOptions)
    assert frozen == declared
    assert list(frozen) == list(declared)
    assert len(frozen) == 7
    assert frozen["pair"] == (1, ("a", frozenset({2})))
    with pytest.raises(KeyError) as missing:
        frozen["nope"]
    assert missing.value.args == ("nope",)  # a Mapping's KeyError names the key
    assert repr(frozen) == repr(declared)
    assert ProtocolOptions.of("P", frozen) is frozen
    assert ProtocolOptions.of("P", {}) == {}


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (["a"], "P.OPTIONS must be a dict of option name -> default, got list"),
        ({1: 0}, "P.OPTIONS: option name 1 is not an identifier"),
        ({"a b": 0}, "P.OPTIONS: option name 'a b' is not an identifier"),
        (
            {"ok": 1, "bad": []},
            "P.OPTIONS['bad'] must be an immutable value (None, a bool, number, str, bytes, "
            "or a tuple of those), got []",
        ),
        (
            {"bad": (1, [2])},
            "P.OPTIONS['bad'] must be an immutable value (None, a bool, number, str, bytes, "
            "or a tuple of those), got (1, [2])",
        ),
    ],
)
def test_what_of_refuses_is_named(declared: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        ProtocolOptions.of("P", declared)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("value", "immutable"),
    [
        (None, True),
        (True, True),
        (0, True),
        ("s", True),
        ((), True),
        ((1, ("x", None)), True),
        (frozenset({1, "a"}), True),
        ([], False),
        ((1, {}), False),
        (frozenset({(1, ())}), True),
        ({"a": 1}, False),
        (object(), False),
    ],
)
def test_an_option_default_is_immutable_only_all_the_way_down(value: Any, immutable: bool) -> None:
    assert _immutable(value) is immutable


def test_a_mapping_of_another_kind_is_frozen_too() -> None:
    class Declared(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            return {"a": 1}[key]

        def __iter__(self) -> Any:
            return iter(["a"])

        def __len__(self) -> int:
            return 1

    assert ProtocolOptions.of("P", Declared()) == {"a": 1}
