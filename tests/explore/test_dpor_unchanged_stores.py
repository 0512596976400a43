"""Stores that change nothing are reads: DPOR still finds every outcome.

`odp_async.tracked` notes a store that leaves a field as it was (the same object, an
equal int or str...), ``setdefault`` of a present key, ``pop`` of an absent key and a
set's ``add`` of a member or ``discard`` of a non-member as *reads*, so two of them
commute.  The guard: on small programs of such operations (random ones included), DPOR
over those footprints reaches exactly the outcomes (final state and every value each
task saw) of an unreduced exhaustive search; a check-then-act bug built on them is
still found; and each rule is shown to reduce (one trace where a write would give two).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async._runtime import sim
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.tracked import TrackedDict, TrackedSet, tracked
from tests._search import Search

Op = tuple[Any, ...]


@tracked
@attrs.define(eq=False)
class Box:
    a: int = 0
    b: object = None


@tracked
class Plain:
    """A plain class (fields in its ``__dict__``), as the model's protocols are."""

    def __init__(self) -> None:
        self.n = 0


@tracked
@attrs.define(eq=False)
class Seen:
    """What one task saw.  Named: objects made in one step are told apart by their
    class and name (`odp_async.explore.dfs`), so each task's record is its own."""

    name: str
    values: tuple[Any, ...] = ()


TOKENS = (None, "x", "y")


def _apply(op: Op, box: Box, plain: Plain, d: TrackedDict[str, int], s: TrackedSet[int]) -> Any:
    kind = op[0]
    if kind == "store":
        box.a = op[1]
    elif kind == "load":
        return box.a
    elif kind == "token":
        box.b = TOKENS[op[1]]
    elif kind == "pstore":
        plain.n = op[1]
    elif kind == "pload":
        return plain.n
    elif kind == "put":
        d[op[1]] = op[2]
    elif kind == "get":
        return d.get(op[1])
    elif kind == "setdefault":
        return d.setdefault(op[1], op[2])
    elif kind == "pop":
        return d.pop(op[1], None)
    elif kind == "add":
        s.add(op[1])
    elif kind == "discard":
        s.discard(op[1])
    elif kind == "has":
        return op[1] in s
    return None


def make(spec: list[list[Op]]) -> Callable[[], Awaitable[Any]]:
    # Tuples and tracked state only: the run can take the noted-only promise (steps are
    # exactly their noted accesses), so the rules under test decide the reduction.
    frozen = tuple(tuple(ops) for ops in spec)

    async def main() -> Any:
        box, plain = Box(), Plain()
        d: TrackedDict[str, int] = TrackedDict({"k": 0})
        s: TrackedSet[int] = TrackedSet({0})
        seen = tuple(Seen(f"seen{k}") for k in range(len(frozen)))

        async def worker(k: int, ops: tuple[Op, ...]) -> None:
            for op in ops:
                await rt.checkpoint()
                seen[k].values += (_apply(op, box, plain, d, s),)

        async with rt.task_group() as tg:
            for k, ops in enumerate(frozen):
                tg.start_soon(worker, k, ops)
        return box, plain, d, s, seen

    return main


def _outcome(value: Any) -> str:
    # Read after the run (the run's last step is then only the join).
    box, plain, d, s, seen = value
    return repr(((box.a, box.b, plain.n, sorted(d.items()), sorted(s)), [x.values for x in seen]))


def outcomes(
    program: Callable[[], Awaitable[Any]], chooser: Any, describe: Callable[[Any], str] = repr
) -> set[str]:
    seen: set[str] = set()
    for result in Search(chooser, lambda: sim.run(program, chooser=chooser)):
        assert result.error is None, result.error
        seen.add(describe(result.value))
    return seen


KINDS = ("store", "load", "token", "pstore", "pload", "put", "get", "setdefault", "pop")
KINDS += ("add", "discard", "has")


def random_op(rng: random.Random) -> Op:
    kind = rng.choice(KINDS)
    if kind in ("store", "pstore"):
        return (kind, rng.randrange(2))  # 0 is the initial value: often unchanged
    if kind == "token":
        return (kind, rng.randrange(len(TOKENS)))
    if kind in ("put", "setdefault"):
        return (kind, rng.choice("kj"), rng.randrange(2))
    if kind in ("get", "pop"):
        return (kind, rng.choice("kj"))
    if kind in ("add", "discard", "has"):
        return (kind, rng.randrange(2))
    return (kind,)


def random_spec(seed: int) -> list[list[Op]]:
    rng = random.Random(seed)
    return [[random_op(rng) for _ in range(rng.choice([1, 2, 2]))] for _ in range(3)]


