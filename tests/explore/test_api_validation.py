"""Every setting of the Python API is checked at its boundary, as the CLI's options are.

The CLI rejected what the Python API took: ``check(..., shrink='no')``,
``stop_on_first=None`` and ``trust_primitives='x'`` were taken for what they are truthy
as; ``progress=5`` gave a raw `TypeError` from inside the run, ``executor='x'`` an
`AttributeError`, ``resume=5`` a `TypeError` (trial 16, f10).  Now each `ExploreConfig`
field and each keyword of `check`, `explore`, `explore_target`, `replay` and `shrink`
is checked by type and range, with an `InvalidArgument` naming the field and the value.

The tests enumerate the fields and the keywords: a field or a keyword added later without
a check fails them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import attrs
import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore import ExploreConfig, Target, check, explore, replay, shrink
from odp_async.explore.runner import explore_target
from tests.conftest import UserModule

USER = """
import odp_async as oa


async def lost_update() -> None:
    box = {"n": 0}

    async def bump() -> None:
        seen = box["n"]
        await oa.checkpoint("between")
        box["n"] = seen + 1

    async with oa.task_group() as tg:
        tg.start_soon(bump, name="a")
        tg.start_soon(bump, name="b")
    assert box["n"] == 2, f"lost update: {box['n']}"
