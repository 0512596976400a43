"""The portfolio chooser: a fixed share of the schedule indices for each member.

Contract
    ``chooser="portfolio"`` (the default) assigns schedule index ``i`` (0-based, counted
    from 0 whatever ``start`` is) to the member ``PATTERN[i % len(PATTERN)]``, a fixed
    pattern that gives each member a fixed share (`shares`), as Coyote's default
    portfolio and shuttle's ``PortfolioRunner`` combine strategies:

    - ``random``: `RandomChooser(derive_seed(seed, i))`;
    - ``pct-d1`` .. ``pct-d5``: `PctChooser(derive_seed(seed, i), depth=d, k)`, with the
      ``k`` the runner estimates for pct (the same for every depth);
    - ``sweep``: `SweepChooser(j)`, the ``j``-th schedule with exactly one preemption,
      front to back (`odp_async.explore.sweep`), where ``j`` is the number of sweep
      slots before ``i`` (`ordinal`): a function of the program alone.  Once ``j``
      reaches the sweep's size (`Probes.sweep`, counted by one probe run), the sweep
      slots run ``random`` (seeded by ``i``).
    - ``dpor``: the ``j``-th execution of one source-DPOR search (`DporChooser`, pruned
      executions skipped), where ``j`` is the number of dpor slots before ``i``
      (`dpor_ordinal`): a function of the program alone.  Once that search has run every
      trace, the dpor slots that remain run ``random`` (seeded by ``i``), so every index
      is still a schedule; so do they once the search is given up because the program
      does not replay its own choices (`NondeterminismError`: no DPOR tree to walk).

    Why a sweep: a bug that needs one preemption at one point of a long run, in one
    task among many identical ones (SCTBench's ``twostage_100``: a reader started
    after 100 writers must run between the first writer's two stages), has odds of
    about 1/(N·k) per schedule under random and PCT, and DPOR reaches it after
    hundreds of traces per extra writer; the sweep, which takes identical fresh tasks
    as one alternative, reaches it at ordinal 103.

    Why fixed depths 1 to 5, not an adaptive depth: PCT's guarantee for a bug of depth
    ``d`` (probability at least 1/(n·k^(d-1)) per schedule) needs a depth of at least
    ``d``, and a larger depth divides it by ``k`` per extra level; the race cells of the
    model need 1 to 5 (``ctx-dereg-during-end`` under ``odp2014-ctx``: 4), so each depth
    gets its own share and every bug of depth at most 5 is searched at its own depth at
    1/9 of the rate a search that knew the depth would reach.  An adaptive depth would
    make schedule ``i`` depend on what ran before it, which the index-addressable
    members (and so ``jobs``, ``start``, executors) rule out.

    The seeded members are index-addressable: schedule ``i`` depends only on
    ``(seed, i)``, so with ``jobs > 1`` or an executor their indices run in worker
    chunks.  The dpor slots run in the parent process, between its waits for chunks, in
    index order (a DPOR search is sequential).  The first failure is the failing schedule
    of lowest index, whoever ran it, so the result is the same for every ``jobs``, every
    executor, and every split of a range by ``start``.  With ``start = s``, the dpor share
    first runs (uncounted, but checked for a failure: `DporShare.clean`) the dpor
    executions of the indices below ``s``.

    Completion: the first dpor slot whose search has no execution left, with every trace
    run, none failed and none cut by a preemption bound (`DporShare.verified`), is where
    the portfolio is complete when no schedule before it failed: `explore` and the matrix
    stop there (`odp_async.explore.runner` for ``jobs``, executors and run logs).

See also
    `odp_async.explore.runner`, `odp_async.explore.pct`, `odp_async.explore.dpor`.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from .._runtime.choosers import Chooser, RandomChooser
from .._runtime.footprint import hidden_write, tracking_session
from ..errors import NondeterminismError
from .config import CHOOSERS, ExploreConfig, derive_seed
from .dfs import PrunedExecution
from .dpor import DporChooser
from .fairness import fair_after
from .pct import PctChooser
from .sweep import SweepChooser
from .target import Execution, Target

__all__ = [
    "AHEAD_MAX",
    "FINDERS",
    "MEMBERS",
    "PATTERN",
    "PROBE_FINDERS",
    "DporShare",
    "Member",
    "Probes",
    "dpor_ordinal",
    "member_at",
    "ordinal",
    "seeded_chooser",
    "shares",
]


@attrs.frozen
class Member:
    """One member of the portfolio: `name` (as tokens and results show it), `kind`
    (``random``, ``pct``, ``sweep`` or ``dpor``) and, for pct, its `depth`."""

    name: str
    kind: str
    depth: int = 0


RANDOM: Final = Member("random", "random")
DPOR: Final = Member("dpor", "dpor")
SWEEP: Final = Member("sweep", "sweep")
PCT: Final = tuple(Member(f"pct-d{d}", "pct", d) for d in range(1, 6))

#: Every member, by name.
MEMBERS: Final[Mapping[str, Member]] = {m.name: m for m in (RANDOM, *PCT, SWEEP, DPOR)}

#: The probe runs pct and the portfolio make before schedule 1 (`Probes`), as a failure's
#: `found_by` names the one that failed when no schedule did: the run that never preempts
#: (`FifoChooser`), one of the seeded random ones, the sweep's base run (the portfolio).
PROBE_FINDERS: Final = ("fifo-probe", "random-probe", "sweep-probe")

#: Every name a failure's `found_by` may hold: a chooser that runs alone (``random``,
#: ``pct``, ``dfs``, ``dpor``), a portfolio's member (``pct-d4``, ``sweep``...) or a
#: probe run (`PROBE_FINDERS`).
FINDERS: Final = frozenset({*(c for c in CHOOSERS if c != "portfolio"), *MEMBERS, *PROBE_FINDERS})

#: Schedule index ``i`` runs ``PATTERN[i % len(PATTERN)]``: random, sweep and each pct
#: depth 1/9, dpor 2/9.  dpor comes early (index 1): on a small program its first
#: executions are the cheapest way to a bug of few preemptions.
PATTERN: Final[tuple[Member, ...]] = (
    RANDOM,
    DPOR,
    SWEEP,
    PCT[0],
    PCT[3],
    PCT[1],
    DPOR,
    PCT[2],
    PCT[4],
)

_DPOR_SLOTS: Final = tuple(k for k, m in enumerate(PATTERN) if m is DPOR)


def member_at(index: int) -> Member:
    """The member that runs schedule `index` (0-based)."""
    return PATTERN[index % len(PATTERN)]


def ordinal(index: int) -> int:
    """How many slots of schedule `index`'s member come before it (the dpor slot at
    `index` runs the DPOR search's execution of that ordinal, the sweep slot the sweep's
    schedule of that ordinal; counting from 0)."""
    member = member_at(index)
    cycles, rest = divmod(index, len(PATTERN))
    per_cycle = sum(1 for m in PATTERN if m is member)
    return cycles * per_cycle + sum(1 for m in PATTERN[:rest] if m is member)


def dpor_ordinal(index: int) -> int:
    """How many dpor slots come before schedule `index` (so the dpor slot at `index`
    runs the DPOR search's execution of that ordinal, counting from 0)."""
    cycles, rest = divmod(index, len(PATTERN))
    return cycles * len(_DPOR_SLOTS) + sum(1 for k in _DPOR_SLOTS if k < rest)


@attrs.frozen
class Probes:
    """What the explorer's probe runs measured of a program, before schedule 0: `k`,
    PCT's steps hint (every pct member's), and `sweep`, the number of one-preemption
    schedules of the sweep (`SweepChooser`'s `total` over its base run).  A function of
    the program and the seed alone, so every worker builds the same schedule ``i``."""

    k: int = 1
    sweep: int = 0


def shares() -> dict[str, float]:
    """Each member's share of the schedules."""
    out: dict[str, float] = {}
    for m in PATTERN:
        out[m.name] = out.get(m.name, 0.0) + 1 / len(PATTERN)
    return out


def seeded_chooser(config: ExploreConfig, index: int, probes: Probes) -> tuple[str, Chooser]:
    """(the member's name, its chooser) for a schedule `index` of a member that runs
    by index (every member but dpor); a dpor slot whose search is over, and a sweep slot
    past the sweep's end, run ``random`` the same way."""
    member = member_at(index)
    seed = derive_seed(config.seed, index)
    if member.kind == "pct":
        return member.name, PctChooser(seed, depth=member.depth, steps_hint=probes.k)
    if member.kind == "sweep":
        j = ordinal(index)
        if j < probes.sweep:
            return member.name, SweepChooser(j)
    return RANDOM.name, RandomChooser(seed)


#: The most executions `DporShare` runs ahead of its slots in one batch (one tracking
#: session); batches double from 1 up to this.
AHEAD_MAX: Final = 32


@attrs.define
class DporShare:
    """The dpor member's executions, in order: ``run(j)`` is the search's ``j``-th
    execution (ascending `j` only; the ones skipped over run unchecked), or None once
    the search has run every trace.  `exhausted` then says whether it ran every trace
    with nothing cut by a preemption bound.

    Batches: the search's executions run ahead of their slots, several at a time, in
    one tracking session (`odp_async._runtime.footprint.tracking_session`: `tracked`'s
    hooks go on the classes once per batch, not once per run, and come off before any
    other member's run, which sees no hook).  A batch is at most `AHEAD_MAX` executions,
    doubling from 1, never more than the caller says it may still ask for (``run``'s
    `wanted`), and ends at a failing execution, at the end of the search, and when
    ``run``'s `stop` says so (a wall-clock budget).  The executions are the same, in the
    same order, as run one per slot: execution ``j`` is a function of the program alone.
    """

    target: Target
    config: ExploreConfig
    chooser: DporChooser = attrs.field(init=False)
    #: How many executions `run` handed out or skipped over.
    next_ordinal: int = 0
    #: Pruned executions before the next one `run` hands out (counted as it hands out).
    pruned: int = 0
    #: True once `run` returned None (the search has no execution left).
    done: bool = False
    #: Why the search was given up (the program did not replay its own choices: its
    #: later slots run random), or None; set once `run` reaches that point.
    abandoned: str | None = None
    #: False once any execution of the search failed, the ones `run` skipped over
    #: included (a shard's below its ``start``): only a clean search proves anything.
    clean: bool = True
    #: Executions run ahead, in order, each with the pruned executions before it.
    _ahead: collections.deque[tuple[int, Execution]] = attrs.field(
        init=False, factory=collections.deque
    )
    #: Why the search stopped in a batch (`abandoned` once `run` reaches it).
    _abandon_at: str | None = attrs.field(init=False, default=None)
    _batch: int = attrs.field(init=False, default=1)
    _tail_pruned: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.chooser = DporChooser(
            self.config.preemption_bound,
            trust_primitives=self.config.trust_primitives and not self.target.scenario.needs_world,
            fair_after=fair_after(self.config.max_steps),
        )

    @property
    def exhausted(self) -> bool:
        return self.abandoned is None and self.chooser.is_exhaustive

    @property
    def verified(self) -> bool:
        """The search is over (`done`), ran every trace (`exhausted`) and none failed
        (`clean`): no schedule of the program has a violation (relative to the
        footprints), so the portfolio has nothing left to find."""
        return self.done and self.exhausted and self.clean

    def _fill(self, count: int, stop: Callable[[], bool] | None) -> None:
        """Run up to `count` (at least 1) more executions of the search into `_ahead`,
        in one tracking session."""
        pruned = 0
        with tracking_session():
            while self.chooser.has_more and self._abandon_at is None:
                try:
                    execution = self.target.run(self.chooser, max_steps=self.config.max_steps)
                except PrunedExecution:
                    pruned += 1
                    execution = None
                except NondeterminismError as e:
                    # a program that does not replay its own choices has no DPOR tree
                    self._abandon_at = str(e)
                    break
                hidden = hidden_write()
                if hidden is not None:  # state changed past the notes: no claim
                    self._abandon_at = hidden
                    break
                if execution is None:
                    continue
                self._ahead.append((pruned, execution))
                pruned = 0
                if len(self._ahead) >= count or execution.is_failure:
                    break
                if stop is not None and stop():
                    break
        self._tail_pruned += pruned  # past the last execution: counted at the search's end

    def _next(self, wanted: int, stop: Callable[[], bool] | None) -> Execution | None:
        if not self._ahead and self._abandon_at is None and self.chooser.has_more:
            self._fill(min(self._batch, max(wanted, 1)), stop)
            self._batch = min(2 * self._batch, AHEAD_MAX)
        if not self._ahead:
            self.abandoned = self._abandon_at
            self.pruned += self._tail_pruned
            self._tail_pruned = 0
            return None
        pruned, execution = self._ahead.popleft()
        self.pruned += pruned
        self.next_ordinal += 1
        self.clean = self.clean and not execution.is_failure
        return execution

    def run(
        self, ordinal: int, wanted: int | None = None, stop: Callable[[], bool] | None = None
    ) -> Execution | None:
        """The search's execution `ordinal` (None: the search is over).  `wanted`: how
        many executions, from `ordinal` on, the caller may still ask for (None: no bound
        it knows; a batch then runs up to `AHEAD_MAX`); `stop`: asked between the runs of
        a batch, True ends it (the caller's budget is spent)."""
        if ordinal < self.next_ordinal:
            raise ValueError(f"dpor execution {ordinal} already ran (next: {self.next_ordinal})")
        left = AHEAD_MAX if wanted is None else wanted + ordinal - self.next_ordinal
        while self.next_ordinal < ordinal:
            if self._next(left, stop) is None:
                self.done = True
                return None
            left -= 1
        execution = self._next(left, stop)
        self.done = execution is None
        return execution
