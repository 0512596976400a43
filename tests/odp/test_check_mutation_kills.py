"""The checker's lifetime and pairing hooks, record by record (found by mutation testing,
``tools/mutation.sh check``): the kind, detail, tasks and step of each violation they
record, the events they leave, and when they record nothing.

Here, not in ``tests/``: mutmut's test selection (``[tool.mutmut]``) includes
``tests/odp/``, and changing the selection would reset every recorded verdict.
"""

from __future__ import annotations

from odp_async.check import Checker, Event, Violation


def _checker() -> Checker:
    return Checker(where=lambda: (7, "t"))


def _records(c: Checker) -> list[tuple[str, int, tuple[str, ...], tuple[int, ...], str]]:
    return [(v.kind, v.step, v.tasks, v.addresses, v.detail) for v in c.violations]


def test_free_then_use_then_free_again() -> None:
    c = _checker()
    c.used("mm#1", "mmget")  # not freed yet: nothing
    assert not c.is_freed("mm#1")
    c.freed("mm#1", "freed by mmdrop")
    assert c.is_freed("mm#1")
    assert not c.is_freed("mm#2")
    assert c.violations == []
    assert c.events == [Event(7, "t", "free", "mm#1", "mm#1 freed: freed by mmdrop")]
    c.used("mm#1", "mmget")
    c.freed("mm#1", "a second mmdrop")
    assert _records(c) == [
        ("use-after-free", 7, ("t",), (), "mmget touched mm#1 after it was freed by mmdrop"),
        (
            "double-free",
            7,
            ("t",),
            (),
            "mm#1 freed (a second mmdrop) after it was freed by mmdrop",
        ),
    ]
    # the second free is not a free event, and the first reason stays
    assert [e.kind for e in c.events] == ["free", "violation", "violation"]
    c.used("mm#1", "mmput")
    assert c.violations[-1].detail == "mmput touched mm#1 after it was freed by mmdrop"
    assert c.kinds() == ["use-after-free", "double-free"]


def test_removed_twice_is_a_double_free() -> None:
    c = _checker()
    c.removed_twice("umem T", "from the region tree")
    assert c.violations == [
        Violation("double-free", 7, ("t",), (), "umem T removed from the region tree twice")
    ]
    assert c.events == [
        Event(7, "t", "violation", "double-free", c.violations[0].describe(), None)
    ]


def test_slept_in_nonblock_names_the_wait_and_the_primitive() -> None:
    c = _checker()
    c.slept_in_nonblock("Mutex 'umem_mutex'", "odp's invalidate_range_start of [0x0, 0x1000)")
    assert c.violations == [
        Violation(
            "sleep-in-nonblock",
            7,
            ("t",),
            (),
            "odp's invalidate_range_start of [0x0, 0x1000) may sleep on Mutex 'umem_mutex'",
        )
    ]


def test_insert_after_release_double_queue_and_lock_held_at_exit() -> None:
    c = _checker()
    c.inserted_after_release("subscriber odp", "after the release walk began")
    c.double_queue("work w", "queued while already queued")
    c.lock_held_at_exit("fault-1", "Mutex 'm'")
    assert _records(c) == [
        (
            "insert-after-release",
            7,
            ("t",),
            (),
            "subscriber odp inserted after the release walk began",
        ),
        ("double-queue", 7, ("t",), (), "work w queued while already queued"),
        # the task that finished, not the current one
        (
            "lock-held-at-exit",
            7,
            ("fault-1",),
            (),
            "task fault-1 finished while holding Mutex 'm'",
        ),
    ]
    assert [(e.kind, e.key) for e in c.events] == [
        ("violation", "insert-after-release"),
        ("violation", "double-queue"),
        ("violation", "lock-held-at-exit"),
    ]


def test_mm_release_is_recorded_once_as_an_event() -> None:
    c = _checker()
    assert not c.is_mm_released
    c.fault_succeeded("T", "[0x0, 0x1000)")  # before the release: fine
    c.mm_released()
    assert c.is_mm_released is True
    assert c.events == [Event(7, "t", "mm-release", "mm", "the address space was released")]
    c.fault_succeeded("T", "[0x0, 0x1000)")
    assert _records(c) == [
        (
            "use-after-release",
            7,
            ("t",),
            (),
            "a fault on T [0x0, 0x1000) succeeded after the mm was released",
        )
    ]


def test_a_zap_leaves_no_stale_translation_and_only_existing_ones_are_zapped() -> None:
    ptes = {1: (10, 0, True), 2: (10, 0, True)}
    c = Checker(where=lambda: (3, "u"), page_lookup=ptes.get)
    c.translation_removed("T", 1)  # nothing there: no event
    assert c.events == []
    c.translation_installed("T", 1, (10, 0), True)
    c.translation_installed("T", 2, (10, 0), True)
    c.translation_removed("T", 2)
    assert c.events[-1] == Event(3, "u", "zap", "T", "T[0x2000] zapped", 0x2000)
    c.frame_freed((10, 0), "freed")  # T[1] still points there
    assert _records(c) == [
        (
            "stale-translation",
            3,
            ("u",),
            (0x1000,),
            "frame 10.0 was freed while T still translates 0x1000 to it",
        )
    ]
    c.translation_removed("T", 1)
    c.frame_freed((10, 0), "reused")  # nobody translates to it any more
    assert len(c.violations) == 1
    # a DMA through a zapped translation checks nothing
    c.dma("T", 1, write=True)
    assert len(c.violations) == 1


def test_a_violation_with_addresses_keys_its_event_by_the_first() -> None:
    c = _checker()
    v = c.violation("stale-dma", "why", (0x1000, 0x2000))
    assert v == Violation("stale-dma", 7, ("t",), (0x1000, 0x2000), "why")
    assert c.events == [Event(7, "t", "violation", "stale-dma", v.describe(), 0x1000)]
    # the same violation from another task, or with other addresses, is another one
    assert c.violation("stale-dma", "why", (0x1000,)) is not None
    assert c.violation("stale-dma", "why", (0x1000, 0x2000), tasks=("x",)) is not None
    assert c.violation("stale-dma", "why", (0x1000, 0x2000), step=2) is None
    assert len(c.violations) == 3


def test_a_violation_says_live_run_where_a_sim_s_says_its_step() -> None:
    """A live run numbers no steps (``step`` None): its violations say so in their text
    (the pin outside mutmut's selection is `tests/test_cli_run_live_steps.py`)."""
    live = Violation("starvation", None, ("fault",), (0x1000,), "retried")
    sim = Violation("starvation", 3, ("fault",), (), "retried")
    assert str(live) == "starvation at 0x1000 (live run, fault): retried"
    assert str(sim) == "starvation (step 3, fault): retried"
