"""`@tracked` under a class decorator that rebuilds or fills in the class (``@attrs.define``
on top of ``@tracked``) is refused in one line at the first construction, instead of
building objects without their fields."""

from __future__ import annotations

import pytest

from odp_async.errors import InvalidArgument
from tests.conftest import UserModule

WRONG = """
import attrs
from odp_async.tracked import tracked

@attrs.define
@tracked
class Slotted:
    value: int = 0

@attrs.define(slots=False)
@tracked
class InPlace:
    value: int = 0

@attrs.frozen
@tracked
class Frozen:
    value: int = 0

@tracked
@attrs.define
class Right:
    value: int = 0
"""


@pytest.mark.parametrize("name", ["Slotted", "InPlace", "Frozen"])
def test_the_wrong_order_is_one_clear_error(user_module: UserModule, name: str) -> None:
    mod = user_module(WRONG, f"tracked_order_{name.lower()}")
    cls = getattr(mod, name)
    for args in ((), (3,)):
        with pytest.raises(InvalidArgument) as caught:
            cls(*args)
        message = str(caught.value)
        assert "\n" not in message
        assert f"@tracked is below @attrs.define (or another class decorator) on {name}" in message


def test_the_right_order_builds_its_fields(user_module: UserModule) -> None:
    mod = user_module(WRONG, "tracked_order_right")
    assert mod.Right(3).value == 3
    assert mod.Right().value == 0
