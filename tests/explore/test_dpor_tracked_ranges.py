"""A `TrackedRanges` is noted per page: DPOR still finds every outcome.

`odp_async.tracked.TrackedRanges` (the mm's list of active invalidation ranges) notes an
add or a remove as a write of each page of the item's range and `overlaps` as a read of
each page it asks about, so operations on disjoint pages commute (an operation on more
than 512 pages writes one ``<wide>`` key every other one reads).  The guard: on small
programs of such operations (overlapping, disjoint, adjacent and wide ranges, removes of
absent items, random ones), DPOR over those footprints reaches exactly the outcomes
(what is listed at the end and every answer each task got) of an unreduced exhaustive
search; a broken rule (a query noting only its first page, or a wide range noting its
first pages only) loses outcomes on these programs, so the comparison would catch it; and
the rule reduces (disjoint adds: one trace).  `TrackedRanges.listed` reads its item's
pages and `TrackedRanges.snapshot` writes ``<wide>``, checked the same way.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from odp_async import _runtime as rt
from odp_async import tracked as tracked_module
from odp_async._runtime import sim
from odp_async._runtime.footprint import FieldOf, ReadOf
from odp_async.addr import PAGE_SHIFT, AddrRange
from odp_async.explore.dfs import DfsChooser
from odp_async.explore.dpor import DporChooser
from odp_async.tracked import TrackedRanges, tracked
from tests._search import Search

Op = tuple[Any, ...]

#: Ranges by name: (first page, pages).  "a" and "b" share page 3; "c" is adjacent to
#: "b" (no page shared); "w" is wide (more than 512 pages) and starts far past them.
#: A tuple, not a dict: a plain container the program reads would make every step
#: unknown under the noted-only promise (nothing would be reduced, or tested).
RANGES = (
    ("a", 0, 4),
    ("b", 3, 2),
    ("c", 5, 1),
    ("d", 9, 1),
    ("w", 2000, 600),
    ("v", 2100, 1),
)
NAMES = tuple(name for name, _, _ in RANGES)


@attrs.frozen
class Item:
    id: int
    range: AddrRange


@tracked
@attrs.define(eq=False)
class Seen:
    """What one task saw (named: objects made in one step are told apart by name)."""

    name: str
    values: tuple[Any, ...] = ()


def _rng(name: str) -> AddrRange:
    first, pages = next((f, n) for r, f, n in RANGES if r == name)
    return AddrRange.pages(first, pages)


def _apply(op: Op, ranges: TrackedRanges[Item]) -> Any:
    kind = op[0]
    if kind == "add":
        ranges.add(Item(op[1], _rng(op[2])))
        return None
    if kind == "remove":
        try:
            ranges.remove(Item(op[1], _rng(op[2])))
        except ValueError:
            return "absent"
        return None
    if kind == "listed":
        return ranges.listed(Item(op[1], _rng(op[2])))
    if kind == "snapshot":
        return tuple(item.id for item in ranges.snapshot())
    return ranges.overlaps(_rng(op[1]))


def make(spec: list[list[Op]]) -> Callable[[], Awaitable[Any]]:
    frozen = tuple(tuple(ops) for ops in spec)

    async def main() -> Any:
        ranges: TrackedRanges[Item] = TrackedRanges([Item(99, _rng("d"))])
        seen = tuple(Seen(f"seen{k}") for k in range(len(frozen)))

        async def worker(k: int, ops: tuple[Op, ...]) -> None:
            for op in ops:
                await rt.checkpoint()
                seen[k].values += (_apply(op, ranges),)
            # A last step of its own: the run's end (an unknown step) races with each
            # task's last step, and reversing those would reorder the operations by
            # chance, hiding a rule that notes too little.
            await rt.checkpoint()
            seen[k].values += ("end",)

        async with rt.task_group() as tg:
            for k, ops in enumerate(frozen):
                tg.start_soon(worker, k, ops)
        return ranges, seen

    return main


def _outcome(value: Any) -> str:
    ranges, seen = value  # read after the run: no tracking run is in progress
    return repr((sorted(item.id for item in ranges), [x.values for x in seen]))


def outcomes(program: Callable[[], Awaitable[Any]], chooser: Any) -> set[str]:
    found: set[str] = set()
    for result in Search(chooser, lambda: sim.run(program, chooser=chooser)):
        assert result.error is None, result.error
        found.add(_outcome(result.value))
    return found


def random_op(rng: random.Random, k: int) -> Op:
    kind = rng.choice(("add", "remove", "overlaps", "overlaps"))
    if kind == "overlaps":
        return (kind, rng.choice(NAMES))
    # Item ids: each task its own two, plus 99 (listed from the start).
    return (kind, rng.choice((10 * k, 10 * k + 1, 99)), rng.choice(NAMES))


def random_spec(seed: int) -> list[list[Op]]:
    rng = random.Random(seed)
    return [[random_op(rng, k) for _ in range(rng.choice([1, 1, 2]))] for k in range(3)]


#: A query overlapping an item on a page other than either range's first (a: 0-3, b:
#: 3-4), and a narrow query inside a wide item: a rule noting first pages misses these.
FIRST_PAGE_TRAPS = [
    [[("add", 1, "a")], [("overlaps", "b")]],
    [[("add", 1, "w")], [("overlaps", "v")]],
    [[("overlaps", "b")], [("add", 1, "a"), ("remove", 1, "a")]],
]

SPECS = [
    *FIRST_PAGE_TRAPS,
    # A query on page 3 between adds on a (pages 0-3) and b (3-4), and their removes.
    [[("add", 1, "a"), ("remove", 1, "a")], [("add", 2, "b")], [("overlaps", "b")]],
    # Adjacent ranges: b and c share no page; the query on c sees only c's add.
    [[("add", 1, "b")], [("add", 2, "c"), ("remove", 2, "c")], [("overlaps", "c")]],
    # A remove of an item not listed yet (or any more) beside its add.
    [[("add", 1, "a")], [("remove", 1, "a")], [("overlaps", "a"), ("overlaps", "b")]],
    # The item listed from the start, removed while a query asks about its page.
    [[("remove", 99, "d")], [("overlaps", "d")], [("add", 5, "d"), ("overlaps", "d")]],
    # Wide ranges: a wide add beside a narrow query inside it and one far outside.
    [[("add", 1, "w"), ("remove", 1, "w")], [("overlaps", "v")], [("overlaps", "a")]],
    [[("add", 1, "v")], [("overlaps", "w")], [("add", 2, "w"), ("overlaps", "v")]],
    # listed (the item's pages) and snapshot (every item: ordered against all of them).
    [[("add", 1, "a")], [("listed", 1, "a")], [("remove", 1, "a"), ("listed", 2, "b")]],
    [[("add", 2, "b")], [("listed", 1, "a")], [("add", 1, "c")]],
    [[("add", 1, "v")], [("snapshot",)], [("add", 2, "c"), ("remove", 99, "d")]],
    [[("add", 1, "w"), ("remove", 1, "w")], [("snapshot",)], [("listed", 99, "d")]],
    *[random_spec(seed) for seed in range(6)],
]


#: The unreduced search's size (schedules) up to which DPOR without the noted-only
#: promise, which reduces nothing on these programs, is run too.
SMALL = 2_000


@pytest.mark.parametrize("spec", SPECS, ids=[f"p{i}" for i in range(len(SPECS))])
def test_dpor_finds_every_outcome_of_an_unreduced_search(spec: list[list[Op]]) -> None:
    program = make(spec)
    unreduced = DfsChooser(reduction=False)
    expected = outcomes(program, unreduced)
    assert outcomes(program, DporChooser(noted_only=True)) == expected
    # Without the noted-only promise DPOR reduces nothing on these programs (every one:
    # as many schedules as the unreduced search, measured), each schedule about ten times
    # the unreduced one's cost (the tracking): it is checked where that search is small.
    if unreduced.executions <= SMALL:
        assert outcomes(program, DporChooser(noted_only=False)) == expected


def _broken_first_page(
    self: Any,
    start: int,
    end: int,
    write: bool,
    fp_now: Callable[[], Any] = tracked_module._fp_now,
    field_of: type = FieldOf,
    read_of: type = ReadOf,
) -> None:
    # A wrong rule: every operation notes only its first page.  (What it uses comes in
    # as defaults: a global it read would be code the noted-only promise cannot vouch
    # for, and every step would be unknown.)
    fp = fp_now()
    if fp is not None:
        key = field_of(self, ("page", start >> 12))
        fp.add(key if write else read_of(key))


def test_a_broken_rule_loses_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above catches a rule that notes too little: with every operation
    noting only its first page, DPOR misses an outcome of each trap."""
    missed = 0
    programs = [make(spec) for spec in FIRST_PAGE_TRAPS]
    expected = [outcomes(p, DfsChooser(reduction=False)) for p in programs]
    monkeypatch.setattr(TrackedRanges, "_note", _broken_first_page)
    for program, want in zip(programs, expected, strict=True):
        got = outcomes(program, DporChooser(noted_only=True))
        assert got <= want
        missed += got != want
    assert missed == len(FIRST_PAGE_TRAPS)


