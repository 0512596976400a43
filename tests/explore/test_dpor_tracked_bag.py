"""Commutative updates (`TrackedBag`): DPOR still finds every outcome.

`odp_async.tracked.TrackedBag` (a multiset whose adds and removes commute)
notes an add, and a remove that finds its element, as a commutative *update* of its
size (`odp_async._runtime.footprint.UpdateOf`): two updates are independent for DPOR,
an update and a read (``len``, truth, `snapshot`) or a write are not.  An add also
updates its element's count, a remove writes it and a missed remove or a test for the
element reads it.  The guard: on small programs of such operations (own elements, one
shared element, removes of absent elements, size reads between them, random ones), DPOR
reaches exactly the outcomes (the bag's contents at the end and every answer each task
got) of an unreduced exhaustive search, and so does dfs with reduction (which takes an
update for a write); two wrong rules each lose an outcome on their traps (a size read
noted as an update, and a remove noted as an update of its element: it would commute
with another task's add of that element); and the rule reduces (tasks that add and
remove their own elements: one trace, where a `TrackedList` needs more).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async import tracked as tracked_module
from odp_async._runtime import footprint, sim
from odp_async._runtime.footprint import FieldOf, Footprint, ReadOf, UpdateOf
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.tracked import TrackedBag, TrackedList, tracked
from tests._search import Search

Op = tuple[Any, ...]


@tracked
@attrs.define(eq=False)
class Seen:
    """What one task saw (named: objects made in one step are told apart by name)."""

    name: str
    values: tuple[Any, ...] = ()


def _apply(op: Op, bag: Any) -> Any:
    kind = op[0]
    if kind == "add":
        bag.add(op[1])
        return None
    if kind == "remove":
        try:
            bag.remove(op[1])
        except ValueError:
            return "absent"
        return None
    if kind == "len":
        return len(bag)
    if kind == "empty":
        return not bag
    if kind == "in":
        return op[1] in bag
    return tuple(sorted(bag.snapshot()))


def make(spec: list[list[Op]], container: Callable[[], Any] = TrackedBag) -> Any:
    frozen = tuple(tuple(ops) for ops in spec)

    async def main() -> Any:
        bag = container()
        bag.add(99)  # there from the start
        seen = tuple(Seen(f"seen{k}") for k in range(len(frozen)))

        async def worker(k: int, ops: tuple[Op, ...]) -> None:
            for op in ops:
                await rt.checkpoint()
                seen[k].values += (_apply(op, bag),)
            # A last step of its own: the run's end (an unknown step) races with each
            # task's last step, and reversing those would reorder the operations by
            # chance, hiding a rule that notes too little.
            await rt.checkpoint()
            seen[k].values += ("end",)

        async with rt.task_group() as tg:
            for k, ops in enumerate(frozen):
                tg.start_soon(worker, k, ops)
        return bag, seen

    return main


def _outcome(value: Any) -> str:
    bag, seen = value  # read after the run: no tracking run is in progress
    return repr((sorted(bag), [x.values for x in seen]))


def outcomes(program: Callable[[], Awaitable[Any]], chooser: Any) -> set[str]:
    found: set[str] = set()
    for result in Search(chooser, lambda: sim.run(program, chooser=chooser)):
        assert result.error is None, result.error
        found.add(_outcome(result.value))
    return found


def random_op(rng: random.Random, k: int) -> Op:
    kind = rng.choice(("add", "add", "remove", "remove", "len", "empty", "in", "snapshot"))
    if kind in ("len", "empty", "snapshot"):
        return (kind,)
    # Elements: each task its own two, plus 99 (there from the start) and 7 (shared).
    return (kind, rng.choice((10 * k, 10 * k + 1, 99, 7)))


def random_spec(seed: int) -> list[list[Op]]:
    rng = random.Random(seed)
    return [[random_op(rng, k) for _ in range(rng.choice([1, 1, 1, 2]))] for k in range(3)]


#: A size read between two tasks' updates: a read noted as an update misses orders.
READ_TRAPS = [
    [[("add", 1)], [("len",)]],
    [[("add", 1), ("remove", 1)], [("empty",)], [("remove", 99)]],
]
#: A remove of an element another task adds: noted as an update of the element's
#: count, the two would commute and the missed remove (or the found one) is lost.
REMOVE_TRAPS = [
    [[("add", 7)], [("remove", 7)]],
    [[("add", 7)], [("in", 99), ("remove", 7)]],
]

SPECS = [
    *READ_TRAPS,
    *REMOVE_TRAPS,
    # Each task adds and removes its own element; a third reads the size between.
    [[("add", 1), ("remove", 1)], [("add", 2)], [("empty",)]],
    # One shared element added twice and removed by a third task, asked about.
    [[("add", 7)], [("add", 7), ("in", 7)], [("remove", 7)]],
    # The element there from the start, removed twice (one finds it), with a snapshot.
    [[("remove", 99)], [("remove", 99)], [("snapshot",)]],
    [[("add", 1), ("snapshot",)], [("add", 2)], [("remove", 99)]],
    *[random_spec(seed) for seed in range(6)],
]


#: The unreduced search's size (schedules) up to which the searches that reduce nothing
#: on these programs are run too (see the test).
SMALL = 2_000


@pytest.mark.parametrize("spec", SPECS, ids=[f"p{i}" for i in range(len(SPECS))])
def test_dpor_finds_every_outcome_of_an_unreduced_search(spec: list[list[Op]]) -> None:
    program = make(spec)
    unreduced = DfsChooser(reduction=False)
    expected = outcomes(program, unreduced)
    assert outcomes(program, DporChooser(noted_only=True)) == expected
    # Without the noted-only promise, dfs's reduction and DPOR reduce nothing on these
    # programs (every one: as many schedules as the unreduced search, measured), each
    # schedule about ten times the unreduced one's cost (the tracking): they are checked
    # where that search is small.
    if unreduced.executions <= SMALL:
        assert outcomes(program, DfsChooser()) == expected
        assert outcomes(program, DporChooser(noted_only=False)) == expected


def _len_as_update(self: Any, field_of: type = FieldOf, update_of: type = UpdateOf) -> int:
    # A wrong rule: the size read noted as an update (it would commute with the adds).
    # (What it uses comes in as defaults: a global it read would be code the noted-only
    # promise cannot vouch for, and every step would be unknown.)
    fp = tracked_module._fp_now()
    if fp is not None:
        fp.add(update_of(field_of(self, tracked_module._BAG_SIZE)))
    return sum(self._n.values())


def _remove_as_update(
    self: Any, item: Any, field_of: type = FieldOf, update_of: type = UpdateOf
) -> None:
    # A wrong rule: a remove noted as updates only (of the size and its element's count),
    # whether or not it finds the element.
    fp = tracked_module._fp_now()
    if fp is not None:
        fp.add(update_of(field_of(self, tracked_module._BAG_SIZE)))
        fp.add(update_of(field_of(self, ("item", item))))
    n = self._n.get(item, 0)
    if n == 0:
        raise ValueError("absent")
    if n == 1:
        del self._n[item]
    else:
        self._n[item] = n - 1


@pytest.mark.parametrize(
    ("traps", "name", "broken"),
    [(READ_TRAPS, "__len__", _len_as_update), (REMOVE_TRAPS, "remove", _remove_as_update)],
    ids=["len-as-update", "remove-as-update"],
)
def test_a_broken_rule_loses_outcomes(
    monkeypatch: pytest.MonkeyPatch, traps: list[Any], name: str, broken: Any
) -> None:
    """The comparison above catches a rule that calls too much an update: DPOR then
    misses an outcome of each trap."""
    programs = [make(spec) for spec in traps]
    expected = [outcomes(p, DfsChooser(reduction=False)) for p in programs]
    monkeypatch.setattr(TrackedBag, name, broken)
    missed = 0
    for program, want in zip(programs, expected, strict=True):
        got = outcomes(program, DporChooser(noted_only=True))
        assert got <= want
        missed += got != want
    assert missed == len(traps)


def _traces(spec: list[list[Op]], container: Any = TrackedBag) -> int:
    chooser = DporChooser(noted_only=True)
    outcomes(make(spec, container), chooser)
    return chooser.traces


class _ListBag:
    """The same operations over a `TrackedList` (noted as a whole: every change a write)."""

    def __init__(self) -> None:
        self._c: TrackedList[int] = TrackedList()

    def add(self, item: int) -> None:
        self._c.append(item)

    def remove(self, item: int) -> None:
        self._c.remove(item)

    def __iter__(self) -> Any:
        return iter(self._c)  # read after the run only


def test_own_adds_and_removes_commute() -> None:
    """Three tasks each adding and removing their own element: one trace with a bag,
    more with a list (and with a size read among them, more with the bag too)."""
    spec = [[("add", k), ("remove", k)] for k in (1, 2, 3)]
    assert _traces(spec) == 1
    assert _traces(spec, tracked(_ListBag)) > 1
    assert _traces([*spec, [("len",)]]) > 1


def test_dfs_and_the_footprint_helpers_take_an_update_for_a_write() -> None:
    """Outside DPOR an update is a write (`with_noted_reads`); `independent` knows the
    three kinds: two updates commute, an update and a read or a write do not."""
    x = "x"
    update = Footprint(writes=frozenset((UpdateOf(x),)))
    read = Footprint(writes=frozenset((ReadOf(x),)))
    assert footprint.with_noted_reads(update) == Footprint.write(x)
    assert footprint.independent(update, update)
    assert not footprint.independent(update, read)
    assert not footprint.independent(read, update)
    assert not footprint.independent(update, Footprint.write(x))
    assert not footprint.independent(Footprint.read(x), update)
    assert footprint.independent(update, Footprint.read("y"))


def test_looking_at_the_order_is_unknown_in_a_tracking_run() -> None:
    """Iteration and ``repr`` would show the order of the adds: in a run they are
    unknown steps, so a task that lists the bag sees every order."""

    async def main() -> Any:
        bag: TrackedBag[int] = TrackedBag()
        seen = Seen("seen")

        async def adder(k: int) -> None:
            await rt.checkpoint()
            bag.add(k)

        async def lister() -> None:
            await rt.checkpoint()
            seen.values += (list(bag),)

        async with rt.task_group() as tg:
            tg.start_soon(adder, 1)
            tg.start_soon(adder, 2)
            tg.start_soon(lister)
        return bag, (seen,)

    want = outcomes(main, DfsChooser(reduction=False))
    assert len(want) == 5  # [], [1], [2], [1, 2], [2, 1]
    assert outcomes(main, DporChooser(noted_only=True)) == want
