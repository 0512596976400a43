"""The explorer: run a target under many schedules, find a failure, hand back a token.

Contract
    `explore(target, config)` runs ``target`` once per schedule, chosen by ``config.chooser``:

    - ``random``: schedule ``i`` uses `StreamChooser(config.seed, i)`;
    - ``pct``: schedule ``i`` uses `PctChooser(derive_seed(config.seed, i), depth, k)`, with
      ``k`` the most choice points of a few seeded probe runs;
    - ``dfs``: one `DfsChooser` walks the schedule tree (bounded by
      ``preemption_bound``, or iteratively from 0 to ``max_preemptions``), with sleep-set
      and symmetry reduction unless ``reduction=False``; the result says whether the space
      was **complete** for the bound;
    - ``dpor``: one `DporChooser` (source-DPOR with sleep sets) walks the tree in this
      process; with ``jobs > 1`` or an executor its backtrack entries are handed out as
      subtrees that carry their sleep sets (`odp_async.explore.dpor_parallel`: the same
      results for every executor and worker count; it completes where the serial
      search does, with about its trace count).

    It stops at the first failing schedule (``stop_on_first``) or at the budget, and the
    portfolio also where it **completes**, as the matrix does: at the first dpor slot that
    finds its DPOR search over with every trace run, none failing and no preemption bound
    cutting one, provided no schedule before that slot failed (nothing is left to find).
    The result then counts the schedules below that slot and claims ``complete: N
    traces, no violation`` (`ExploreResult.traces`).  The failure comes with its replay
    token, and (``shrink``) a shrunk schedule and its token.  The probe runs (pct's and
    the portfolio's, before schedule 1) are runs of the program too: when none of the
    schedules fails but a probe run did, that run is the failure (`Failure.index` 0,
    ``violation in a probe run before schedule 1: <kind>``, `found_by` one of
    `PROBE_FINDERS`, shrunk, with a token that replays it; in `ExploreResult.failing`
    as 0), on every path (budget spent, Ctrl-C, a stall), and a portfolio's completion
    is withdrawn: a missed bug is never a pass.  A failing schedule always comes first,
    so no result that has one changes.  A program of the user's (what the search watch
    follows) gets one probe run more under every chooser, the FIFO schedule before the
    search, run again after it (`odp_async.explore.start_check`): a second run that goes
    otherwise leaves the search inconclusive (`ExploreResult.carried`).
    Schedule ``i`` of random and pct depends only on ``(seed, i)``, so with ``jobs=N`` the
    schedules run in worker processes, or with ``executor=`` on any `Executor` (a Dask
    cluster: `odp_async.explore.dask_executor`), and the results (which schedules fail,
    and how; the first failure is the one of lowest index, with the same token) are the
    same for every executor and worker count; dfs runs in this process, dpor as
    above.  Work goes out
    in chunks sized from the measured cost of a schedule; a failure cancels the chunks
    that cannot hold an earlier one (unless ``stop_on_first=False``: all failures, whose
    indices are in `ExploreResult.failing`).  ``start`` shards a search by index, and
    ``resume=FILE`` records completed chunks and skips them when run again.

    A portfolio's completion is the same for every ``jobs``, executor and run log: the
    parent runs the dpor slots in index order, so it finds the same completing index
    ``c``; it then submits nothing at or past ``c``, waits for the chunks still out,
    takes out what they ran at or past ``c`` and runs again here the part below ``c`` of
    the one chunk that straddles it, so the counts (schedules, steps) are a serial run's.
    The completion is withdrawn (not complete, the search goes on as before) if a chunk
    still out reports a failure, at any index (one past ``c`` contradicts the footprints:
    it is reported, not dropped, and only then can ``jobs`` change the result), or if the
    wall-clock budget stopped the schedules below ``c`` before they all ran.  A failure
    found with ``stop_on_first`` is counted the same way (`_settle_hit`): what chunks and
    the parent's dpor slots ran past the first failing index before it was known is
    taken out, the part below it of a chunk that straddles it runs again here, so
    `schedules`, `steps`, `pruned` and `failing` are a serial run's for every ``jobs``
    and executor (only `ExploreResult.per_worker`, who ran what, depends on timing).  A
    shard
    (``start = s``) stops at the same ``c`` when ``c >= s``; one that starts past ``c``
    stops at its first dpor slot, having run (uncounted, but checked) every trace below
    ``s``: a trace that failed there belongs to another shard's range, and this shard
    then claims nothing and runs its budget.

    A user program's state is watched between the search's runs, in this process and
    in every worker (`odp_async.explore.search_watch`, the pytest plugin's watch): runs
    that shared state (a lazily set module global, a mutated default, a user protocol's
    class attribute) leave the search with no verdict, under every chooser and ``jobs``:
    `ExploreResult.carried` says what changed, the verdict is ``inconclusive`` (never
    ``complete``, even with a failure found, which may come of that state), and a
    replayed prefix that ran otherwise (dpor's, dfs's `NondeterminismError`) is taken
    for that state's doing.  Built-in scenarios with built-in protocols are not watched.

    `check(fn, *args)` explores a plain async function (shuttle's ``check_random`` /
    ``check_pct`` / ``check_dfs`` in one call); with ``raise_on_failure`` a failure raises
    `ExplorationFailed` whose message is the failure's report.

    Unknown settings raise `InvalidArgument` naming them.  A target no other process can
    rebuild (a closure...) runs with ``jobs=1`` and gets no token (`Failure.no_token`
    says why); with ``jobs > 1`` it is refused with `InvalidArgument`.

Progress and interruption
    ``progress`` (a callable) receives a frozen `ProgressUpdate` (schedules done, the
    budget, failures found so far, seconds elapsed) at most every `PROGRESS_INTERVAL`
    seconds while exploring, and once at the end of the search.  Ctrl-C stops the
    exploration and raises `ExploreInterrupted` whose ``result`` is the partial
    `ExploreResult` (``interrupted`` set; the first failure found so far, unshrunk).
    While it runs, Ctrl-C is marked (`odp_async._runtime.interrupts.marking_ctrl_c`), so
    a `KeyboardInterrupt` the explored code raises itself is its ``error``, like a
    `SystemExit`; without the mark (another thread, an application's SIGINT handler)
    every `KeyboardInterrupt` is taken for Ctrl-C.  Uncaught, `ExploreInterrupted` ends
    a script with exit status 1, not 130 (CPython exits by SIGINT only for an exact
    `KeyboardInterrupt`):
    ``except ExploreInterrupted as e: ...; sys.exit(130)`` for the shell's convention.
    With ``jobs > 1`` the workers ignore SIGINT; the parent terminates them at once (an
    executor's `abort`: a Dask cluster cancels its futures).

Concurrency
    Blocking, CPU-bound; workers are processes (`odp_async.explore.executors`) or Dask
    workers, each rebuilding the target from its `TargetSpec` once.

See also
    `odp_async.explore.config`, `odp_async.explore.tokens`, `odp_async.explore.shrink`.
"""

from __future__ import annotations

import bisect
import os
import pickle
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import attrs

from .._runtime.budget import RunOutOfTime, spending
from .._runtime.choosers import (
    Chooser,
    FifoChooser,
    RandomChooser,
    ReplayChooser,
    StreamChooser,
    stream_choosers,
)
from .._runtime.footprint import hidden_write, tracking_session
from .._runtime.interrupts import marking_ctrl_c
from .._runtime.stall import StepInterrupt, StepStalled, halted, watching_steps
from ..check import Violation
from ..errors import (
    ExplorationFailed,
    ExplorationInconclusive,
    ExploreInterrupted,
    InvalidArgument,
    NondeterminismError,
)
from ..odp.protocols import OdpProtocol
from ..scenarios import Scenario, Verdict
from ..scenarios.model import unfinished_verdict
from .arguments import (
    require_bool,
    require_callable,
    require_instance,
    require_mapping,
    require_path,
    show,
)
from .claims import PROBE_RUN, carried_claim, claim_text, count, failure_at
from .config import ExploreConfig, check_fields, derive_seed, refuse_ignored
from .dfs import DfsChooser, PrunedExecution
from .dpor import DporChooser
from .dpor_parallel import HiddenWrite, explore_split
from .executors import Executor, InlineExecutor, ProcessExecutor
from .failures import describe_execution
from .fairness import fair_after
from .fingerprint import code_fingerprint
from .pct import PctChooser
from .portfolio import (
    PROBE_FINDERS,
    DporShare,
    Probes,
    dpor_ordinal,
    member_at,
    seeded_chooser,
)
from .runlog import Chunk, RunLog
from .search_watch import begin as begin_watch
from .search_watch import carried as carried_state
from .search_watch import watch_target
from .shrink import ShrinkResult, shrink
from .start_check import RERUN, StartCheck
from .sweep import SweepChooser
from .target import Execution, Target, TargetSpec
from .tokens import encode_token

__all__ = [
    "ExploreResult",
    "Failure",
    "ProgressUpdate",
    "check",
    "derive_seed",
    "explore",
    "explore_target",
]

#: Budgets below this run in this process whatever ``jobs`` says: starting worker
#: processes costs more than it saves (measured in benchmarks/bench_explore.py).
SERIAL_BELOW = 500

#: Random probe runs (besides one that never preempts) that estimate PCT's k.
PCT_PROBES = 8

#: How many of a failure's last steps `Failure.describe` lists.
STEPS_SHOWN = 20

#: How many failing schedules (the lowest indices) `ExploreResult.failures` lists, each
#: with its kind and token, with ``stop_on_first=False``.
FAILURES_LISTED = 20

#: The least time, in seconds, between two progress calls (at most ~10 calls a second).
PROGRESS_INTERVAL = 0.1


@attrs.frozen
class ProgressUpdate:
    """How far an exploration got: `done` schedules of `total` (the budget), `failures`
    (failing schedules) found so far, `elapsed` seconds since it started.  Neither `done`
    nor `failures` ever goes down from one update to the next: when a portfolio completes
    while chunks ran elsewhere, the schedules those chunks ran past the completion leave
    the result's count (`ExploreResult.schedules`) but stay counted here (they ran)."""

    done: int
    total: int
    failures: int
    elapsed: float


ProgressCallback = Callable[[ProgressUpdate], None]