def _traces(spec: list[list[Op]]) -> int:
    chooser = DporChooser(noted_only=True)
    outcomes(make(spec), chooser)
    return chooser.traces


def test_operations_on_disjoint_pages_commute() -> None:
    """Two adds and a query on disjoint pages explore as few traces as three queries; on
    one shared page, or with a wide add, more."""
    queries = _traces([[("overlaps", "a")], [("overlaps", "c")], [("overlaps", "v")]])
    assert _traces([[("add", 1, "a")], [("add", 2, "c")], [("overlaps", "v")]]) == queries
    assert _traces([[("add", 1, "a")], [("add", 2, "b")], [("overlaps", "v")]]) > queries
    assert _traces([[("add", 1, "a")], [("add", 2, "w")], [("overlaps", "c")]]) > queries


def test_looking_at_every_item_is_unknown_in_a_tracking_run() -> None:
    """``len``, iteration and ``==`` in a run are unknown steps: they conflict with an add
    on any page, so a task that counts the items sees both answers."""

    def program() -> Callable[[], Awaitable[Any]]:
        async def main() -> Any:
            ranges: TrackedRanges[Item] = TrackedRanges()
            seen = Seen("seen")

            async def adder() -> None:
                await rt.checkpoint()
                ranges.add(Item(1, _rng("v")))

            async def counter() -> None:
                await rt.checkpoint()
                seen.values += (len(ranges), [i.id for i in ranges], ranges == [])

            async with rt.task_group() as tg:
                tg.start_soon(adder)
                tg.start_soon(counter)
            return ranges, (seen,)

        return main

    want = {"([1], [(0, [], True)])", "([1], [(1, [1], False)])"}
    assert outcomes(program(), DfsChooser(reduction=False)) == want
    assert outcomes(program(), DporChooser(noted_only=True)) == want


def test_the_page_size_is_the_model_s() -> None:
    assert tracked_module._RANGE_PAGE_SHIFT == PAGE_SHIFT
