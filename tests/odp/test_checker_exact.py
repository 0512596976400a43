"""The checker's records, field by field: kinds, details, steps, tasks, addresses, events.

Violations and events are data other tools read (reports, tokens, timelines), so their
exact contents are part of the contract; these tests pin them on a checker fed by hand.
"""

from __future__ import annotations

import pytest

from odp_async.check import Checker, Event, Violation
from odp_async.errors import InvariantViolation

PTES: dict[int, tuple[int, int, bool]] = {1: (10, 0, True), 2: (20, 1, False)}
FREED = {(30, 0)}


def _checker(**kwargs: object) -> Checker:
    return Checker(
        where=lambda: (7, "t"),
        page_lookup=PTES.get,
        frame_live=lambda f: f not in FREED,
        **kwargs,  # type: ignore[arg-type]
    )


def test_default_where_and_lookups() -> None:
    c = Checker()
    c.event("k", "key", "d")
    assert c.events == [Event(0, "?", "k", "key", "d", None)]
    c.translation_installed("T", 1, (5, 0), True)
    assert c.violations[0].detail == (
        "T installed 0x1000 -> frame 5.0, but the page table maps nothing there"
    )


def test_install_ok_then_zap_then_free_is_clean() -> None:
    c = _checker()
    c.translation_installed("T", 1, (10, 0), True)
    c.translation_installed("T", 2, (20, 1), False)
    c.translation_removed("T", 1)
    c.translation_removed("T", 1)  # nothing left: no event
    c.frame_freed((10, 0), "freed")
    assert c.violations == []
    assert c.events == [
        Event(7, "t", "install", "T", "T[0x1000] -> frame 10.0 rw", 0x1000),
        Event(7, "t", "install", "T", "T[0x2000] -> frame 20.1 ro", 0x2000),
        Event(7, "t", "zap", "T", "T[0x1000] zapped", 0x1000),
    ]
    c.frame_freed((20, 1), "reused")
    assert c.violations == [
        Violation(
            "stale-translation",
            7,
            ("t",),
            (0x2000,),
            "frame 20.1 was reused while T still translates 0x2000 to it",
        )
    ]


def test_replacing_a_translation_drops_the_old_frame() -> None:
    c = _checker()
    c.translation_installed("T", 1, (10, 0), True)
    c.translation_installed("U", 1, (10, 0), True)
    c.translation_installed("T", 1, (20, 1), False)  # T[1] no longer points at 10.0
    c.translation_removed("U", 1)
    c.frame_freed((10, 0), "freed")
    kinds = [v.detail for v in c.violations]
    assert kinds == ["T installed 0x1000 -> frame 20.1, but the page table maps frame 10.0"]


@pytest.mark.parametrize(
    ("vpn", "frame", "writable", "problem"),
    [
        (1, (30, 0), False, "frame 30.0, which has been freed"),
        (3, (10, 0), False, "frame 10.0, but the page table maps nothing there"),
        (1, (11, 0), False, "frame 11.0, but the page table maps frame 10.0"),
        (1, (10, 1), False, "frame 10.1, but the page table maps frame 10.0"),
        (2, (20, 1), True, "frame 20.1 writable, but the pte is read-only"),
    ],
)
def test_install_mismatches(
    vpn: int, frame: tuple[int, int], writable: bool, problem: str
) -> None:
    c = _checker()
    c.translation_installed("T", vpn, frame, writable)
    assert c.violations == [
        Violation(
            "stale-translation",
            7,
            ("t",),
            (vpn << 12,),
            f"T installed {vpn << 12:#x} -> {problem}",
        )
    ]
    assert c.events[-1].kind == "violation"
    assert c.events[-1].key == "stale-translation"
    assert c.events[-1].address == vpn << 12
    assert c.events[-1].detail == c.violations[0].describe()


def test_dma_reads_and_writes() -> None:
    c = _checker()
    c.dma("T", 1, write=False)  # no translation: nothing to check
    c.translation_installed("T", 1, (10, 0), True)
    c.translation_installed("T", 2, (20, 1), False)
    c.dma("T", 1, write=True)
    c.dma("T", 2, write=False)
    assert c.violations == []
    c.dma("T", 2, write=True)
    PTES[1] = (11, 0, True)
    try:
        c.dma("T", 1, write=False)
    finally:
        PTES[1] = (10, 0, True)
    assert [e.detail for e in c.events if e.kind == "dma"] == [
        "DMA read T[0x1000]",
        "DMA write T[0x1000]",
        "DMA read T[0x2000]",
        "DMA write T[0x2000]",
        "DMA read T[0x1000]",
    ]
    addresses = [e.address for e in c.events if e.kind == "dma"]
    assert addresses == [0x1000, 0x1000, 0x2000, 0x2000, 0x1000]
    assert c.violations == [
        Violation(
            "stale-dma",
            7,
            ("t",),
            (0x2000,),
            "DMA write through the read-only translation T[0x2000]",
        ),
        Violation(
            "stale-dma",
            7,
            ("t",),
            (0x1000,),
            "DMA read of T[0x1000] -> frame 10.0, but the page table maps frame 11.0",
        ),
    ]