@attrs.frozen
class Failure:
    """The first failing schedule of an exploration (or, when no schedule failed, the
    first failing probe run: `index` 0)."""

    #: 1-based: how many schedules it took; 0: no schedule failed, but a probe run did
    #: (pct and the portfolio run a few before schedule 1 to size their search:
    #: `found_by` is one of `PROBE_FINDERS`), reported rather than a pass.
    index: int
    execution: Execution
    schedule: tuple[int, ...]
    token: str | None
    shrunk: ShrinkResult | None = None
    shrunk_token: str | None = None
    #: Why there is no token (a target no other process can rebuild), or None.
    no_token: str | None = None
    #: The target and step bound it ran with: `describe` replays the failure with a
    #: trace to list its last steps (None: no step list).
    target: Target | None = attrs.field(default=None, eq=False, repr=False)
    max_steps: int = attrs.field(default=0, eq=False, repr=False)
    #: The chooser, or the portfolio's member (``pct-d4``, ``dpor``...), that found it.
    found_by: str | None = None

    @property
    def replay_token(self) -> str | None:
        """The token of the run everything about this failure describes (`shown`): the
        shrunk run's (`shrunk_token`) if shrunk, else the found run's (`token`, which
        always replays the run as found)."""
        return self.shrunk_token or self.token

    @property
    def shown(self) -> Execution:
        """The run everything about this failure describes: the shrunk run if shrunk (the
        one `shrunk_token` replays), else the found run."""
        return self.shrunk.execution if self.shrunk is not None else self.execution

    @property
    def violation(self) -> Violation:
        """The violation of the shown run (the shrunk one if shrunk; same kind as found)."""
        failure = self.shown.failure
        assert failure is not None
        return failure

    @property
    def found_violation(self) -> Violation:
        """The violation of the run as found, before shrinking."""
        failure = self.execution.failure
        assert failure is not None
        return failure

    @property
    def verdict(self) -> Verdict:
        """The shown run's verdict; for a world scenario `model_verdict`'s (a run that only
        raised is ``error``, never ``found``)."""
        return self._verdict_of(self.shown)

    def _verdict_of(self, execution: Execution) -> Verdict:
        if self.target is not None:
            return self.target.verdict_of(execution)
        return execution.verdict

    def traced(self) -> Execution:
        """The run `shown`, re-run once with a trace (what a report draws:
        ``write_html(failure.traced(), "f.html")``): the shrunk schedule's if shrunk, else
        the found one's.  Works without a token (a ``__main__`` function, a closure): it
        re-runs the target object in this process.  Falls back to the untraced run (which
        `write_html` refuses) when the failure carries no target or the re-run does not
        fail again.  Runs the target once; raises nothing."""
        if self.target is None or self.max_steps < 1:
            return self.shrunk.execution if self.shrunk is not None else self.execution
        target, schedule = self.target, self.schedule
        if self.shrunk is not None:
            target = target.with_params(**self.shrunk.params)
            schedule = self.shrunk.schedule
        try:
            traced = target.run(ReplayChooser(schedule), max_steps=self.max_steps, trace=True)
        except Exception:  # a report never fails: fall back to the untraced run
            return self.shown
        return traced if traced.failure is not None else self.shown

    def found_preemptions(self) -> int | None:
        """How many preemptions the failing schedule had as found: the shrinker's count
        (`ShrinkResult.preemptions_before`) if shrunk, else counted on a traced replay
        (`traced`; a preemption: another task picked when the one that ran the step
        before could go on).  None when that replay is not the run as found (a program
        whose runs are not a function of their schedule).  Runs the target at most once;
        raises nothing."""
        if self.shrunk is not None:
            return self.shrunk.preemptions_before
        return self._preemptions_in(self.traced())

    def _preemptions_in(self, traced: Execution) -> int | None:
        """The preemptions of `traced`, the unshrunk failure's traced replay, if it is the
        run as found (recorded with a trace, same schedule and steps); else None."""
        sim, found = traced.sim, self.execution.sim
        if sim.trace is None or (sim.schedule, sim.steps) != (found.schedule, found.steps):
            return None
        return len(sim.preemptions)

    def describe(self) -> str:
        """The report: the verdict and violation, the error leaves (type, message, task,
        user frame), a deadlock's blocked tasks, the last `STEPS_SHOWN` steps of the
        (shrunk, if shrunk) failing schedule, the shrink summary (unshrunk: the
        preemptions as found) and the replay command.  Replays the schedule once (with a
        trace) for the steps."""
        traced = self.traced()
        violation = traced.failure or self.violation
        at = failure_at(self.index)
        if self.found_by:
            at += f" (found by {self.found_by})"
        if self.shrunk is not None:
            at += f", shrunk to {traced.sim.steps} steps"
        lines = [f"{self._verdict_of(traced)} {at}: {violation.describe()}"]
        lines.extend(describe_execution(traced, max_steps_shown=STEPS_SHOWN).splitlines()[1:])
        if self.shrunk is not None:
            s = self.shrunk
            minimal = " (minimal: none with fewer fails so)" if s.minimal else ""
            lines.append(
                f"shrunk: {s.preemptions_before} -> {s.preemptions_after} preemptions"
                f"{minimal}, failure at step {s.steps_before} -> {s.steps_after} "
                f"({s.attempts} replays)"
            )
        else:
            preemptions = self._preemptions_in(traced)
            if preemptions is not None:
                lines.append(
                    f"not shrunk: {count(preemptions, 'preemption')}, failure at step "
                    f"{violation.step}"
                )
        token = self.replay_token
        if token:
            lines.append(f"replay: odp-async replay {token}")
        elif self.no_token:
            lines.append(f"no replay token: {self.no_token}")
        return "\n".join(lines)


@attrs.frozen
class FailingRun:
    """One failing schedule of a search that ran its whole budget (``stop_on_first=False``):
    its 1-based `index` (0: a probe run, when no schedule failed: `Failure.index`), its
    violation `kind` and the `token` replaying it as found (not shrunk); `kind` and
    `token` None when its schedule was not kept (`no_token` says why, as it does for a
    target no other process can rebuild)."""

    index: int
    kind: str | None
    token: str | None
    found_by: str | None = None
    no_token: str | None = None


@attrs.frozen
class ExploreResult:
    """What an exploration did and found.

    `bound` means the same on a hit and a miss: the highest preemption level whose
    schedules were all explored (dfs with iterative bounding: the last level it
    finished; a fixed bound: that bound once complete), None when no level was finished
    or the chooser does not explore by level (random, pct, portfolio; dpor: its
    configured bound).  `found_bound` is the level at which the failure was found (dfs);
    a failure found while exploring level 2 gives ``bound=1, found_bound=2``.
    `complete` says the whole space (within the bound) ran: dfs, dpor, or a portfolio
    whose dpor share ran every trace with no failure in any schedule it ran (it stopped
    there: `schedules` counts the schedules below the dpor slot that found the search
    over, `traces` the dpor member's traces; with ``stop_on_first=False`` it runs its
    whole budget, and is complete when, besides, no schedule failed).
    """

    label: str
    config: ExploreConfig
    schedules: int
    pruned: int
    steps: int
    complete: bool
    bound: int | None
    failure: Failure | None
    elapsed: float
    #: True when Ctrl-C stopped it (`ExploreInterrupted`): a partial result.
    interrupted: bool = False
    #: How many schedules each worker ran (``main``: this process; ``resumed``: taken
    #: from a run log), in order of name; of the counted schedules only (they add up to
    #: `schedules`).  Which worker ran which chunk depends on timing: the only count
    #: here that may differ between two runs of the same search.
    per_worker: Mapping[str, int] = attrs.field(factory=dict)
    #: The 1-based indices of every failing schedule that ran, ascending (with
    #: ``stop_on_first``, the failures found before the search stopped); ``(0,)`` when
    #: none failed but a probe run did (the failure's `Failure.index` 0).
    failing: tuple[int, ...] = ()
    #: Where the schedules ran (`Executor.description`).
    executor: str = "this process"
    #: The chooser, or the portfolio's member, that found the failure (None: no failure).
    found_by: str | None = None
    #: The preemption level of the first failure's schedule when the chooser explores by
    #: level (dfs: the level being explored when it was found), else None.
    found_bound: int | None = None
    #: True when the wall-clock budget (`ExploreConfig.time`) stopped the search.
    out_of_time: bool = False
    #: The Mazurkiewicz traces a complete search ran (the N of its claim ``complete: N
    #: traces, no violation``): dpor's `schedules`, or the portfolio's dpor member's
    #: traces when the portfolio completed; None otherwise (a search not complete, or
    #: dfs, random and pct, which count schedules, not traces).
    traces: int | None = None
    #: True when a dfs or dpor search ran an execution that stopped at the step bound
    #: (``max_steps``): what a fair continuation ran after it is not part of the search,
    #: so the search is never `complete` (its claim says why).
    truncated: bool = False
    #: How many schedules reached the step bound and did not finish under a fair
    #: continuation either (`Execution.unfinished`): runs with no verdict.
    unfinished: int = 0
    #: The line saying which step of which task did not return within
    #: `ExploreConfig.stall` seconds, where the search stopped (`odp_async._runtime.stall`):
    #: that schedule has no verdict, so neither has the search (`inconclusive`); None
    #: when no step stalled.
    stalled: str | None = None
    #: The run that stalled (with `stalled`): ``schedule I`` (1-based, as a failure's
    #: index), ``a probe run before the first schedule`` (pct and the portfolio size
    #: their search on a few runs first) or ``a replay of schedule I (the failure
    #: found)`` (shrinking it; ``a replay of the failing probe run (the failure
    #: found)`` for a failure of index 0); None when no step stalled.
    stalled_run: str | None = None
    #: What of a user program's state changed between its runs (`search_watch`): its
    #: runs did not all start from the same state, so the search has no verdict
    #: (`inconclusive`, never `complete`, even with a failure found); None: none seen.
    carried: str | None = None
    #: With ``stop_on_first=False``: the first `FAILURES_LISTED` of `failing`, each with
    #: its own kind and token (empty with ``stop_on_first``: `failure` is the one found).
    failures: tuple[FailingRun, ...] = ()
    #: Runs of the program made before the schedules, not counted in `schedules`: for a
    #: program of the user's, the FIFO schedule's run before the search
    #: (`odp_async.explore.start_check`, any chooser); then the probe runs that size
    #: pct's and the portfolio's schedules (``PCT_PROBES + 1``; the portfolio's sweep one
    #: more), fewer when the wall-clock budget ran out among them (then no schedule ran).
    probes: int = 0
    #: Why the search ran in this process although ``jobs`` asked for worker processes
    #: (`serial_why`: fewer than `SERIAL_BELOW` schedules, a target no other process can
    #: rebuild), or None (``jobs`` is 1, or it used them); the results are the same.
    serial: str | None = None

    @property
    def verdict(self) -> Verdict:
        """`Verdict.INCONCLUSIVE` when the runs shared state (`carried`); else the
        failure's verdict; with none, `Verdict.INCONCLUSIVE` when the search is
        `inconclusive`, else `Verdict.CLEAN` (within the budget: `claim` says how far)."""
        if self.carried is not None:
            return Verdict.INCONCLUSIVE
        if self.failure is not None:
            return self.failure.verdict
        nothing = self.schedules == 0 and not self.complete
        return unfinished_verdict(
            Verdict.CLEAN, self.unfinished > 0 or nothing or self.stalled is not None
        )

    @property
    def inconclusive(self) -> bool:
        """No failure, but `unfinished` schedules reached the step bound without finishing
        (a livelock, or a program longer than ``max_steps``), or a step did not return
        within the stall limit (`stalled`), or no schedule ran and the search is not
        complete (``nothing explored``): neither a pass nor a failure.  `verdict` is then
        `Verdict.INCONCLUSIVE` (never ``clean``), the claim says why, the CLI exits 5 (2
        for nothing explored) and ``check(raise_on_failure=True)`` and explored tests
        raise `ExplorationInconclusive`."""
        return self.verdict is Verdict.INCONCLUSIVE

    @property
    def claim(self) -> str:
        """What the search establishes, in one line; never more than it showed.

        - a failure: ``"violation at schedule i: <kind>"`` (the kind shown, e.g. ``error``),
          or ``"violation in a probe run before schedule 1: <kind>"`` when no schedule
          failed but a probe run did (`Failure.index` 0);
        - no failure, but `unfinished` schedules: ``"inconclusive: K of N schedules
          reached the step bound of S steps unfinished, ..."`` (`inconclusive`);
        - no schedule ran: ``"nothing explored (... before the first schedule)"`` (it
          establishes nothing; the CLI exits 2, not 0);
        - ``dpor`` that explored every Mazurkiewicz trace (no bound cut anything):
          ``"complete: N traces, no violation"``;
        - the ``portfolio`` that stopped where its dpor member had explored every trace:
          ``"complete: N traces, no violation"`` (N: `traces`, the dpor member's; the
          matrix's words for the same cell);
        - ``dfs`` that explored every schedule within its bound:
          ``"complete for preemption bound b: N schedules, no violation"``;
        - a systematic search that ended but whose preemption bound cut schedules:
          ``"preemption bound b reached: N traces, no violation found (not complete)"``;
        - a dfs or dpor search that ended, one of whose runs stopped at the step bound
          (`truncated`): ``"no violation in N traces (a run reached the step bound of S
          steps, not complete)"``;
        - otherwise (a random or pct search, a budget spent, an interruption):
          ``"no violation in N schedules (budget reached, not complete)"`` (``time
          budget reached`` after `ExploreConfig.time`, or ``interrupted``).

        Completeness is relative to the footprints (a step whose accesses are not all
        recorded conflicts with every other: `odp_async._runtime.footprint`).  The
        wording is `odp_async.explore.claims.claim_text`'s, shared with the matrix; a
        count of one is singular (``complete: 1 trace, no violation``).
        """
        return self.claim_for()

    def claim_for(self, raise_steps: str = "--max-steps") -> str:
        """`claim`, naming `raise_steps` as the setting that raises the step bound
        (``@explore_test(max_steps=...)`` for an explored test) where it says to."""
        failure = self.failure
        if self.carried is not None:
            seen = None if failure is None else (failure.index, failure.violation.kind)
            return carried_claim(self.carried, self.schedules, seen)
        return claim_text(
            self.schedules,
            chooser=self.config.chooser,
            violation=None if failure is None else (failure.index, failure.violation.kind),
            complete=self.complete,
            traces=self.traces,
            bound=self.bound,
            # A bounded search that ran out of entries before the budget: the bound cut it.
            cut_by_bound=self.schedules < self.config.schedules and not self.out_of_time,
            interrupted=self.interrupted,
            out_of_time=self.out_of_time,
            truncated=self.truncated,
            max_steps=self.config.max_steps,
            unfinished=self.unfinished,
            stalled=self.stalled,
            stalled_run=self.stalled_run,
            raise_steps=raise_steps,
        )

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.elapsed if self.elapsed > 0 else 0.0