"""


class Odd:
    """A value of a type no setting takes."""

    def __repr__(self) -> str:
        return "<Odd>"


#: Wrong for every field, whatever its type.
WRONG_FOR_ALL: tuple[Any, ...] = (Odd(), "junk", [1], b"1")

FIELDS = [a.name for a in attrs.fields(ExploreConfig)]


def _wrong_values(field: attrs.Attribute[Any]) -> tuple[Any, ...]:
    """Values of a wrong type for `field`, by its annotation."""
    kind = str(field.type)
    extra: tuple[Any, ...] = ()
    if kind == "bool":
        extra = (1, 0, None, "no", "false")
    elif kind == "bool | None":
        extra = (1, "x")
    elif kind == "int":
        extra = (True, 2.0, None, "3")
    elif kind == "int | None":
        extra = (True, 2.0, "3")
    elif kind == "float | None":
        extra = (True, "5")
    elif kind == "str":
        extra = (None, 1)
    return WRONG_FOR_ALL + extra


@pytest.mark.parametrize("name", FIELDS)
def test_every_config_field_refuses_a_wrong_type(name: str) -> None:
    field = attrs.fields_dict(ExploreConfig)[name]
    assert field.validator is not None, f"ExploreConfig.{name} has no validator"
    for bad in _wrong_values(field):
        with pytest.raises(InvalidArgument) as caught:
            ExploreConfig(**{name: bad})
        message = str(caught.value)
        assert name in message, (name, bad, message)
        assert repr(bad) in message, (name, bad, message)
        # evolve too (what check()'s keywords and explore's config_fields go through)
        with pytest.raises(InvalidArgument):
            ExploreConfig().evolve(**{name: bad})


@pytest.mark.parametrize("name", ["shrink", "stop_on_first", "trust_primitives", "reduction"])
def test_the_trials_bool_fields_through_check(user: ModuleType, name: str) -> None:
    for bad in ("no", None, 1):
        with pytest.raises(InvalidArgument, match=name):
            check(user.lost_update, schedules=5, **{name: bad})


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER, "api_validation_user")


def _keywords(fn: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[str]:
    """The named parameters of `fn` (not ``*args`` / ``**fields``), but `skip`."""
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in skip
    ]


def _refused(fn: Callable[..., object], kw: dict[str, Any], name: str) -> None:
    """``fn(**kw)`` raises `InvalidArgument` naming `name` and the `Odd` value."""
    with pytest.raises(InvalidArgument) as caught:
        fn(**kw)
    message = str(caught.value)
    assert "<Odd>" in message, (name, message)
    assert name in message, (name, message)


def test_every_keyword_of_check(user: ModuleType) -> None:
    names = _keywords(check, skip=("fn",))
    assert {"progress", "executor", "resume", "raise_on_failure", "chooser"} <= set(names)
    for name in names:
        kw: dict[str, Any] = {"schedules": 5, name: Odd()}
        _refused(check, {"fn": user.lost_update, **kw}, name)


def test_every_keyword_of_explore(user: ModuleType) -> None:
    names = _keywords(explore)
    assert {"scenario", "protocol", "config", "options", "progress", "executor"} <= set(names)
    for name in names:
        kw: dict[str, Any] = {"scenario": user.lost_update, name: Odd()}
        _refused(explore, kw, name)


def test_every_keyword_of_explore_target(user: ModuleType) -> None:
    target = Target.resolve(user.lost_update)
    names = _keywords(explore_target)
    assert {"target", "config", "progress", "executor", "resume", "clock"} <= set(names)
    for name in names:
        kw: dict[str, Any] = {"target": target, "config": ExploreConfig(schedules=5)}
        kw[name] = Odd()
        _refused(explore_target, kw, name)


def test_every_keyword_of_replay(user: ModuleType) -> None:
    result = check(user.lost_update, chooser="random", shrink=False)
    assert result.failure is not None
    assert result.failure.token is not None
    token = result.failure.token
    names = _keywords(replay)
    assert {"token", "trace", "scenario_file"} <= set(names)
    for name in names:
        kw: dict[str, Any] = {"token": token, name: Odd()}
        _refused(replay, kw, name)
    assert replay(token).failure is not None  # the good values still replay


def test_every_argument_of_shrink(user: ModuleType) -> None:
    result = check(user.lost_update, chooser="random", shrink=False)
    assert result.failure is not None
    good: dict[str, Any] = {
        "target": Target.resolve(user.lost_update),
        "schedule": result.failure.schedule,
        "kind": "error",
        "max_steps": 1000,
    }
    names = _keywords(shrink)
    assert set(good) <= set(names)
    for name in names:
        _refused(shrink, {**good, name: Odd()}, name)
    for name, bad in [("kind", "lost"), ("budget", 0), ("proof_budget", -1), ("schedule", [-1])]:
        with pytest.raises(InvalidArgument, match=name):
            shrink(**{**good, name: bad})
    assert shrink(**good).preemptions_after == 1  # the good values still shrink


#: A setting that some choosers ignore, a value away from its default, and a chooser that
#: ignores it (`odp_async.explore.config.CHOOSER_FIELDS`; the CLI's rule for its flags).
IGNORED = [
    ("depth", 2, "random"),
    ("depth", 2, "portfolio"),
    ("jobs", 2, "dfs"),
    ("max_preemptions", 1, "dpor"),
    ("reduction", False, "pct"),
    ("symmetry", False, "dpor"),
    ("preemption_bound", 1, "random"),
    ("trust_primitives", False, "pct"),
]


@pytest.mark.parametrize(("name", "value", "chooser"), IGNORED)
def test_a_setting_the_chooser_ignores_is_refused(
    user: ModuleType, name: str, value: object, chooser: str
) -> None:
    # trial 19a f3: check(fn, chooser="random", depth=2) ran, depth ignored; the CLI
    # refuses the same
    for run in (
        lambda: check(user.lost_update, chooser=chooser, schedules=5, **{name: value}),
        lambda: explore(user.lost_update, chooser=chooser, schedules=5, **{name: value}),
        lambda: explore(
            user.lost_update, config=ExploreConfig(chooser=chooser, schedules=5, **{name: value})
        ),
    ):
        with pytest.raises(InvalidArgument) as caught:
            run()
        message = str(caught.value)
        assert f"{name}={value!r}" in message, message
        assert f"chooser {chooser!r} ignores it" in message, message


def test_every_chooser_only_field_is_judged() -> None:
    from odp_async.explore.config import CHOOSER_FIELDS

    assert {name for name, _, _ in IGNORED} == set(CHOOSER_FIELDS)


@pytest.mark.parametrize(
    ("name", "value", "chooser"),
    [
        ("depth", 2, "pct"),
        ("jobs", 2, "dpor"),
        ("preemption_bound", 1, "portfolio"),
        ("depth", 3, "random"),
        ("jobs", 1, "dfs"),
    ],
)
def test_a_setting_the_chooser_uses_or_left_at_its_default_runs(
    user: ModuleType, name: str, value: object, chooser: str
) -> None:
    result = check(user.lost_update, chooser=chooser, schedules=20, **{name: value})
    assert result.failure is not None, result.claim


@pytest.mark.parametrize(
    ("name", "value", "chooser"),
    [(n, v, c) for n, v, c in IGNORED if n in ("depth", "preemption_bound")],
)
def test_explore_test_refuses_what_check_refuses(name: str, value: object, chooser: str) -> None:
    # the verification of trial 19a f3: @explore_test(chooser="random", depth=2) still ran
    from odp_async.explore.testing import explore_test

    with pytest.raises(InvalidArgument) as caught:
        explore_test(schedules=5, chooser=chooser, **{name: value})
    assert f"chooser {chooser!r} ignores it" in str(caught.value)
    explore_test(schedules=5, chooser="pct", depth=2)  # a setting its chooser uses