SPECS = [
    # An unchanged store, then one that changes: the order decides what the reader sees.
    [[("store", 0)], [("store", 1)], [("load",), ("load",)]],
    [[("pstore", 0), ("pload",)], [("pstore", 1)], [("pstore", 0)]],
    # setdefault of a present key beside a pop that makes it absent, and a re-insert.
    [[("setdefault", "k", 1)], [("pop", "k")], [("put", "k", 1), ("get", "k")]],
    # pop of an absent key beside the insert that makes it present.
    [[("pop", "j")], [("setdefault", "j", 1)], [("get", "j"), ("pop", "j")]],
    # set no-ops beside the changes that make them changes.
    [[("add", 0), ("has", 1)], [("discard", 0)], [("add", 1), ("discard", 1)]],
    [[("token", 0)], [("token", 1)], [("token", 0), ("token", 1)]],
    *[random_spec(seed) for seed in range(12)],
]


@pytest.mark.parametrize("spec", SPECS, ids=[f"p{i}" for i in range(len(SPECS))])
def test_dpor_finds_every_outcome_of_an_unreduced_search(spec: list[list[Op]]) -> None:
    program = make(spec)
    expected = outcomes(program, DfsChooser(reduction=False), _outcome)
    for noted_only in (False, True):
        assert outcomes(program, DporChooser(noted_only=noted_only), _outcome) == expected


def _traces(spec: list[list[Op]]) -> int:
    chooser = DporChooser(noted_only=True)
    outcomes(make(spec), chooser, _outcome)
    return chooser.traces


@pytest.mark.parametrize(
    ("unchanged", "changed"),
    [
        (("store", 0), ("store", 1)),
        (("pstore", 0), ("pstore", 1)),
        (("token", 0), ("token", 1)),
        (("put", "k", 0), ("put", "k", 1)),
        (("setdefault", "k", 1), ("setdefault", "j", 1)),
        (("pop", "j"), ("pop", "k")),
        (("add", 0), ("add", 1)),
        (("discard", 1), ("discard", 0)),
    ],
)
def test_stores_that_change_nothing_commute(unchanged: Op, changed: Op) -> None:
    """Three tasks doing a store that leaves the state as it was explore as few traces
    as three loads; the same store where the first one changes the state explores more
    (noted as writes, the unchanged ones explored as many: 6, not 4)."""
    loads = _traces([[("load",)]] * 3)
    assert _traces([[unchanged]] * 3) == loads
    assert _traces([[changed]] * 3) > loads


def _claim(buggy: bool) -> Callable[[], Awaitable[Any]]:
    """Two tasks each claim slot "k" for themselves; both must agree on the owner.  The
    correct claim is one ``setdefault``; the buggy one checks, yields, then stores."""

    async def main() -> Any:
        d: TrackedDict[str, str] = TrackedDict()
        owners = (Seen("a"), Seen("b"))

        async def claim(k: int, me: str) -> None:
            await rt.checkpoint()
            if buggy:
                if d.get("slot") is None:
                    await rt.checkpoint()
                    d["slot"] = me
                await rt.checkpoint()
                owners[k].values = (d["slot"],)
            else:
                owners[k].values = (d.setdefault("slot", me),)
                await rt.checkpoint()
                d.setdefault("slot", me)  # again: present, a read

        async with rt.task_group() as tg:
            tg.start_soon(claim, 0, "a")
            tg.start_soon(claim, 1, "b")
        return owners[0].values == owners[1].values == (d["slot"],)

    return main


@pytest.mark.parametrize("buggy", [False, True])
def test_a_check_then_act_bug_is_still_found(buggy: bool) -> None:
    expected = outcomes(_claim(buggy), DfsChooser(reduction=False))
    found = outcomes(_claim(buggy), DporChooser(noted_only=True))
    assert found == expected
    assert ("False" in found) == buggy  # the bug (owners disagree) is found, only there


@tracked
class Logged:
    """A class whose own ``__setattr__`` does more than store the field."""

    def __init__(self) -> None:
        self.n = 0
        self.log: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "n":  # past the hooks: only the store of `n` is noted
            super().__setattr__("log", (*getattr(self, "log", ()), f"n={value}"))
        super().__setattr__(name, value)


def test_a_custom_setattr_store_stays_a_write() -> None:
    """Storing the value a field holds through the class's own ``__setattr__`` is a
    write (it may change more than the field): both orders are explored."""

    def program() -> Callable[[], Awaitable[Any]]:
        async def main() -> Any:
            obj = Logged()
            names = (Seen("t0"), Seen("t1"))

            async def store(k: int) -> None:
                await rt.checkpoint()
                obj.n = 0
                names[k].values = (len(obj.log),)
                await rt.checkpoint()  # the task's end (its join) in a step of its own

            async with rt.task_group() as tg:
                tg.start_soon(store, 0)
                tg.start_soon(store, 1)
            return obj, names

        return main

    def describe(value: Any) -> str:
        return repr([x.values for x in value[1]])

    expected = outcomes(program(), DfsChooser(reduction=False), describe)
    assert len(expected) == 2  # who stored first saw a shorter log
    chooser = DporChooser(noted_only=True)
    assert outcomes(program(), chooser, describe) == expected