def explore(
    scenario: str | Scenario | Callable[..., Awaitable[Any]],
    protocol: str | type[OdpProtocol] | None = None,
    config: ExploreConfig | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    executor: Executor | None = None,
    resume: str | os.PathLike[str] | None = None,
    **config_fields: Any,
) -> ExploreResult:
    """Explore a scenario: a built-in name, ``classic:<name>``, a ``.toml`` file, a
    `Scenario`, an async function or ``"module:qualname"``; `protocol` a built-in name,
    ``"module:Class"`` or an `OdpProtocol` subclass.  ``config_fields`` override
    ``config`` (an unknown one raises `InvalidArgument`).  `executor` and `resume`: see
    `explore_target`.  Blocks until done; raises `ExploreInterrupted` on Ctrl-C, and
    `InvalidArgument` for a bad value of any keyword and for a setting the chooser would
    ignore (`odp_async.explore.config.refuse_ignored`: ``depth`` is for pct, ``jobs``
    not for dfs...)."""
    require_instance("config", config, ExploreConfig, "an ExploreConfig")
    require_mapping("options", options)
    _check_keywords(progress, executor, resume)
    config = (config or ExploreConfig()).evolve(**config_fields)
    refuse_ignored(config)
    target = Target.resolve(scenario, protocol, options)
    return explore_target(target, config, progress=progress, executor=executor, resume=resume)


def check(
    fn: Callable[..., Awaitable[Any]] | str,
    *args: Any,
    chooser: str = "portfolio",
    schedules: int = 1000,
    seed: int = 0,
    raise_on_failure: bool = False,
    progress: ProgressCallback | None = None,
    executor: Executor | None = None,
    resume: str | os.PathLike[str] | None = None,
    **config_fields: Any,
) -> ExploreResult:
    """Explore the async function `fn` (or ``"module:qualname"``), called as
    ``fn(*args)`` once per schedule under the sim.

    `chooser` (``portfolio``, the default; ``random``, ``pct``, ``dfs``, ``dpor``),
    `schedules`, `seed` and ``config_fields`` (any other `ExploreConfig` field:
    ``depth``, ``preemption_bound``, ``jobs``,
    ``max_steps``, ``start``...) set the search; `executor` and `resume`: see
    `explore_target`.  An exception or a deadlock is a failure; a run past
    ``max_steps`` that does not finish under a fair continuation either is
    inconclusive (`ExploreResult.inconclusive`: no verdict); with `raise_on_failure` a
    failure raises `ExplorationFailed` (an `AssertionError`) whose message is the
    failure's report, and an inconclusive result `ExplorationInconclusive` (an
    `AssertionError` too, not a violation), else they are in the result.  Raises
    `InvalidArgument` for bad settings and for a setting the chooser would ignore
    (`odp_async.explore.config.refuse_ignored`: ``check(fn, chooser="random",
    depth=2)``, ``chooser="dfs", jobs=2``), `ExploreInterrupted` on Ctrl-C.  Blocks until
    done.
    """
    check_fields(config_fields)
    require_bool("raise_on_failure", raise_on_failure)
    _check_keywords(progress, executor, resume)
    config = ExploreConfig(chooser=chooser, schedules=schedules, seed=seed, **config_fields)
    refuse_ignored(config)
    target = Target.resolve(fn, args=tuple(args))
    result = explore_target(target, config, progress=progress, executor=executor, resume=resume)
    # the message names the keyword a caller of check() raises the bound with
    claim = result.claim_for("max_steps=...")
    if raise_on_failure and result.carried is not None:
        raise ExplorationInconclusive(f"{result.label}: {claim}", result)
    if raise_on_failure and result.failure is not None:
        raise ExplorationFailed(result.failure.describe(), result)
    if raise_on_failure and result.inconclusive:
        raise ExplorationInconclusive(f"{result.label}: {claim}", result)
    return result


