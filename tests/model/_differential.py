"""Every outcome of a small model scenario, by an unreduced search and by DPOR.

`outcomes(body, protocol, reduced=...)` runs ``body`` under every schedule one search
reaches and returns the set of (violation kinds, final-state digest) it saw.  Unreduced:
DPOR over unknown footprints (no step is independent of another: every interleaving of
the world's steps that matters to any of them runs).  Reduced: DPOR over the tracked
model's footprints (`odp_async.tracked`), the way `explore --chooser dpor` runs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from odp_async.explore.dpor import DporChooser
from odp_async.world import World, run_world
from tests._search import Search

Outcome = tuple[tuple[str, ...], int]


def digest(w: World) -> int:
    """A hash of the world's final state: page table, regions, device, frames, checker.

    Read through the tracked containers' plain ones (``_d``), so the digest notes nothing
    (a tracked container is no dict: ``dict.items(t)`` raises `TypeError`)."""
    mm = w.mm
    ptes = tuple(
        sorted(
            (vpn, None if p.frame is None else p.frame.id, p.writable)
            for vpn, p in mm.page_table._d.items()
        )
    )
    umems = tuple(
        sorted(
            (name, u.count, u.seq, u.dying, u.state.value) for name, u in w.ctx.umems._d.items()
        )
    )
    tables = tuple(
        sorted(
            (name, tuple(sorted(t.entries._d.items()))) for name, t in w.device.tables._d.items()
        )
    )
    return hash((ptes, umems, tables, w.memory.frames_in_use, mm.users, mm.is_dead))


def outcomes(
    body: Callable[[World], Awaitable[Any]],
    protocol: str,
    *,
    reduced: bool,
    budget: int = 20_000,
) -> tuple[set[Outcome], int, bool]:
    """(outcomes, traces run, complete) of one search of ``body`` under `protocol`."""

    async def scenario(w: World) -> int:
        result = await body(w)
        return hash((digest(w), repr(result)))

    chooser = DporChooser()
    seen: set[Outcome] = set()
    search = Search(
        chooser,
        lambda: run_world(scenario, protocol=protocol, chooser=chooser, noted_only=reduced),
        max_runs=budget,
        complete=False,
    )
    for run in search:
        kinds = tuple(sorted({v.kind for v in run.violations}))
        # a digest that raised would compare nothing
        assert run.sim.error is None, run.sim.error
        value = run.sim.value if isinstance(run.sim.value, int) else -1
        seen.add((kinds, value))
    return seen, search.runs, not chooser.has_more
