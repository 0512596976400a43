"""The explorer: run a target under many schedules, find a failure, hand back a token.

Contract
    `explore(target, config)` runs ``target`` once per schedule, chosen by ``config.chooser``:

    - ``random``: schedule ``i`` uses `RandomChooser(derive_seed(config.seed, i))`;
    - ``pct``: schedule ``i`` uses `PctChooser(derive_seed(config.seed, i), depth, k)`, with
      ``k`` the most choice points of a few seeded probe runs;
    - ``dfs``: one `DfsChooser` walks the schedule tree (bounded by
      ``preemption_bound``, or iteratively from 0 to ``max_preemptions``), with sleep-set
      and symmetry reduction unless ``reduction=False``; the result says whether the space
      was **complete** for the bound.

    It stops at the first failing schedule (``stop_on_first``) or at the budget.  The
    failure comes with its replay token, and (``shrink``) a shrunk schedule and its token.
    Schedule ``i`` of random and pct depends only on ``(seed, i)``, so with ``jobs=N`` the
    schedules run in worker processes and the results (which schedules fail, and how) are
    the same for every ``N``; dfs runs in this process.

Concurrency
    Blocking, CPU-bound; workers are processes (a scenario given as an object, with no
    name to find it by, can only run with ``jobs=1``).

See also
    `odp_async.explore.config`, `odp_async.explore.tokens`, `odp_async.explore.shrink`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from .._runtime.choosers import Chooser, FifoChooser, RandomChooser, ReplayChooser
from ..check import Violation
from ..errors import InvalidArgument
from ..scenarios import Scenario, Verdict
from .config import ExploreConfig, derive_seed
from .dfs import DfsChooser, PrunedExecution
from .dpor import DporChooser
from .pct import PctChooser
from .shrink import ShrinkResult, shrink
from .target import Execution, Target
from .tokens import encode_token

__all__ = ["ExploreResult", "Failure", "derive_seed", "explore", "explore_target"]

#: Budgets below this run in this process whatever ``jobs`` says: starting worker
#: processes costs more than it saves (measured in benchmarks/bench_explore.py).
SERIAL_BELOW = 500

#: Random probe runs (besides one that never preempts) that estimate PCT's k.
PCT_PROBES = 8


@attrs.frozen
class Failure:
    """The first failing schedule of an exploration."""

    index: int  # 1-based: how many schedules it took
    execution: Execution
    schedule: tuple[int, ...]
    token: str | None
    shrunk: ShrinkResult | None = None
    shrunk_token: str | None = None

    @property
    def violation(self) -> Violation:
        failure = self.execution.failure
        assert failure is not None
        return failure

    @property
    def verdict(self) -> Verdict:
        return self.execution.verdict

    def describe(self) -> str:
        lines = [f"{self.verdict} at schedule {self.index}: {self.violation.describe()}"]
        if self.shrunk is not None:
            s = self.shrunk
            lines.append(
                f"shrunk: {s.preemptions_before} -> {s.preemptions_after} preemptions, "
                f"failure at step {s.steps_before} -> {s.steps_after} ({s.attempts} replays)"
            )
        token = self.shrunk_token or self.token
        if token:
            lines.append(f"replay: odp-async replay {token}")
        return "\n".join(lines)


@attrs.frozen
class ExploreResult:
    """What an exploration did and found."""

    label: str
    config: ExploreConfig
    schedules: int
    pruned: int
    steps: int
    complete: bool
    bound: int | None
    failure: Failure | None
    elapsed: float

    @property
    def verdict(self) -> Verdict:
        return self.failure.verdict if self.failure is not None else Verdict.CLEAN

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.elapsed if self.elapsed > 0 else 0.0


def explore(
    scenario: str | Scenario,
    protocol: str | None = None,
    config: ExploreConfig | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    **config_fields: Any,
) -> ExploreResult:
    """Explore a scenario (by name or object).  ``config_fields`` override ``config``."""
    config = (config or ExploreConfig()).evolve(**config_fields) if config_fields else config
    return explore_target(Target.resolve(scenario, protocol, options), config or ExploreConfig())


def explore_target(target: Target, config: ExploreConfig) -> ExploreResult:
    if config.jobs > 1 and target.source is None:
        raise InvalidArgument(
            f"scenario {target.scenario.name!r} has no name another process can find it "
            "by; explore it with jobs=1"
        )
    start = time.perf_counter()
    if config.chooser == "dfs":
        schedules, pruned, steps, complete, bound, hit = _explore_dfs(target, config)
    elif config.chooser == "dpor":
        schedules, pruned, steps, complete, bound, hit = _explore_dpor(target, config)
    else:
        schedules, steps, hit = _explore_seeded(target, config)
        pruned, complete, bound = 0, False, None
    failure = None
    if hit is not None:
        failure = _make_failure(target, config, *hit)
    return ExploreResult(
        target.label,
        config,
        schedules,
        pruned,
        steps,
        complete,
        bound,
        failure,
        time.perf_counter() - start,
    )


def _make_failure(
    target: Target, config: ExploreConfig, index: int, schedule: tuple[int, ...]
) -> Failure:
    execution = target.run(ReplayChooser(schedule), max_steps=config.max_steps)
    token = _token(target, schedule, execution, config.max_steps)
    if not config.shrink or execution.failure is None:
        return Failure(index, execution, schedule, token)
    shrunk = shrink(target, schedule, execution.failure.kind, max_steps=config.max_steps)
    shrunk_target = target.with_params(**shrunk.params)
    shrunk_token = _token(shrunk_target, shrunk.schedule, shrunk.execution, config.max_steps)
    return Failure(index, execution, schedule, token, shrunk, shrunk_token)


def _token(
    target: Target, schedule: tuple[int, ...], execution: Execution, max_steps: int
) -> str | None:
    if target.source is None:
        return None
    return encode_token(target, schedule, execution, max_steps)


# --- random and pct ----------------------------------------------------------------------


def _steps_hint(target: Target, config: ExploreConfig) -> int:
    """PCT's k: the most choice points seen in a few probe runs (one that never
    preempts, and a few random ones, all seeded from the config: a fixed k, so every
    schedule stays a function of its index alone)."""
    runs = [target.run(FifoChooser(), max_steps=config.max_steps)]
    for i in range(PCT_PROBES):
        seed = derive_seed(config.seed, -1 - i)
        runs.append(target.run(RandomChooser(seed), max_steps=config.max_steps))
    # Rather over- than under-estimate: a change point past the real k is merely unused,
    # while a k too small puts every change point early and can miss a bug for good; but
    # every doubling of k costs a factor 2^(d-1) in PCT's bound.
    most = max(1, *(len(r.sim.schedule) for r in runs))
    return most + (most + 3) // 4


def _chooser_for(config: ExploreConfig, index: int, steps_hint: int) -> Chooser:
    seed = derive_seed(config.seed, index)
    if config.chooser == "pct":
        return PctChooser(seed, depth=config.depth, steps_hint=steps_hint)
    return RandomChooser(seed)


_Hit = tuple[int, tuple[int, ...]]


def _run_range(
    target: Target, config: ExploreConfig, first: int, last: int, steps_hint: int
) -> tuple[int, int, _Hit | None]:
    """Run schedules ``first..last-1``; stop at the first failure when asked."""
    ran = steps = 0
    hit: _Hit | None = None
    for index in range(first, last):
        execution = target.run(_chooser_for(config, index, steps_hint), max_steps=config.max_steps)
        ran += 1
        steps += execution.sim.steps
        if execution.is_failure and hit is None:
            hit = (index + 1, execution.sim.schedule)
            if config.stop_on_first:
                break
    return ran, steps, hit


def _worker(
    source: str,
    protocol: str | None,
    options: dict[str, Any],
    config: ExploreConfig,
    first: int,
    last: int,
    steps_hint: int,
) -> tuple[int, int, _Hit | None]:
    target = Target.resolve(source, protocol, options)
    return _run_range(target, config, first, last, steps_hint)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for first in range(0, total, size):
        yield first, min(total, first + size)


def _explore_seeded(target: Target, config: ExploreConfig) -> tuple[int, int, _Hit | None]:
    steps_hint = _steps_hint(target, config) if config.chooser == "pct" else 0
    if config.jobs == 1 or config.schedules < SERIAL_BELOW:  # a pool costs 20-50 ms
        return _run_range(target, config, 0, config.schedules, steps_hint)
    assert target.source is not None
    size = max(1, min(50, config.schedules // (config.jobs * 4) or 1))
    context = multiprocessing.get_context("fork" if "fork" in _start_methods() else "spawn")
    ran = steps = 0
    best: _Hit | None = None
    with concurrent.futures.ProcessPoolExecutor(config.jobs, mp_context=context) as pool:
        futures = {
            pool.submit(
                _worker,
                target.source,
                target.protocol,
                dict(target.options),
                config,
                first,
                last,
                steps_hint,
            ): first
            for first, last in _chunks(config.schedules, size)
        }
        for future in concurrent.futures.as_completed(futures):
            if future.cancelled():
                continue
            r, s, hit = future.result()
            ran += r
            steps += s
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
            if config.stop_on_first and best is not None:
                # Every chunk that could hold an earlier failure must still finish.
                for f, first in futures.items():
                    if first >= best[0]:
                        f.cancel()
    return ran, steps, best


def _start_methods() -> list[str]:
    return multiprocessing.get_all_start_methods()


# --- dfs -------------------------------------------------------------------------------------


def _explore_dfs(
    target: Target, config: ExploreConfig
) -> tuple[int, int, int, bool, int | None, _Hit | None]:
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
    ran = pruned = steps = 0
    hit: _Hit | None = None
    bound: int | None = None
    while ran < config.schedules and chooser.has_more:
        try:
            execution = target.run(chooser, max_steps=config.max_steps)
        except PrunedExecution:
            pruned += 1
            continue
        ran += 1
        steps += execution.sim.steps
        if execution.is_failure and hit is None:
            hit = (ran, execution.sim.schedule)
            bound = chooser.bound
            if config.stop_on_first:
                return ran, pruned, steps, False, bound, hit
    if hit is not None:
        return ran, pruned, steps, chooser.is_complete, bound, hit
    return ran, pruned, steps, chooser.is_complete, chooser.complete_bound, None


def _explore_dpor(
    target: Target, config: ExploreConfig
) -> tuple[int, int, int, bool, int | None, _Hit | None]:
    # schedules = traces run to their end; complete = every trace, and the preemption
    # bound (if any) cut nothing: a bounded DPOR does not cover its bound (Coons et al.).
    # bound = the configured bound, on a hit and on a miss alike.
    chooser = DporChooser(
        config.preemption_bound,
        trust_primitives=config.trust_primitives and not target.scenario.needs_world,
    )
    ran = pruned = steps = 0
    hit: _Hit | None = None
    while ran < config.schedules and chooser.has_more:
        try:
            execution = target.run(chooser, max_steps=config.max_steps)
        except PrunedExecution:
            pruned += 1
            continue
        ran += 1
        steps += execution.sim.steps
        if execution.is_failure and hit is None:
            hit = (ran, execution.sim.schedule)
            if config.stop_on_first:
                return ran, pruned, steps, False, config.preemption_bound, hit
    return ran, pruned, steps, chooser.is_exhaustive, config.preemption_bound, hit