def explore_target(
    target: Target,
    config: ExploreConfig,
    progress: ProgressCallback | None = None,
    *,
    executor: Executor | None = None,
    resume: str | os.PathLike[str] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ExploreResult:
    """Explore `target` under `config` (see the module docstring).

    `clock` (seconds, monotonic) measures `elapsed` and the wall-clock budget
    (``config.time``); a test may pass a fake one.

    `executor` runs random and pct schedules in chunks elsewhere (a `ProcessExecutor`, a
    Dask cluster's `DaskExecutor`...; the caller closes it); by default ``jobs > 1``
    uses worker processes of this machine, except for a target no other process can
    rebuild (a closure, a function of a ``__main__`` script), which every chooser runs
    in this process whatever ``jobs`` says (the same results).  `resume` names a run
    log (random, pct): the chunks it records are not run again, and each chunk that
    completes is added to it, so an interrupted run continues where it stopped
    (`odp_async.explore.runlog`).
    dpor with ``jobs > 1`` or an `executor` is split into subtrees
    (`odp_async.explore.dpor_parallel`; a target no other process can rebuild runs them
    in this process).  Raises `InvalidArgument` for a bad value of any argument, for dfs
    with an executor, for dfs or dpor with a `resume` file or a ``start``, and for a
    target no other process can rebuild with a `resume` file or an executor other than
    `InlineExecutor`.
    """
    if not isinstance(target, Target):
        raise InvalidArgument(f"target must be a Target (Target.resolve), got {show(target)}")
    if not isinstance(config, ExploreConfig):
        raise InvalidArgument(f"config must be an ExploreConfig, got {show(config)}")
    _check_keywords(progress, executor, resume)
    require_callable("clock", clock, optional=False)
    # A target no other process can rebuild (a closure, a function of a __main__
    # script) runs in this process whatever `jobs` says, under every chooser (the results
    # never depend on `jobs`, nor on the executor); an executor of other processes or a
    # run log needs its name.
    check_systematic(config, executor is not None, resume)
    remote = executor is not None and not isinstance(executor, InlineExecutor)
    if (remote or resume is not None) and not target.is_named:
        why = target.unnamed or f"scenario {target.scenario.name!r} has no name"
        what = "an executor" if remote else "a resume file"
        raise InvalidArgument(
            f"{what} needs a target other processes can rebuild: {why}; or explore it without one"
        )
    tally = _Tally(config.schedules, progress, clock(), clock=clock, limit=config.time)
    tally.serial = serial_why(target, config, executor)
    begin_watch(target)
    searched: tuple[bool, int | None, Failure | None] | None = None
    otherwise: NondeterminismError | None = None
    try:
        # Ctrl-C, told apart from the program's KeyboardInterrupt; a step that never
        # returns (`_stalled`)
        with marking_ctrl_c(), watching_steps(config.stall_limit):
            budget = _budget_in_a_run(tally) if config.time is not None else None
            start: StartCheck | None = None
            try:
                with spending(budget):
                    # a user program's FIFO schedule, run before the search (under its
                    # budget) and again after it
                    if watch_target(target) is not None:
                        start = _start_check(target, config, tally)
                    searched = _search(target, config, tally, executor, resume)
            except RunOutOfTime:
                tally.running = None
            except NondeterminismError as e:
                if isinstance(e, HiddenWrite):
                    raise
                otherwise = e
            # the watch names what changed where it can; the rerun catches the rest
            tally.carried = tally.carried or carried_state(target)
            if start is not None and tally.carried is None:
                tally.carried = _rerun(target, config, tally, start)
    except KeyboardInterrupt:
        raise ExploreInterrupted(_partial(target, config, tally)) from None
    except StepStalled as stalled:
        return _stalled(target, config, tally, str(stalled))
    if otherwise is not None:
        # a run that replays a prefix ran otherwise, since it started from state an
        # earlier run left: that state is the cause, said as the result's (no verdict)
        if (tally.carried or carried_state(target)) is None:
            raise otherwise
        return tally.result(target, config, False, None, _unshrunk(target, config, tally))
    if searched is None:
        return _out_of_time(target, config, tally)
    return tally.result(target, config, *searched)


def _unshrunk(target: Target, config: ExploreConfig, tally: _Tally) -> Failure | None:
    """The failure found (``tally.hit``), unshrunk: shown with an inconclusive result
    whose shrinking met a replay that ran otherwise (None if there is none, or if even
    that cannot be made)."""
    if tally.hit is None:
        return None
    try:
        return make_failure(
            target,
            config.evolve(shrink=False),
            *tally.hit,
            tally.hit_execution,
            found_by=tally.found_by,
        )
    except Exception:  # (a token that cannot be made: the result stays inconclusive)
        return None


def _rerun(
    target: Target,
    config: ExploreConfig,
    tally: _Tally,
    start: StartCheck,
) -> str | None:
    """`StartCheck.after`: what the FIFO schedule run again says (None: the same), once
    a schedule ran.  Made whatever the time budget says (one run past it at most): a
    search cut by the clock still claims ``no violation`` in what it ran, which state
    carried between its runs may have hidden."""
    if tally.done == 0:
        return None  # nothing explored: no claim to check
    tally.running = RERUN
    try:
        return start.after(target, config)
    finally:
        tally.running = None


def _start_check(target: Target, config: ExploreConfig, tally: _Tally) -> StartCheck:
    """Run the FIFO schedule once before the search (`StartCheck`); a failure of that
    run is kept as a probe run's (``tally.probe_hit``: the search's failure if none of
    its own schedules fails, under every chooser).  Raises `StepStalled` if a step of it
    stalled: the search is then not run."""
    tally.running = PROBE_RUN
    tally.probes += 1
    start = StartCheck.before(target, config)
    if start.stalled is not None:
        raise StepStalled(start.stalled)  # (named by ``tally.running``)
    failed = start.failed
    if failed is not None and tally.probe_hit is None:
        tally.probe_hit = ProbeHit(failed.sim.schedule, failed, PROBE_FINDERS[0])
    if tally.limit is not None and tally.time_is_up(ran=1):
        # as pct's probe runs: no schedule starts past the budget (nothing explored,
        # unless this run failed: `_out_of_time` adopts it)
        raise RunOutOfTime("the time budget ran out in the probe runs")
    tally.running = None
    return start


def _check_keywords(progress: object, executor: object, resume: object) -> None:
    """`InvalidArgument` for a `progress` that is not callable, an `executor` that is not
    an `Executor`, a `resume` that is not a path (each may be None)."""
    require_callable("progress", progress)
    require_instance("executor", executor, Executor, "an Executor (InlineExecutor...)")
    require_path("resume", resume)


def _search(
    target: Target,
    config: ExploreConfig,
    tally: _Tally,
    executor: Executor | None,
    resume: str | os.PathLike[str] | None,
) -> tuple[bool, int | None, Failure | None]:
    """`explore_target`'s search: (complete, bound, the failure, shrunk)."""
    complete, bound = False, None
    if config.chooser == "dfs":
        complete, bound = _explore_dfs(target, config, tally)
    elif config.chooser == "dpor" and (config.jobs > 1 or executor is not None):
        complete, bound = _explore_dpor_split(target, config, tally, executor)
    elif config.chooser == "dpor":
        complete, bound = _explore_dpor(target, config, tally)
    else:
        complete = _explore_seeded(target, config, tally, executor, resume)
    if _adopt_probe_failure(tally):
        complete = False
    tally.report(force=True)
    failure = None
    if tally.hit is not None:
        replayed = f"schedule {tally.hit[0]}" if tally.hit[0] else "the failing probe run"
        tally.running = f"a replay of {replayed} (the failure found)"
        failure = make_failure(
            target, config, *tally.hit, tally.hit_execution, found_by=tally.found_by
        )
        tally.running = None
    return complete, bound, failure


def check_systematic(
    config: ExploreConfig, on_executor: bool, resume: str | os.PathLike[str] | None
) -> None:
    """Raise `InvalidArgument` for what dfs and dpor cannot do: dfs on an executor
    (`on_executor`), either with a `resume` file or a ``start``.  (The CLI asks before it
    starts a cluster.)"""
    if config.chooser == "dfs" and on_executor:
        raise InvalidArgument(
            "dfs runs in this process: use --chooser dpor (split into subtrees), portfolio, "
            "random or pct on an executor"
        )
    if config.chooser in ("dfs", "dpor") and (resume is not None or config.start):
        what = "resume" if resume is not None else f"start={config.start}"
        raise InvalidArgument(
            f"{config.chooser} cannot {what}: a run log and --start index the schedules of "
            "a seeded search (random, pct), not the traces of a tree"
        )


def serial_why(
    target: Target | None, config: ExploreConfig, executor: Executor | None = None
) -> str | None:
    """Why a search whose ``jobs`` asks for worker processes runs in this process
    instead (`ExploreResult.serial`), or None: ``jobs`` is 1, it uses them, or it runs on
    the given `executor`.  A random, pct or portfolio search of fewer than `SERIAL_BELOW`
    schedules, or of a `target` no other process can rebuild (None: not asked); the
    results are the same either way."""
    if config.jobs == 1 or config.chooser == "dfs" or executor is not None:
        return None
    if target is not None and not target.is_named:
        why = target.unnamed or f"scenario {target.scenario.name!r} has no name"
        return f"no other process can rebuild the target ({why})"
    if config.chooser in ("random", "pct", "portfolio") and config.schedules < SERIAL_BELOW:
        return (
            f"{count(config.schedules, 'schedule')} run in this process (worker processes "
            f"start from {SERIAL_BELOW} schedules)"
        )
    return None


def _budget_in_a_run(tally: _Tally) -> Callable[[], bool]:
    """What a schedule running in this process asks between steps (`spending`): whether
    the wall-clock budget is spent, the first schedule's run included; never once a
    failure is known (the search then finishes what it runs: the failure is reported,
    shrunk, as without a budget)."""

    def out_of_time() -> bool:
        return tally.hit is None and tally.time_is_up(ran=1)

    return out_of_time


def _out_of_time(target: Target, config: ExploreConfig, tally: _Tally) -> ExploreResult:
    """The result of a search whose budget ran out inside a schedule (`RunOutOfTime`):
    the schedules that ended before it, not complete, ``out_of_time``; that schedule
    counts for nothing; with no failure of its own, a probe run's
    (`_adopt_probe_failure`)."""
    tally.out_of_time = True
    _adopt_probe_failure(tally)
    failure = None
    # (a schedule's failure is not expected here: no run is abandoned once one failed)
    if tally.hit is not None:
        failure = make_failure(
            target,
            config.evolve(shrink=False),
            *tally.hit,
            tally.hit_execution,
            found_by=tally.found_by,
        )
    return tally.result(target, config, False, None, failure)


def _partial(target: Target, config: ExploreConfig, tally: _Tally) -> ExploreResult:
    """The result of an interrupted exploration: what ran, the first failure unshrunk
    (with none of its own, a probe run's: `_adopt_probe_failure`)."""
    _adopt_probe_failure(tally)
    failure = None
    if tally.hit is not None:
        try:
            failure = make_failure(
                target,
                config.evolve(shrink=False),
                *tally.hit,
                tally.hit_execution,
                found_by=tally.found_by,
            )
        except (KeyboardInterrupt, Exception):  # a second Ctrl-C: no failure detail
            failure = None
    return tally.result(target, config, False, None, failure, interrupted=True)


def _stalled(target: Target, config: ExploreConfig, tally: _Tally, line: str) -> ExploreResult:
    """The result of a search a stalled step stopped: what ran, no verdict for the
    stalled schedule; a failure found before it (a run that ended) stays, unshrunk.

    For chunks run elsewhere (`_explore_chunks`: ``tally.stall_cut``), first count what
    a serial search counts, which stops at the stalled schedule: what ran at or past it
    is taken out, what straddles it runs again below it (here, under a fresh watch: the
    stalled one halts its thread's later runs).  With ``stop_on_first`` and a failure
    below the stalled schedule, the serial search stops at that failure and never sees
    the stall: so does this one (the failure shrunk as usual, no stall line).  With no
    failure found, a probe run's stays too (`_adopt_probe_failure`)."""
    failure = None
    stalled: str | None = line
    run = _stalled_run(tally)
    try:
        with marking_ctrl_c(), watching_steps(config.stall_limit):
            if tally.stall_cut is not None:
                cut, hint, stalled = tally.stall_cut
                if config.stop_on_first and tally.hit is not None and tally.hit[0] <= cut:
                    _count_below(target, config, hint, tally, tally.hit[0])
                    stalled = None
                else:
                    _count_below(target, config, hint, tally, cut)
                    if tally.hit is not None and tally.hit[0] > cut:
                        # found past the stalled schedule only: a serial search never
                        # gets there (the counts never depend on the workers)
                        tally.hit = tally.hit_execution = tally.found_by = None
            _adopt_probe_failure(tally)
            if tally.hit is not None:
                settings = config if stalled is None else config.evolve(shrink=False)
                failure = make_failure(
                    target, settings, *tally.hit, tally.hit_execution, found_by=tally.found_by
                )
    except StepStalled:  # its replay stalled too: no failure detail
        failure = None
    except KeyboardInterrupt:
        raise ExploreInterrupted(_partial(target, config, tally)) from None
    return tally.result(target, config, False, None, failure, stalled=stalled, stalled_run=run)


def _stalled_run(tally: _Tally) -> str:
    """`ExploreResult.stalled_run` of the stall that stopped the search `tally` counts."""
    if tally.stall_cut is not None:  # chunks run elsewhere: the first stalled schedule
        return f"schedule {tally.stall_cut[0] + 1}"
    if tally.running is not None:  # a probe, or a replay of the failure found
        return tally.running
    if tally.stalled_index is not None:  # a seeded search's schedule (0-based)
        return f"schedule {tally.stalled_index + 1}"
    # dfs and dpor count their executions in order, as they end: the next one stalled
    return f"schedule {tally.done + 1}"


@attrs.frozen
class _Merged:
    """A chunk merged into a `_Tally`: who ran it, the indices ``[first, end)`` it went
    through, and what it counted."""

    worker: str
    first: int
    end: int
    ran: int
    steps: int
    failing: tuple[int, ...]
    unfinished: int = 0
    #: Executions a portfolio's dpor slot pruned on its way (`_Tally.pruned`).
    pruned: int = 0
    #: A dpor slot the parent ran (`tally.add`): counted as this process's, not in
    #: `_Tally.per_worker`.
    inline: bool = False


@attrs.define
class _Tally:
    """What the exploration did so far; reports progress (throttled)."""

    total: int
    callback: ProgressCallback | None
    start: float
    done: int = 0
    pruned: int = 0
    steps: int = 0
    failures: int = 0
    #: Schedules that reached the step bound unfinished (`Execution.unfinished`).
    unfinished: int = 0
    hit: _Hit | None = None
    #: The execution of `hit`, when it ran in this process.
    hit_execution: Execution | None = None
    #: The 1-based indices of the failing schedules.
    failing: list[int] = attrs.field(factory=list)
    #: The schedule and finder of the failing schedules of lowest index (at most
    #: `FAILURES_LISTED`), by index: what `FailingRun` replays.
    found: dict[int, tuple[tuple[int, ...], str | None]] = attrs.field(factory=dict)
    #: Schedules run per worker other than this process (`workers` adds this one's).
    per_worker: dict[str, int] = attrs.field(factory=dict)
    #: Where the schedules ran.
    executor: str = "this process"
    #: The clock (seconds) and the wall-clock budget (`ExploreConfig.time`; None: none).
    clock: Callable[[], float] = time.perf_counter
    limit: float | None = None
    #: Who found `hit` (the chooser, or the portfolio's member).
    found_by: str | None = None
    #: The preemption level of `hit` (dfs).
    found_bound: int | None = None
    #: The budget stopped the search.
    out_of_time: bool = False
    #: Probe runs made before the schedules (`_start_check`, `_steps_hint`), not counted
    #: among them.
    probes: int = 0
    #: The first probe run that failed (`_steps_hint`), or None: the search's failure,
    #: of index 0, if none of its schedules fails (`_adopt_probe_failure`).
    probe_hit: ProbeHit | None = None
    #: Why the workers ``jobs`` asks for were not used (`serial_why`), or None.
    serial: str | None = None
    #: The index (0-based) at which a portfolio completed (its dpor member ran every
    #: trace, no schedule failed): the search stops there; None: not (yet) complete.
    cut: int | None = None
    #: The dpor member's trace count when the portfolio completed.
    traces: int | None = None
    #: A systematic search's execution (dfs, dpor) stopped at the step bound.
    truncated: bool = False
    #: The chunks merged from elsewhere (workers, a run log), for `trim`.
    chunks: list[_Merged] = attrs.field(factory=list)
    #: A chunked search stopped at a stalled step: (the 0-based index of the stalled
    #: schedule, the probes its schedules were made with), for `_stalled` to count what
    #: a serial search counts; None: no stall, or one the serial search also stops at.
    stall_cut: tuple[int, Probes, str] | None = None
    #: The 0-based index of the schedule whose step the watchdog interrupted (a chunk's
    #: runs before it count, it does not: `run_chunk`); None: none was.
    stalled_index: int | None = None
    #: The run going on that is none of the search's schedules (a probe, a replay of
    #: the failure found), as `ExploreResult.stalled_run` names it; None: none is.
    running: str | None = None
    #: What of the program's state changed between runs in another process (a worker's
    #: chunk), or None (`search_watch`).
    carried: str | None = None
    last_report: float = attrs.field(init=False)
    #: The highest ``done`` and ``failures`` reported so far: what progress shows never
    #: goes down (`trim` takes chunks the callback has already counted out of the count).
    shown: tuple[int, int] = attrs.field(init=False, default=(0, 0))

    def __attrs_post_init__(self) -> None:
        self.last_report = self.start

    def time_is_up(self, ran: int | None = None) -> bool:
        """True (and remembered) once the wall-clock budget is spent.  Never before the
        first schedule ran (`ran`: the schedules run so far, default `done`): the budget
        also counts the setup (probes, splitting), and a search that ran nothing would
        establish nothing.  (The probe runs, which start before it, look at the budget
        themselves: `_steps_hint`.)"""
        if (self.done if ran is None else ran) == 0:
            return self.out_of_time
        if self.limit is not None and not self.out_of_time:
            self.out_of_time = self.clock() - self.start >= self.limit
        return self.out_of_time

    def add(self, execution: Execution, index: int, by: str | None = None) -> None:
        """One schedule ran (`index` 1-based; `by`: the chooser or member that ran it)."""
        self.done += 1
        self.steps += execution.sim.steps
        self.unfinished += execution.unfinished
        if execution.is_failure:
            self.failures += 1
            self.failing.append(index)
            self.keep(index, execution.sim.schedule, by)
            if self.hit is None or index < self.hit[0]:
                self.hit = (index, execution.sim.schedule)
                self.hit_execution = execution
                self.found_by = by

    def keep(self, index: int, schedule: tuple[int, ...], by: str | None) -> None:
        """Keep failing schedule `index` for `FailingRun` if among the lowest indices."""
        self.found[index] = (schedule, by)
        if len(self.found) > FAILURES_LISTED:
            del self.found[max(self.found)]

    def merge(
        self,
        worker: str,
        done: int,
        steps: int,
        failing: tuple[int, ...],
        hit: _Hit | None,
        found_by: str | None = None,
        *,
        span: tuple[int, int] | None = None,
        unfinished: int = 0,
        carried: str | None = None,
        found: tuple[tuple[int, tuple[int, ...], str | None], ...] = (),
    ) -> None:
        """A chunk ran elsewhere (`worker`); `span`: the indices ``[first, end)`` it went
        through (recorded for `trim`); `unfinished` of its schedules reached the step
        bound unfinished; `found`: its failing schedules kept (`keep`)."""
        for index, schedule, by in found:
            self.keep(index, schedule, by)
        if hit is not None:
            self.keep(hit[0], hit[1], found_by)
        if span is not None:
            self.chunks.append(_Merged(worker, *span, done, steps, failing, unfinished))
        self.carried = self.carried or carried
        self.done += done
        self.unfinished += unfinished
        self.steps += steps
        self.failures += len(failing)
        self.failing.extend(failing)
        self.per_worker[worker] = self.per_worker.get(worker, 0) + done
        if hit is not None and (self.hit is None or hit[0] < self.hit[0]):
            self.hit, self.hit_execution = hit, None
            self.found_by = found_by

    def trim(self, cut: int) -> list[tuple[int, int]]:
        """Take out every merged chunk that went past index `cut`; returns the ranges
        below `cut` they covered (to run again), ascending."""
        again: list[tuple[int, int]] = []
        keep: list[_Merged] = []
        for c in self.chunks:
            if c.end <= cut:
                keep.append(c)
                continue
            self.done -= c.ran
            self.steps -= c.steps
            self.unfinished -= c.unfinished
            self.pruned -= c.pruned
            self.failures -= len(c.failing)
            for index in c.failing:
                self.failing.remove(index)
                self.found.pop(index, None)
            if not c.inline:
                self.per_worker[c.worker] -= c.ran
                if not self.per_worker[c.worker]:
                    del self.per_worker[c.worker]
            if c.first < cut:
                again.append((c.first, cut))
        self.chunks = keep
        return sorted(again)

    def result(
        self,
        target: Target,
        config: ExploreConfig,
        complete: bool,
        bound: int | None,
        failure: Failure | None,
        *,
        interrupted: bool = False,
        stalled: str | None = None,
        stalled_run: str | None = None,
    ) -> ExploreResult:
        """The `ExploreResult` of what ran so far."""
        carried = self.carried or carried_state(target)
        complete = complete and carried is None
        traces = self.traces if complete else None
        if complete and config.chooser == "dpor":
            traces = self.done  # dpor's schedules are its traces
        return ExploreResult(
            target.label,
            config,
            self.done,
            self.pruned,
            self.steps,
            complete,
            bound,
            failure,
            self.clock() - self.start,
            interrupted=interrupted,
            per_worker=self.workers(),
            failing=tuple(sorted(self.failing)),
            executor=self.executor,
            found_by=self.found_by if failure is not None else None,
            found_bound=self.found_bound if failure is not None else None,
            out_of_time=self.out_of_time,
            traces=traces,
            truncated=self.truncated,
            unfinished=self.unfinished,
            stalled=stalled,
            stalled_run=stalled_run if stalled is not None else None,
            carried=carried,
            failures=() if config.stop_on_first else self.failing_runs(target, config, failure),
            probes=self.probes,
            serial=self.serial,
        )

    def failing_runs(
        self, target: Target, config: ExploreConfig, failure: Failure | None
    ) -> tuple[FailingRun, ...]:
        """The first `FAILURES_LISTED` failing schedules, each replayed here once (the
        first failure's record reused) for its kind and token."""
        runs: list[FailingRun] = []
        for index in sorted(self.failing)[:FAILURES_LISTED]:
            if failure is not None and index == failure.index:
                kind = failure.found_violation.kind
                runs.append(
                    FailingRun(index, kind, failure.token, failure.found_by, failure.no_token)
                )
                continue
            kept = self.found.get(index)
            if kept is None:
                unkept = (
                    "its schedule was not kept here (it was read from a run log, or ran "
                    "in a worker of a parallel dpor search)"
                )
                runs.append(FailingRun(index, None, None, None, unkept))
                continue
            schedule, by = kept
            try:
                # as during the search: the program's own KeyboardInterrupt is its error
                with marking_ctrl_c(), watching_steps(config.stall_limit):
                    execution = target.run(ReplayChooser(schedule), max_steps=config.max_steps)
            except Exception as e:  # a listing never fails the search
                runs.append(FailingRun(index, None, None, by, f"its replay raised {e!r}"))
                continue
            if execution.failure is None:
                flaky = "its replay here does not fail: the program is not deterministic"
                runs.append(FailingRun(index, None, None, by, flaky))
                continue
            token, why = _token(target, schedule, execution, config.max_steps, by)
            runs.append(FailingRun(index, execution.failure.kind, token, by, why))
        return tuple(runs)

    def workers(self) -> dict[str, int]:
        """Schedules per worker, ``main`` (this process) included when it ran any."""
        here = self.done - sum(self.per_worker.values())
        counts = {w: n for w, n in self.per_worker.items() if n}  # not a chunk of dpor slots
        if here:  # added to the chunks an inline executor ran here (a dpor share's slots)
            counts["main"] = counts.get("main", 0) + here
        return dict(sorted(counts.items()))

    def report(self, *, force: bool = False) -> None:
        if self.callback is None:
            return
        now = self.clock()
        if force or now - self.last_report >= PROGRESS_INTERVAL:
            self.last_report = now
            done, failures = self.shown
            self.shown = done, failures = max(done, self.done), max(failures, self.failures)
            self.callback(ProgressUpdate(done, self.total, failures, now - self.start))


def make_failure(
    target: Target,
    config: ExploreConfig,
    index: int,
    schedule: tuple[int, ...],
    execution: Execution | None = None,
    *,
    found_by: str | None = None,
) -> Failure:
    if execution is None:  # found in a worker: replayed here to be shown
        execution = target.run(ReplayChooser(schedule), max_steps=config.max_steps)
        if execution.failure is None:
            raise NondeterminismError(
                f"a run of {target.label} failed in a worker process, but its replay here "
                "does not: the program is not deterministic (does it keep state between "
                "runs, e.g. in a module global?), so the failure cannot be shown"
            )
    token, why = _token(target, schedule, execution, config.max_steps, found_by)
    if not config.shrink or execution.failure is None:
        return Failure(
            index,
            execution,
            schedule,
            token,
            no_token=why,
            target=target,
            max_steps=config.max_steps,
            found_by=found_by,
        )
    shrunk = shrink(target, schedule, execution.failure.kind, max_steps=config.max_steps)
    shrunk_target = target.with_params(**shrunk.params)
    shrunk_token, _ = _token(
        shrunk_target, shrunk.schedule, shrunk.execution, config.max_steps, found_by
    )
    return Failure(
        index,
        execution,
        schedule,
        token,
        shrunk,
        shrunk_token,
        why,
        target,
        config.max_steps,
        found_by,
    )


def _token(
    target: Target,
    schedule: tuple[int, ...],
    execution: Execution,
    max_steps: int,
    found_by: str | None = None,
) -> tuple[str | None, str | None]:
    """(the token, None), or (None, why there is none): a token that cannot be made never
    takes the failure it would replay with it."""
    if not target.is_named:
        return None, target.unnamed or f"scenario {target.scenario.name!r} has no name"
    try:
        return encode_token(target, schedule, execution, max_steps, found_by=found_by), None
    except InvalidArgument as e:
        return None, str(e)


# --- random and pct ----------------------------------------------------------------------


def _steps_hint(target: Target, config: ExploreConfig, tally: _Tally | None = None) -> Probes:
    """PCT's k: the most choice points seen in a few probe runs (one that never
    preempts, and a few random ones, all seeded from the config: a fixed k, so every
    schedule stays a function of its index alone); for a portfolio, also the sweep's
    size (one run of its base schedule).

    With a `tally`, the first probe run that fails is kept (``tally.probe_hit``: the
    search's failure if no schedule fails).  Under a wall-clock budget, the probe runs
    count against it (in ``tally.probes``): no probe run starts once it is spent, nor
    the first schedule after them; `RunOutOfTime` then ends the search (nothing
    explored but the probes)."""
    fifo, random_probe, sweep_probe = PROBE_FINDERS

    def probe(chooser: Chooser, by: str) -> Execution:
        if tally is not None and tally.limit is not None and tally.time_is_up(ran=1):
            raise RunOutOfTime("the time budget ran out in the probe runs")
        execution = target.run(chooser, max_steps=config.max_steps)
        if tally is not None:
            tally.probes += 1
            # (a run the stall watchdog interrupted has no outcome of the program's,
            # even one that returned: the program may have made the interrupt its error)
            if execution.failure is not None and tally.probe_hit is None and not halted():
                tally.probe_hit = ProbeHit(execution.sim.schedule, execution, by)
        return execution

    runs = [probe(FifoChooser(), fifo)]
    for i in range(PCT_PROBES):
        seed = derive_seed(config.seed, -1 - i)
        runs.append(probe(RandomChooser(seed), random_probe))
    # Rather over- than under-estimate: a change point past the real k is merely unused,
    # while a k too small puts every change point early and can miss a bug for good; but
    # every doubling of k costs a factor 2^(d-1) in PCT's bound.
    most = max(1, *(len(r.sim.schedule) for r in runs))
    k = most + (most + 3) // 4
    if config.chooser != "portfolio":
        probes = Probes(k)
    else:
        sweep = SweepChooser(None)
        probe(sweep, sweep_probe)
        probes = Probes(k, sweep.total)
    if tally is not None and tally.limit is not None and tally.time_is_up(ran=1):
        raise RunOutOfTime("the time budget ran out in the probe runs")
    return probes


@attrs.frozen
class ProbeHit:
    """A probe run (`_steps_hint`) that failed: its `schedule` (replayable), its
    `execution`, and `by`, which probe run it was (one of `PROBE_FINDERS`)."""

    schedule: tuple[int, ...]
    execution: Execution
    by: str


def _adopt_probe_failure(tally: _Tally) -> bool:
    """When no schedule of the search failed (``tally.hit`` None) but a probe run did
    (``tally.probe_hit``), make that run the search's failure, of index 0 (in `failing`
    too, kept for `FailingRun`): the program was seen to fail, so the search is no pass.
    A completion claimed meanwhile (the portfolio's dpor member ran every trace) is
    withdrawn: it contradicts a failing run, which only unsound footprints explain, and
    the failure wins.  Returns whether it did; a schedule's failure always comes first,
    so no result that has one changes."""
    seen = tally.probe_hit
    if tally.hit is not None or seen is None:
        return False
    tally.hit, tally.hit_execution, tally.found_by = (0, seen.schedule), seen.execution, seen.by
    tally.failures += 1
    tally.failing.insert(0, 0)
    tally.keep(0, seen.schedule, seen.by)
    tally.cut = tally.traces = None
    return True


def _chooser_for(config: ExploreConfig, index: int, probes: Probes) -> tuple[str, Chooser]:
    """(who runs it, the chooser) of seeded schedule `index` (a portfolio's seeded
    members included)."""
    if config.chooser == "portfolio":
        return seeded_chooser(config, index, probes)
    if config.chooser == "pct":
        seed = derive_seed(config.seed, index)
        return "pct", PctChooser(seed, depth=config.depth, steps_hint=probes.k)
    return "random", StreamChooser(config.seed, index)


_Hit = tuple[int, tuple[int, ...]]


def _is_dpor_slot(config: ExploreConfig, index: int) -> bool:
    return config.chooser == "portfolio" and member_at(index).kind == "dpor"


def _run_dpor_slot(
    config: ExploreConfig,
    index: int,
    dpor: DporShare,
    tally: _Tally,
    target: Target,
    hint: Probes,
    last: int,
) -> bool:
    """Run the portfolio's dpor slot `index` in this process (its search's execution of
    that ordinal; ``random`` by the index once the search is over).  Returns True, and
    runs nothing, when the portfolio completes at `index`: its dpor member ran every
    trace, none failed (`DporShare.verified`), and no schedule seen so far failed; with
    ``stop_on_first=False`` it never stops there (the whole budget runs).  `last`: the
    end of the range (the dpor share runs ahead at most to its last dpor slot)."""
    ordinal = dpor_ordinal(index)
    # Under a wall-clock budget no execution runs ahead of its slot: one the budget
    # stops before its slot comes would be a run of the program counted nowhere.
    wanted = 1 if tally.limit is not None else dpor_ordinal(last) - ordinal
    execution = dpor.run(ordinal, wanted, tally.time_is_up) if not dpor.done else None
    tally.pruned = dpor.pruned
    if execution is None and dpor.verified and tally.hit is None:
        tally.traces = dpor.chooser.traces
        if config.stop_on_first:
            return True
        # ``stop_on_first=False`` promises the whole budget: the completion is kept as a
        # claim (`_explore_seeded`), and this slot runs random like any slot past it.
    by = "dpor"
    if execution is None:
        by, chooser = seeded_chooser(config, index, hint)
        execution = target.run(chooser, max_steps=config.max_steps)
    tally.add(execution, index + 1, by)
    return False


def _run_range(
    target: Target,
    config: ExploreConfig,
    first: int,
    last: int,
    steps_hint: Probes,
    tally: _Tally,
    dpor: DporShare | None = None,
) -> int:
    """Run schedules ``first..last-1``; stop at the first failure when asked, or when the
    wall-clock budget is spent.  A portfolio's dpor slots run on `dpor`, or (None: a
    worker's chunk) are left to the parent.  Returns how many indices it went through."""
    run = target.brief_runs(max_steps=config.max_steps)  # one sim runtime, reset per run
    if config.chooser == "random":
        return _run_random_range(run, config.seed, first, last, tally, config.stop_on_first)
    index = first
    try:
        for index in range(first, last):
            if tally.time_is_up():
                return index - first
            if _is_dpor_slot(config, index):
                if dpor is None:
                    continue
                if _run_dpor_slot(config, index, dpor, tally, target, steps_hint, last):
                    tally.cut = index  # the portfolio completed: nothing is left to find
                    return index - first
            else:
                by, chooser = _chooser_for(config, index, steps_hint)
                execution = run(chooser)
                if isinstance(execution, int):  # an "ok" run: no record was built
                    tally.done += 1
                    tally.steps += execution
                else:
                    tally.add(execution, index + 1, by)
            tally.report()
            if tally.hit is not None and config.stop_on_first:
                return index + 1 - first
    except StepInterrupt:  # the watchdog stopped a step of schedule `index`
        tally.stalled_index = index
        raise
    return last - first


def _run_random_range(
    run: Callable[[Chooser], Execution | int],
    seed: int,
    first: int,
    last: int,
    tally: _Tally,
    stop_on_first: bool,
) -> int:
    """`_run_range` for ``chooser="random"`` (no dpor slot, a `StreamChooser` per index):
    the same schedules and tally, its per-schedule checks hoisted out of the loop."""
    report = tally.report if tally.callback is not None else None
    chooser_for = stream_choosers(seed)
    index = first
    try:
        for index in range(first, last):
            # `tally.time_is_up()`, asked only when it can be true: with no limit it is
            # `out_of_time` as it stands.
            if tally.out_of_time or (tally.limit is not None and tally.time_is_up()):
                return index - first
            execution = run(chooser_for(index))  # StreamChooser(seed, index)
            if type(execution) is int:  # an "ok" run: no record was built
                tally.done += 1
                tally.steps += execution
            else:
                assert isinstance(execution, Execution)
                tally.add(execution, index + 1, "random")
            if report is not None:
                report()
            if tally.hit is not None and stop_on_first:
                return index + 1 - first
    except StepInterrupt:  # the watchdog stopped a step of schedule `index`
        tally.stalled_index = index
        raise
    return last - first


@attrs.frozen
class ChunkResult:
    """What a worker sends back for a chunk: schedules run (from the chunk's first),
    steps, the 1-based indices of the failing ones, the first failure, whether the
    explored code raised KeyboardInterrupt, and the seconds it took there."""

    ran: int
    steps: int
    failing: tuple[int, ...]
    hit: _Hit | None
    interrupted: bool
    elapsed: float
    #: The indices it went through, from the chunk's first (a portfolio's dpor slots,
    #: left to the parent, included); None: `ran`.
    covered: int | None = None
    #: Who found `hit` (the chooser, or the portfolio's member).
    found_by: str | None = None
    #: How many of its schedules reached the step bound unfinished.
    unfinished: int = 0
    #: The line of a step that did not return within the stall limit, where the chunk
    #: stopped (its schedule not counted, `covered` ends before it); None: none did.
    stalled: str | None = None
    #: What of the program's state changed between runs there (`search_watch`), or None.
    carried: str | None = None
    #: Its failing schedules of lowest index (`_Tally.keep`): (index, schedule, finder).
    found: tuple[tuple[int, tuple[int, ...], str | None], ...] = ()


def run_chunk(
    target: Target | TargetSpec, config: ExploreConfig, first: int, last: int, hint: Probes
) -> ChunkResult:
    """Run schedules ``first .. last-1`` of `config` (the task an executor runs; `target`
    may be its spec, rebuilt once per process)."""
    if isinstance(target, TargetSpec):
        target = _rebuilt(target)
    start = time.perf_counter()
    tally = _Tally(last - first, None, 0.0)
    interrupted = False
    covered = 0
    stalled: str | None = None
    try:
        with watching_steps(config.stall_limit):
            covered = _run_range(target, config.evolve(time=None), first, last, hint, tally)
    except KeyboardInterrupt:  # raised by the explored code (workers ignore SIGINT)
        interrupted = True
    except StepStalled as e:  # what ran before it stands (a failure among it too)
        stalled = str(e)
        covered = (first if tally.stalled_index is None else tally.stalled_index) - first
    elapsed = time.perf_counter() - start
    return ChunkResult(
        tally.done,
        tally.steps,
        tuple(tally.failing),
        tally.hit,
        interrupted,
        elapsed,
        covered if config.chooser == "portfolio" or stalled is not None else None,
        tally.found_by,
        tally.unfinished,
        stalled,
        carried_state(target),
        tuple((i, schedule, by) for i, (schedule, by) in sorted(tally.found.items())),
    )


#: Targets rebuilt in this process (a worker), by their pickled spec: a chunk's target
#: is rebuilt once per worker, not once per chunk.  A cache: results never depend on it.
_REBUILT: dict[bytes, Target] = {}


def _rebuilt(spec: TargetSpec) -> Target:
    key = pickle.dumps(spec)
    target = _REBUILT.get(key)
    if target is None:
        if len(_REBUILT) >= 8:
            _REBUILT.clear()
        target = _REBUILT[key] = Target.from_spec(spec)
        begin_watch(target)  # before this process runs it
    return target


def _explore_seeded(
    target: Target,
    config: ExploreConfig,
    tally: _Tally,
    executor: Executor | None,
    resume: str | os.PathLike[str] | None,
) -> bool:
    """Random, pct, portfolio; returns whether the space is complete (a portfolio whose
    dpor share ran every trace, and no failure)."""
    tally.running = PROBE_RUN
    steps_hint = (
        _steps_hint(target, config, tally) if config.chooser in ("pct", "portfolio") else Probes()
    )
    tally.running = None
    first, last = config.start, config.start + config.schedules
    dpor = DporShare(target, config) if config.chooser == "portfolio" else None
    # a pool costs 20-50 ms; a target no other process can rebuild runs here
    small = config.jobs == 1 or config.schedules < SERIAL_BELOW or not target.is_named
    if executor is None and resume is None and small:
        _run_range(target, config, first, last, steps_hint, tally, dpor)
        return _completed(config, tally, dpor)
    log = RunLog.open(resume, _identity(target, config, steps_hint)) if resume else None
    owned = None
    if executor is None:
        # never more worker processes than twice the CPUs, nor than the schedules: the
        # results do not depend on the count, and a process per requested job could
        # exhaust the machine
        workers = min(config.jobs, config.schedules, 2 * (os.cpu_count() or 1))
        owned = executor = ProcessExecutor(workers) if not small else InlineExecutor()
    tally.executor = executor.description
    try:
        _explore_chunks(target, config, steps_hint, tally, executor, log, dpor)
    finally:
        if owned is not None:
            owned.close()
        if log is not None:
            log.close()
    if tally.cut is not None:
        _settle_cut(target, config, steps_hint, tally)
    if tally.cut is None and config.stop_on_first and tally.hit is not None:
        _settle_hit(target, config, steps_hint, tally)
    return _completed(config, tally, dpor)


def _completed(config: ExploreConfig, tally: _Tally, dpor: DporShare | None) -> bool:
    """Whether a seeded search proved the program: the portfolio stopped where its dpor
    member completed (``tally.cut``), or, running its whole budget (``stop_on_first``
    False), its dpor member ran every trace with none failing and no schedule failed."""
    if config.stop_on_first or dpor is None:
        return tally.cut is not None
    if dpor.verified and tally.hit is None:
        tally.traces = dpor.chooser.traces
        return True
    tally.traces = None
    return False


def _settle_cut(target: Target, config: ExploreConfig, hint: Probes, tally: _Tally) -> None:
    """After chunks ran elsewhere, make a portfolio's completion at index ``tally.cut``
    count what a serial run counts: the schedules ``start .. cut-1`` and nothing past
    them.  It stands only if every one of those ran (the wall-clock budget may have
    stopped the chunks first) and no schedule failed, wherever (a failure past ``cut``,
    which a sound footprint rules out, is reported, not dropped); else it is withdrawn
    (``tally.cut`` None: not complete).  What chunks ran past ``cut`` is taken out; the
    part below ``cut`` of the one chunk that straddles it runs again here."""
    cut = tally.cut
    assert cut is not None
    spans = [(c.first, c.end) for c in tally.chunks]
    if tally.hit is not None or next(_gaps(config.start, cut, spans), None) is not None:
        tally.cut = tally.traces = None
        return
    _count_below(target, config, hint, tally, cut)
    tally.out_of_time = False  # the completion, not the clock, ended it


def _settle_hit(target: Target, config: ExploreConfig, hint: Probes, tally: _Tally) -> None:
    """After chunks ran elsewhere and one failed (``stop_on_first``), count what a serial
    run counts: the schedules up to the first failure (index ``tally.hit``) and nothing
    past it, whatever chunks and dpor slots ran past it before the failure was known (a
    scheduling artefact: how many depends on the workers' timing).  So the counts
    (schedules, steps, pruned, unfinished, failing) are the same for every ``jobs`` and
    executor; only `ExploreResult.per_worker` says who happened to run what."""
    assert tally.hit is not None
    _count_below(target, config, hint, tally, tally.hit[0])


def _count_below(
    target: Target, config: ExploreConfig, hint: Probes, tally: _Tally, cut: int
) -> None:
    """Take out what chunks (and the parent's dpor slots) ran at or past index `cut`;
    run here again the part below `cut` of each chunk that straddles it (its dpor slots,
    counted apart, excepted)."""
    for a, b in tally.trim(cut):
        again = _Tally(b - a, None, 0.0)
        _run_range(target, config, a, b, hint, again)
        tally.merge(
            "main",
            again.done,
            again.steps,
            tuple(again.failing),
            again.hit,
            unfinished=again.unfinished,
            found=tuple((i, schedule, by) for i, (schedule, by) in again.found.items()),
        )


def _identity(target: Target, config: ExploreConfig, hint: Probes) -> dict[str, Any]:
    """What makes schedule ``i`` the same schedule in another run (see `RunLog`)."""
    name = target.protocol_name
    return {
        # the label as logs wrote it before labels named the protocol by its reference
        # (`spec` names it so): a log from before still resumes
        "target": f"{target.scenario.name}/{name}" if name else target.scenario.name,
        "spec": repr(target.spec()),
        # the code the schedules ran: a log of other code records other outcomes
        "code": code_fingerprint(target),
        "chooser": config.chooser,
        "seed": config.seed,
        "max_steps": config.max_steps,
        **({"depth": config.depth, "k": hint.k} if config.chooser == "pct" else {}),
        # Schedule i of random is StreamChooser(seed, i) since this field; a log from
        # before (MT19937 seeded per schedule) names other schedules and is refused.
        **({"stream": "blake2b-1"} if config.chooser == "random" else {}),
        # the portfolio's sweep member since "sweep" (a log from before ran other members)
        **({"k": hint.k, "sweep": hint.sweep} if config.chooser == "portfolio" else {}),
    }


#: The share of a chunk's time its executor's overhead may take (chunk sizing).
OVERHEAD_SHARE = 0.02

#: A portfolio's dpor slots run in the parent in slices of about this many seconds,
#: between waits of at most `INLINE_WAIT` seconds for chunks (a Dask wait of 0 s never
#: collects anything).  Scheduling only: no result depends on them.
INLINE_SLICE = 0.05
INLINE_WAIT = 0.01

#: The longest a chunk should run, in seconds: a cancelled or interrupted chunk's
#: worker is busy at most this long, and progress moves at least this often.
MAX_CHUNK_SECONDS = 1.0


@attrs.define
class _Sizer:
    """Chunk sizes from the measured cost of a schedule: long enough that the
    executor's overhead is at most `OVERHEAD_SHARE` of a chunk, short enough to stop
    promptly and to leave every worker a share of the tail.  The first chunks (before
    any cost is known) run one schedule each."""

    overhead: float
    window: int
    cost: float | None = None  # seconds per schedule, a moving average

    def observe(self, ran: int, elapsed: float) -> None:
        if ran > 0:
            cost = elapsed / ran
            self.cost = cost if self.cost is None else 0.7 * self.cost + 0.3 * cost

    def size(self, remaining: int) -> int:
        if self.cost is None:
            return 1
        want = min(max(self.overhead / OVERHEAD_SHARE, 0.01), MAX_CHUNK_SECONDS)
        size = int(want / max(self.cost, 1e-7))
        return max(1, min(size, remaining // (2 * self.window)))


def _gaps(first: int, last: int, done: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The ranges of ``[first, last)`` that no range of `done` covers, ascending."""
    at = first
    for a, b in sorted(done):
        if b <= at or a >= last:
            continue
        if a > at:
            yield at, a
        at = max(at, b)
    if at < last:
        yield at, last


def _split(
    gaps: Iterator[tuple[int, int]], recorded: list[tuple[int, int]]
) -> Iterator[tuple[int, int]]:
    """`gaps`, each cut where a `recorded` range (sorted, disjoint) starts or ends: a
    chunk of a gap then lies inside one recorded range or outside all of them."""
    cuts = sorted({at for span in recorded for at in span})
    for a, b in gaps:
        for cut in cuts[bisect.bisect_right(cuts, a) : bisect.bisect_left(cuts, b)]:
            yield a, cut
            a = cut
        yield a, b


def _within(recorded: list[tuple[int, int]], a: int, b: int) -> bool:
    """Whether ``[a, b)`` lies inside one range of `recorded` (sorted, disjoint)."""
    at = bisect.bisect_right(recorded, (a, _NO_END)) - 1
    return at >= 0 and recorded[at][1] >= b


#: Above any schedule index (`_within`'s search key).
_NO_END = 2**65


def _explore_chunks(
    target: Target,
    config: ExploreConfig,
    hint: Probes,
    tally: _Tally,
    executor: Executor,
    log: RunLog | None,
    dpor: DporShare | None = None,
) -> None:
    """Run the schedules in chunks on `executor`, lowest indices first, keeping
    `executor.window` chunks submitted; skip what `log` records as done; stop once no
    chunk left could hold an earlier failure (``stop_on_first``), or the wall-clock
    budget is spent.  A portfolio's dpor slots (`dpor`) run here, one between two polls
    of the executor, in index order (the log does not record them: a resumed run runs
    them again, to the same results)."""
    first, last = config.start, config.start + config.schedules
    dpor_next = first  # the next index to look at for a dpor slot
    done: list[tuple[int, int]] = []
    # Every chunk the log records, disjoint (`RunLog` refuses an overlap): the chunks
    # this run records never overlap them either (a schedule counted twice on resume)
    recorded = sorted((c.first, c.last) for c in log.completed) if log is not None else []
    if log is not None:
        for chunk in log.completed:
            if first <= chunk.first and chunk.last <= last:
                done.append((chunk.first, chunk.last))
                ran = chunk.last - chunk.first
                if dpor is not None:  # its dpor slots run here again
                    ran -= dpor_ordinal(chunk.last) - dpor_ordinal(chunk.first)
                span = (chunk.first, chunk.last)
                tally.merge(
                    "resumed",
                    ran,
                    chunk.steps,
                    chunk.failing,
                    None,
                    span=span,
                    unfinished=chunk.unfinished,
                )
        if tally.failing:
            index = min(tally.failing)
            by, chooser = _chooser_for(config, index - 1, hint)
            execution = target.run(chooser, max_steps=config.max_steps)
            if execution.failure is None:
                line = min(c.line for c in log.completed if index in c.failing)
                raise InvalidArgument(
                    f"{log.path} line {line} records schedule {index} as failing, but it "
                    "does not fail when run again (a log edited by hand, or written for "
                    "other code): remove the line, or the log, to run its schedules again"
                )
            tally.hit, tally.hit_execution = (index, execution.sim.schedule), execution
            tally.found_by = by
    task: Target | TargetSpec = target
    if not isinstance(executor, InlineExecutor):
        task = target.spec()
        executor.prepare(task)
    gaps = _split(_gaps(first, last, done), recorded)
    gap: tuple[int, int] | None = next(gaps, None)
    remaining = sum(b - a for a, b in _gaps(first, last, done))
    sizer = _Sizer(executor.overhead, executor.window)
    pending: dict[int, int] = {}  # a chunk's key -> its first schedule
    key = 0
    # The first schedule (0-based index) whose step stalled, and its line: the serial
    # search stops there, so nothing at or past it is needed (what ran below it stands).
    stall: tuple[int, str] | None = None

    def needed(at: int) -> bool:
        if tally.cut is not None and at >= tally.cut:
            return False  # the portfolio completed at `cut`
        if stall is not None and at >= stall[0]:
            return False
        return not (config.stop_on_first and tally.hit is not None and at + 1 >= tally.hit[0])

    def dpor_step() -> bool:
        """Run the next dpor slot still needed; False when none is left."""
        nonlocal dpor_next
        if dpor is None:
            return False
        while dpor_next < last and not _is_dpor_slot(config, dpor_next):
            dpor_next += 1
        if dpor_next >= last or not needed(dpor_next) or tally.time_is_up():
            return False
        nonlocal stall
        before = (tally.done, tally.steps, tally.unfinished, tally.pruned, len(tally.failing))
        try:
            completed = _run_dpor_slot(config, dpor_next, dpor, tally, target, hint, last)
        except StepInterrupt as e:  # this thread runs nothing more until the watch closes
            if stall is None or dpor_next < stall[0]:
                stall = (dpor_next, str(e))
            return False
        if tally.done > before[0]:
            # Recorded as a chunk of its own, so that `_settle_hit` takes it out when it
            # ran past the first failure (before that failure was known).
            tally.chunks.append(
                _Merged(
                    "main",
                    dpor_next,
                    dpor_next + 1,
                    tally.done - before[0],
                    tally.steps - before[1],
                    tuple(tally.failing[before[4] :]),
                    tally.unfinished - before[2],
                    tally.pruned - before[3],
                    inline=True,
                )
            )
        if completed:
            # Completed at `dpor_next`, unless a chunk still out below it fails (the
            # completion is then withdrawn, and this slot runs random like any other
            # slot of a finished search).
            tally.cut = dpor_next
            return False
        dpor_next += 1
        return True

    try:
        while True:
            window = executor.window  # a Dask cluster may grow or shrink as it runs
            if tally.time_is_up():
                gap = None  # submit nothing more; collect what is running
            while gap is not None and len(pending) < window and needed(gap[0]):
                a, b = gap
                size = sizer.size(remaining)
                end = min(b, a + size, last if tally.cut is None else tally.cut)
                executor.submit(key, run_chunk, task, config, a, end, hint)
                pending[key] = a
                key += 1
                remaining -= end - a
                gap = (end, b) if end < b else next(gaps, None)
            inline = dpor_step()
            ends = time.perf_counter() + INLINE_SLICE
            while inline and pending and time.perf_counter() < ends:
                inline = dpor_step()
            if not pending:
                if not inline:
                    break
                continue  # only dpor slots left (or chunks to submit): nothing to wait for
            for outcome in executor.wait(INLINE_WAIT if inline else MAX_CHUNK_SECONDS):
                at = pending.pop(outcome.key, None)  # type: ignore[call-overload]
                if at is None:
                    continue
                if outcome.error is not None:
                    raise outcome.error
                result: ChunkResult = outcome.value
                covered = result.ran if result.covered is None else result.covered
                tally.merge(
                    outcome.worker,
                    result.ran,
                    result.steps,
                    result.failing,
                    result.hit,
                    result.found_by,
                    span=(at, at + covered),
                    unfinished=result.unfinished,
                    carried=result.carried,
                    found=result.found,
                )
                if tally.cut is not None and tally.hit is not None:
                    tally.cut = tally.traces = None  # a failure: the completion is void
                sizer.observe(covered, result.elapsed)
                if log is not None and covered and not _within(recorded, at, at + covered):
                    log.record(
                        Chunk(
                            at,
                            at + covered,
                            result.steps,
                            result.failing,
                            outcome.worker,
                            result.unfinished,
                        )
                    )
                if result.interrupted:
                    raise KeyboardInterrupt
                if result.stalled is not None and (stall is None or at + covered < stall[0]):
                    stall = (at + covered, result.stalled)
                    late = [k for k, a in pending.items() if not needed(a)]
                    executor.cancel(late)
                    for k in late:
                        del pending[k]
                tally.report()
                if config.stop_on_first and tally.hit is not None:
                    late = [k for k, a in pending.items() if not needed(a)]
                    executor.cancel(late)
                    for k in late:
                        del pending[k]
    except BaseException:
        executor.abort()
        raise
    if stall is not None and (tally.cut is None or stall[0] < tally.cut):
        # Stopped where the serial search stops: `_stalled` counts what it counts.
        tally.cut = tally.traces = None
        tally.stall_cut = (stall[0], hint, stall[1])
        raise StepStalled(stall[1])


# --- dfs -------------------------------------------------------------------------------------


def _explore_dfs(target: Target, config: ExploreConfig, tally: _Tally) -> tuple[bool, int | None]:
    """Walk the schedule tree; (complete for the bound, the bound)."""
    # One chooser walks every level of the bound (iterative bounding) without re-running
    # anything; a fixed bound explores just that.
    iterative = config.preemption_bound is None
    chooser = DfsChooser(
        config.max_preemptions if iterative else config.preemption_bound,
        iterative=iterative,
        reduction=config.reduction,
        symmetry=config.symmetry,
        # The ODP model keeps shared state outside its locks (the page table, frame
        # counts, unlocked seq reads): a lock's footprint would not cover its steps.
        trust_primitives=config.trust_primitives and not target.scenario.needs_world,
    )
    stopped, found_at = _walk(target, config, tally, chooser)
    # bound: the highest level fully explored, on a hit as on a miss; the level of the
    # find is `found_bound`.
    tally.found_bound = found_at
    # A run stopped at the step bound leaves its suffix unexplored: no completeness.
    tally.truncated = chooser.truncated
    return (not stopped and chooser.is_complete and not chooser.truncated), chooser.complete_bound


def _walk(
    target: Target, config: ExploreConfig, tally: _Tally, chooser: DfsChooser | DporChooser
) -> tuple[bool, int | None]:
    """Run `chooser`'s executions until it has none left or the budget is spent: (whether
    it stopped at the first failure, for ``stop_on_first``; the chooser's bound when the
    first failure was found).

    The whole walk is one tracking session: `tracked`'s hooks go on the classes once for
    its runs (each run then only nests), not once per run, and come off when it ends,
    however it ends.  Between runs the hooks note nothing (no runtime keeps footprints).
    A chooser that keeps no footprints (dfs with neither reduction nor symmetry) runs no
    tracking run, and gets no session: its runs see no hook.
    """
    found_at: int | None = None
    session = bool(getattr(chooser, "wants_footprints", False))
    with tracking_session(chooser):
        while tally.done < config.schedules and chooser.has_more and not tally.time_is_up():
            try:
                execution = target.run(chooser, max_steps=config.max_steps)
            except PrunedExecution:
                tally.pruned += 1
                _check_hidden(session)
                continue
            _check_hidden(session)
            first_hit = tally.hit is None
            tally.add(execution, tally.done + 1, config.chooser)  # "dfs" or "dpor"
            tally.report()
            if execution.is_failure and first_hit:
                found_at = chooser.bound
                if config.stop_on_first:
                    return True, found_at
    return False, found_at


def _check_hidden(session: bool) -> None:
    """In a tracking session, after a run: state changed past every note (a class
    attribute written through its class) leaves the search without a claim."""
    if session:
        why = hidden_write()
        if why is not None:
            raise HiddenWrite(why)


def _explore_dpor(target: Target, config: ExploreConfig, tally: _Tally) -> tuple[bool, int | None]:
    # schedules = traces run to their end; complete = every trace, and the preemption
    # bound (if any) cut nothing: a bounded DPOR does not cover its bound (Coons et al.).
    # bound = the configured bound, on a hit and on a miss alike.
    chooser = DporChooser(
        config.preemption_bound,
        trust_primitives=config.trust_primitives and not target.scenario.needs_world,
        fair_after=fair_after(config.max_steps),
    )
    stopped, _ = _walk(target, config, tally, chooser)
    tally.truncated = chooser.truncated
    if stopped:
        return False, config.preemption_bound
    return chooser.is_exhaustive, config.preemption_bound


def _explore_dpor_split(
    target: Target, config: ExploreConfig, tally: _Tally, executor: Executor | None
) -> tuple[bool, int | None]:
    """DPOR split into subtrees (`odp_async.explore.dpor_parallel`): on `executor`, else
    on ``jobs`` worker processes (in this process for a target no other process can
    rebuild: the same results).  (complete, the configured bound)."""
    owned = None
    if executor is None:
        if target.is_named:
            owned = executor = ProcessExecutor(min(config.jobs, 2 * (os.cpu_count() or 1)))
        else:
            executor = InlineExecutor()
    tally.executor = executor.description
    try:
        complete = explore_split(target, config, executor, tally)
    finally:
        if owned is not None:
            owned.close()
    return complete, config.preemption_bound
