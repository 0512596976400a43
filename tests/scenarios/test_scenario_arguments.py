"""A `Scenario` refuses, at construction, what it would otherwise take silently (trial):
its actors given as one str, an empty or non-str name, a script step naming a task that
is none of its actors.  A user's module builds it, as a user's would."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from odp_async.errors import InvalidArgument

_BAD = """\
    from odp_async.scenarios import Scenario


    async def body(world):
        return {{}}


    scenario = Scenario({args})
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            '"s", "", body, "zap"',
            "actors takes the names of the tasks a scenario starts, e.g. ('zap',), got the "
            "str 'zap'",
        ),
        (
            '"s", "", body, ("a", 7)',
            "actors takes the names of the tasks a scenario starts (each a str), got 7",
        ),
        ('"", "", body, ("a",)', "a scenario's name is a non-empty str, got ''"),
        ("None, '', body, ('a',)", "a scenario's name is a non-empty str, got None"),
        (
            '"s", "", body, ("a", "b"), script=(("nobody", None),)',
            "scenario 's': script step 0 names the task 'nobody', which is none of its "
            "actors (a, b)",
        ),
    ],
    ids=["actors-str", "actor-not-str", "name-empty", "name-none", "script-task-unknown"],
)
def test_a_scenario_refuses_bad_arguments_naming_them(
    user_module: Any, args: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        user_module(_BAD.format(args=args), "badscenario")
    assert str(raised.value) == message


def test_a_scenario_without_actors_takes_any_script_task(user_module: Any) -> None:
    mod: ModuleType = user_module(
        _BAD.format(args='"s", "", body, ["a"], script=(("a", None),)'), "okscenario"
    )
    assert mod.scenario.actors == ("a",)  # a list is taken, as a tuple
    user_module(_BAD.format(args='"t", "", body, (), script=(("any", None),)'), "noactors")
