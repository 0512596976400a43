"""Shrinking: turn a failing schedule into a shorter one a person can follow.

Contract
    `shrink(target, schedule, kind)` searches for a schedule that still fails with the same
    violation kind and is simpler, where "simpler" is one key (`sort_key`): fewer
    preemptions first, then fewer steps to the failure, then fewer recorded choices.  Each
    candidate is replayed with `LenientReplay`: the candidate's answers while they fit,
    then the non-preemptive default (keep running the task that ran last, else the oldest
    runnable).  Passes, in order, each run once (no loop to a fixed point):

    1. truncate: the shortest prefix of answers that still fails (bisection);
    2. drop preemptions: each preemptive answer, from the last to the first, replaced by
       the non-preemptive one, kept if the run still fails with the same kind;
    3. truncate again;
    4. fewer actor operations: each integer parameter of the scenario (`Scenario.params`,
       such as a storm's rounds) halved while the failure stays, the schedule tidied again
       after each success.

    The result carries the exact schedule of the best run (replayable with
    `ReplayChooser`), its execution, and the before/after measures.  Deterministic: the
    same input gives the same output.

See also
    Hypothesis's shrinker (``sort_key``, passes that do not loop); `odp_async.explore.runner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .target import Execution, Target

__all__ = ["LenientReplay", "ShrinkResult", "shrink"]


class LenientReplay:
    """Replays recorded answers while they fit, then runs non-preemptively; records all.

    After an execution: `taken` is the exact schedule used (replayable with
    `ReplayChooser`), `defaults` the non-preemptive answer at each choice point, and
    `is_choice` whether that point chose a task (True) or a value (False).
    """

    __slots__ = ("_pos", "answers", "defaults", "is_choice", "preemptions", "taken")

    def __init__(self, answers: Sequence[int]) -> None:
        self.answers = tuple(answers)
        self._pos = 0
        self.taken: list[int] = []
        self.defaults: list[int] = []
        self.is_choice: list[bool] = []
        self.preemptions = 0

    def new_execution(self) -> None:
        self._pos = 0
        self.taken, self.defaults, self.is_choice = [], [], []
        self.preemptions = 0

    def _next(self, n: int, default: int) -> int:
        pos = self._pos
        self._pos += 1
        if pos < len(self.answers) and self.answers[pos] < n:
            return self.answers[pos]
        return default

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        default = runnable.index(last) if last is not None else 0
        c = self._next(len(runnable), default)
        if last is not None and c != default:
            self.preemptions += 1
        self.taken.append(c)
        self.defaults.append(default)
        self.is_choice.append(True)
        return c

    def draw(self, n: int, label: object) -> int:
        c = self._next(n, 0)
        self.taken.append(c)
        self.defaults.append(c)
        self.is_choice.append(False)
        return c


@attrs.frozen
class ShrinkResult:
    schedule: tuple[int, ...]
    execution: Execution
    preemptions_before: int
    preemptions_after: int
    steps_before: int
    steps_after: int
    attempts: int
    #: The scenario parameters of the shrunk run (a smaller storm...): the target to
    #: replay `schedule` on is ``target.with_params(**params)``.
    params: dict[str, int] = attrs.field(factory=dict)


def sort_key(preemptions: int, execution: Execution, schedule: Sequence[int]) -> tuple[int, ...]:
    """What "simpler" means: fewer preemptions, then an earlier failure, then fewer choices."""
    failure = execution.failure
    step = failure.step if failure is not None else execution.sim.steps
    return (preemptions, step, execution.sim.steps, len(schedule))


def shrink(
    target: Target,
    schedule: Sequence[int],
    kind: str,
    *,
    max_steps: int,
    budget: int = 400,
) -> ShrinkResult:
    """Shrink `schedule` (which fails on `target` with `kind`) within `budget` replays."""
    attempts = 0
    current = target

    def attempt(answers: Sequence[int]) -> tuple[LenientReplay, Execution] | None:
        nonlocal attempts
        attempts += 1
        chooser = LenientReplay(answers)
        execution = current.run(chooser, max_steps=max_steps)
        failure = execution.failure
        if failure is None or failure.kind != kind:
            return None
        return chooser, execution

    first = attempt(schedule)
    if first is None:
        raise ValueError(f"the schedule does not fail with {kind!r} on {target.label}")
    best_chooser, best = first
    before = (best_chooser.preemptions, best.failure.step if best.failure else best.sim.steps)

    def key(pair: tuple[LenientReplay, Execution]) -> tuple[int, ...]:
        return sort_key(pair[0].preemptions, pair[1], pair[0].taken)

    def consider(candidate: Sequence[int]) -> None:
        if attempts >= budget:
            return
        got = attempt(candidate)
        if got is not None and key(got) < key((best_chooser, best)):
            adopt(got)

    def truncate() -> None:
        # Bisect for the shortest failing prefix of the current best answers (a prefix
        # that fails is kept only if it is simpler, see `consider`).
        base = list(best_chooser.taken)
        lo, hi = 0, len(base)
        while lo < hi and attempts < budget:
            mid = (lo + hi) // 2
            got = attempt(base[:mid])
            if got is None:
                lo = mid + 1
                continue
            hi = mid
            if key(got) < key((best_chooser, best)):
                adopt(got)

    def adopt(pair: tuple[LenientReplay, Execution]) -> None:
        nonlocal best_chooser, best
        best_chooser, best = pair

    def drop_preemptions() -> None:
        for j in range(len(best_chooser.taken) - 1, -1, -1):
            if attempts >= budget:
                break
            replay = best_chooser
            if j >= len(replay.taken) or not replay.is_choice[j]:
                continue
            if replay.taken[j] == replay.defaults[j]:
                continue
            candidate = list(replay.taken)
            candidate[j] = replay.defaults[j]
            consider(candidate)

    truncate()
    drop_preemptions()
    truncate()

    # Fewer actor operations, where the scenario has integer parameters: halve each while
    # the failure (same kind, no more preemptions) stays, then tidy the schedule again.
    for name in sorted(current.scenario.params):
        while current.scenario.params[name] > 1 and attempts < budget:
            smaller = current.scenario.params[name] // 2
            previous = current
            current = current.with_params(**{name: smaller})
            got = attempt(best_chooser.taken)
            if got is None or got[0].preemptions > best_chooser.preemptions:
                current = previous
                break
            adopt(got)
            truncate()
            drop_preemptions()

    after_step = best.failure.step if best.failure else best.sim.steps
    return ShrinkResult(
        tuple(best_chooser.taken),
        best,
        before[0],
        best_chooser.preemptions,
        before[1],
        after_step,
        attempts,
        dict(current.params),
    )