def test_odp_core_hooks() -> None:
    c = _checker()
    c.count_changed("T", "notifiers_count", 0, "[0x0, 0x1000)")
    c.warning("T", "got an end without a start")
    c.touched("T", "a fault")
    c.fault_succeeded("T", "[0x0, 0x1000)")
    assert c.violations == []
    c.table_released("T")
    c.touched("T", "a fault")
    c.mm_released()
    assert c.is_mm_released
    c.fault_succeeded("T", "[0x0, 0x1000)")
    c.count_changed("T", "notifiers_count", -1, "[0x0, 0x1000)")
    c.starved("T", "retried 12 times")
    c.deadlock("a and b wait", ("a", "b"), 99)
    assert [(v.kind, v.step, v.tasks, v.detail) for v in c.violations] == [
        ("use-after-release", 7, ("t",), "a fault touched T after its deregistration"),
        (
            "use-after-release",
            7,
            ("t",),
            "a fault on T [0x0, 0x1000) succeeded after the mm was released",
        ),
        (
            "unbalanced-notifier",
            7,
            ("t",),
            "invalidate_range_end() for [0x0, 0x1000) without a matching start: "
            "T.notifiers_count went to -1",
        ),
        ("starvation", 7, ("t",), "a fault on T retried 12 times"),
        ("deadlock", 99, ("a", "b"), "a and b wait"),
    ]
    assert [e for e in c.events if e.kind != "violation"] == [
        Event(7, "t", "warning", "T", "got an end without a start"),
        Event(7, "t", "mm-release", "mm", "the address space was released"),
    ]
    assert c.kinds() == [
        "use-after-release",
        "unbalanced-notifier",
        "starvation",
        "deadlock",
    ]
    assert c.first is c.violations[0]


def test_describe_and_repeats() -> None:
    v = Violation("stale-dma", 3, ("a", "b"), (0x1000, 0x2000), "why")
    assert v.describe() == "stale-dma at 0x1000, 0x2000 (step 3, a, b): why"
    assert str(v) == v.describe()
    assert Violation("error", 1, ("a",), (), "x").describe() == "error (step 1, a): x"
    c = _checker()
    assert c.first is None
    first = c.violation("error", "x", (1,))
    assert first == Violation("error", 7, ("t",), (1,), "x")
    assert c.violation("error", "x", (1,)) is None  # the same one again: not repeated
    assert c.violation("error", "x", (1,), tasks=("u",), step=3) == Violation(
        "error", 3, ("u",), (1,), "x"
    )
    assert c.events[0] == Event(7, "t", "violation", "error", first.describe(), 1)
    c.violation("error", "y")
    assert c.events[-1].address is None


def test_closed_and_quiet_checkers_record_nothing() -> None:
    c = _checker(closed=True)
    assert c.violation("error", "x") is None
    c.event("k", "k", "d")
    assert (c.violations, c.events) == ([], [])
    q = _checker(record_events=False)
    q.event("k", "k", "d")
    q.violation("error", "x")
    assert q.events == []
    assert len(q.violations) == 1


def test_raise_on_violation() -> None:
    c = _checker(raise_on_violation=True)
    with pytest.raises(InvariantViolation, match=r"^error \(step 7, t\): boom$"):
        c.violation("error", "boom")


def test_a_frame_stays_watched_while_any_translation_points_at_it() -> None:
    c = _checker()
    c.translation_installed("T", 1, (10, 0), True)
    c.translation_installed("U", 1, (10, 0), True)
    c.translation_removed("T", 1)  # U still translates to frame 10.0
    c.frame_freed((10, 0), "freed")
    assert [v.detail for v in c.violations] == [
        "frame 10.0 was freed while U still translates 0x1000 to it"
    ]


def test_dma_events_are_keyed_by_table() -> None:
    c = _checker()
    c.dma("T", 1, write=False)
    assert c.events == [Event(7, "t", "dma", "T", "DMA read T[0x1000]", 0x1000)]
