"""Shrinking: turn a failing schedule into a shorter one a person can follow.

Contract
    `shrink(target, schedule, kind)` searches for a schedule that still shows the same
    failure and is simpler.  The same failure: the same **failure signature**
    (`odp_async.explore.signature.failure_signature`) as the replay of the given
    schedule -- for an ``error``, the exception's type and its raise site (the file and
    line of each frame of the program's code, not the message); for a deadlock, the
    blocked tasks and what each waits on; for a model violation, the kind and the check
    (its detail, numbers aside) -- so a program with two bugs never has one reported as
    the other.  "Simpler" is one key (`sort_key`): fewer
    preemptions first, then fewer steps to the failure, then fewer recorded choices.  Each
    candidate is replayed with `LenientReplay`: the candidate's answers while they fit,
    then the non-preemptive default (keep running the task that ran last, else the oldest
    runnable).  A candidate's answers are either indices among the runnable tasks (the
    recorded schedule) or, once the first replay ran, *task ids* (`LenientReplay` with
    ``by_id=True``: run that task if it is runnable, else the default), so that removing
    one preemption does not change what the later answers mean.  The passes, repeated
    until a round improves nothing (a **local minimum**) or the replay budget is spent:

    1. truncate: the shortest prefix of answers that still fails (bisection);
    2. drop preemptions one at a time: each preemptive answer, from the last to the
       first, replaced by the non-preemptive one;
    3. drop preemptions in runs: blocks of 8, 4 and 2 consecutive preemptive answers at
       once (a preemption that only matters together with its neighbour goes too);
    4. delete answers: each preemptive answer removed, the later ones moved up;
    5. cut streaks: each run of `MIN_STREAK` or more consecutive choices of one task
       (a task spinning, ``while not flag: await checkpoint()``), longest first, cut
       to its first choice, the later answers moved up (a spinner that DPOR let spin
       to half the step bound no longer shows its thousand turns);
    0. (first in each round) fewer actor operations: each integer parameter of the
       scenario (`Scenario.params`, such as a storm's rounds) halved while the failure
       stays with no more preemptions.

    A candidate is kept only if its failure has the signature, is simpler, and fails no
    later than the given schedule did (its failure step at most the given one's): a
    preemption is never traded for length.  Without that cap, dropping the preemption
    that stopped a spinning task (``while not flag: await checkpoint()``) lets it spin
    up to the step bound, and the failure then comes from the fair continuation after
    it (`odp_async.explore.fairness`): one preemption fewer, a hundred times longer (a
    failure at step 21 shown at step 3,011).  Then, if
    the result has ``p > 0`` preemptions, a plain depth-first search (no reduction,
    iterative preemption bounding: every schedule of 0 preemptions, then of 1..., at
    most `proof_budget` executions) looks for a schedule of at most
    ``min(p, MAX_PROOF_PREEMPTIONS + 1) - 1`` preemptions failing with the signature
    by the passes' result's failure step (its runs stop just past it).  One it finds
    replaces the result and is **minimal** (`ShrinkResult.minimal` True: no schedule of
    fewer preemptions shows that violation by that step, for these parameters), as
    every lower level ran first.  If it runs every schedule of at most ``p - 1``
    preemptions (``p <= MAX_PROOF_PREEMPTIONS + 1``) and finds none, the result is
    minimal.  ``minimal`` is None when the search could not tell within its budget, or
    when ``p`` is above its range and it found nothing.

    The result carries the exact schedule of the best run (replayable with
    `ReplayChooser`), its execution, and the before/after measures.  Deterministic: the
    same input gives the same output.

See also
    Hypothesis's shrinker (``sort_key``, passes to a fixed point); `odp_async.explore.runner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import attrs

from .._runtime.interrupts import marking_ctrl_c
from ..check import VIOLATION_KINDS
from ..errors import InvalidArgument, NondeterminismError
from .arguments import require_int, require_schedule, show
from .config import MAX_SCHEDULES, MAX_STEPS
from .dfs import DfsChooser, PrunedExecution
from .signature import FailureSignature, failure_signature
from .target import Execution, Target

__all__ = ["MAX_PROOF_PREEMPTIONS", "LenientReplay", "ShrinkResult", "shrink"]


#: Answers of a by-id candidate: a task id, a draw's value, or None (the default).
Answer = int | None

#: The most preemptions of the schedules the proof search runs (they grow about as
#: steps^p): it proves a result of at most this many + 1 preemptions minimal.
MAX_PROOF_PREEMPTIONS: Final = 3


class LenientReplay:
    """Replays recorded answers while they fit, then runs non-preemptively; records all.

    ``LenientReplay(answers)``: indices among the runnable tasks; ``by_id=True``: task
    ids (a choice point runs the task with that id if it is runnable) and draw values,
    None meaning the default.  After an execution: `taken` is the exact schedule used
    (replayable with `ReplayChooser`), `taken_ids` the task ids chosen (a draw's value
    at a draw), `defaults` the non-preemptive answer at each choice point, and
    `is_choice` whether that point chose a task (True) or a value (False).
    """

    __slots__ = (
        "_pos",
        "answers",
        "by_id",
        "defaults",
        "is_choice",
        "preemptions",
        "taken",
        "taken_ids",
    )

    def __init__(self, answers: Sequence[Answer], *, by_id: bool = False) -> None:
        self.answers = tuple(answers)
        self.by_id = by_id
        self._pos = 0
        self.taken: list[int] = []
        self.taken_ids: list[int] = []
        self.defaults: list[int] = []
        self.is_choice: list[bool] = []
        self.preemptions = 0

    def new_execution(self) -> None:
        self._pos = 0
        self.taken, self.taken_ids, self.defaults, self.is_choice = [], [], [], []
        self.preemptions = 0

    def _answer(self) -> Answer:
        pos = self._pos
        self._pos += 1
        return self.answers[pos] if pos < len(self.answers) else None

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        default = runnable.index(last) if last is not None else 0
        want = self._answer()
        c = default
        if want is not None:
            if not self.by_id:
                c = want if 0 <= want < len(runnable) else default
            else:
                c = next((i for i, t in enumerate(runnable) if _task_id(t) == want), default)
        if last is not None and c != default:
            self.preemptions += 1
        self.taken.append(c)
        self.taken_ids.append(_task_id(runnable[c]))
        self.defaults.append(default)
        self.is_choice.append(True)
        return c

    def draw(self, n: int, label: object) -> int:
        want = self._answer()
        c = want if want is not None and 0 <= want < n else 0
        self.taken.append(c)
        self.taken_ids.append(c)
        self.defaults.append(c)
        self.is_choice.append(False)
        return c


def _task_id(task: Any) -> int:
    """A task's id (unique within a run, in spawn order); its position for anything else."""
    ident = getattr(task, "id", None)
    return ident if isinstance(ident, int) else -1


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
    #: True: no schedule of fewer preemptions shows the failure (its signature; a bounded
    #: search ran them all); None: not known (too many preemptions, or the search's budget).
    minimal: bool | None = None
    #: Rounds of the passes run (the last improved nothing, unless the budget ran out).
    rounds: int = 0
    #: The failure kept: the signature of the given schedule's replay, and of `execution`.
    signature: FailureSignature | None = None


def sort_key(preemptions: int, execution: Execution, schedule: Sequence[int]) -> tuple[int, ...]:
    """What "simpler" means: fewer preemptions, then an earlier failure, then fewer choices."""
    failure = execution.failure
    step = failure.sim_step if failure is not None else execution.sim.steps
    return (preemptions, step, execution.sim.steps, len(schedule))


#: How the `NondeterminismError` of a replay that does not fail tells a Python caller to
#: skip shrinking (the CLI shows its own flag instead: `CLI_NO_SHRINK_HINT`).
NO_SHRINK_HINT: Final = "explore with shrink=False to report the failure without replaying it"
CLI_NO_SHRINK_HINT: Final = "--no-shrink reports the failure without replaying it"

#: The most rounds of passes (each must improve the result to be followed by another).
MAX_ROUNDS: Final = 20

#: The least growth of the failure step a candidate may bring (see `_cap`).
MIN_CAP: Final = 16

#: The shortest run of one task's consecutive choices the streak pass tries to cut.
MIN_STREAK: Final = 4


def shrink(
    target: Target,
    schedule: Sequence[int],
    kind: str,
    *,
    max_steps: int,
    budget: int = 1000,
    proof_budget: int = 300,
) -> ShrinkResult:
    """Shrink `schedule` (which fails on `target` with `kind`) within `budget` replays,
    keeping the failure signature of its replay (`ShrinkResult.signature`),
    then try to prove the preemption count minimal within `proof_budget` executions
    (0: no proof).  Raises `NondeterminismError` if a replay of `schedule` does not fail
    so (the program's runs are not a function of their schedule).  Ctrl-C is marked
    meanwhile (a program's own `KeyboardInterrupt` is its error, as the explorer saw it:
    `odp_async._runtime.interrupts`).  Raises `InvalidArgument` for a bad value of any
    argument (a `kind` that is no violation kind, a `budget` below 1...)."""
    if not isinstance(target, Target):
        raise InvalidArgument(f"target must be a Target (Target.resolve), got {show(target)}")
    require_schedule("schedule", schedule)
    if kind not in VIOLATION_KINDS:
        raise InvalidArgument(
            f"kind must be a violation kind ({', '.join(VIOLATION_KINDS)}), got {show(kind)}"
        )
    require_int("max_steps", max_steps, 1, MAX_STEPS)
    require_int("budget", budget, 1, MAX_SCHEDULES)
    require_int("proof_budget", proof_budget, 0, MAX_SCHEDULES)
    with marking_ctrl_c():
        return _shrink(target, schedule, kind, max_steps, budget, proof_budget)


def _shrink(
    target: Target,
    schedule: Sequence[int],
    kind: str,
    max_steps: int,
    budget: int,
    proof_budget: int,
) -> ShrinkResult:
    attempts = 0
    current = target
    # No candidate fails later than the given schedule (set once it is replayed).
    latest: int | None = None

    # The failure to keep (set once the given schedule is replayed): a candidate that
    # fails otherwise (another exception, raised elsewhere) is not this failure.
    signature: FailureSignature | None = None

    def attempt(answers: Sequence[Answer], by_id: bool = True) -> _Run | None:
        nonlocal attempts
        attempts += 1
        chooser = LenientReplay(answers, by_id=by_id)
        execution = current.run(chooser, max_steps=max_steps)
        failure = execution.failure
        if failure is None or failure.kind != kind:
            return None
        if signature is not None and failure_signature(execution) != signature:
            return None  # a failure of the same kind, but another one
        if latest is not None and _step(execution) > latest:
            return None  # fewer preemptions, but a run that grew past the cap
        return chooser, execution

    first = attempt(schedule, by_id=False)
    if first is None:
        raise NondeterminismError(
            f"a run of {target.label} failed with {kind!r}, but its replay does not: the "
            "program is not deterministic (does it keep state between runs, e.g. in a "
            f"module global?); {NO_SHRINK_HINT}"
        )
    best: _Run = first
    signature = failure_signature(first[1])
    before = (best[0].preemptions, _step(best[1]))
    latest = _cap(before[1], max_steps)

    def key(run: _Run) -> tuple[int, ...]:
        return sort_key(run[0].preemptions, run[1], run[0].taken)

    def consider(candidate: Sequence[Answer]) -> bool:
        nonlocal best
        if attempts >= budget:
            return False
        got = attempt(candidate)
        if got is not None and key(got) < key(best):
            best = got
            return True
        return False

    def ids() -> list[Answer]:
        return list(best[0].taken_ids)

    def preemptive() -> list[int]:
        r = best[0]
        return [j for j in range(len(r.taken)) if r.is_choice[j] and r.taken[j] != r.defaults[j]]

    def truncate() -> bool:
        nonlocal best
        base = ids()
        lo, hi = 0, len(base)
        improved = False
        while lo < hi and attempts < budget:
            mid = (lo + hi) // 2
            got = attempt(base[:mid])
            if got is None:
                lo = mid + 1
                continue
            hi = mid
            if key(got) < key(best):
                best, improved = got, True
        return improved

    def each_preemption(delete: bool) -> bool:
        # One at a time, from the last: the answer at a preemption goes (None: the
        # default choice there) or, with `delete`, the choice point's answer is removed.
        improved = False
        for j in reversed(preemptive()):
            if attempts >= budget:
                break
            candidate = ids()
            if j < len(candidate):
                if delete:
                    del candidate[j]
                else:
                    candidate[j] = None
                improved |= consider(candidate)
        return improved

    def drop_one() -> bool:
        return each_preemption(delete=False)

    def drop_runs() -> bool:
        improved = False
        for size in (8, 4, 2):
            points = preemptive()
            k = len(points) - size
            while k >= 0 and attempts < budget:
                candidate = ids()
                block = points[k : k + size]
                for j in block:
                    if j < len(candidate):
                        candidate[j] = None
                if consider(candidate):
                    improved = True
                    points = preemptive()
                    k = min(k, len(points)) - size
                else:
                    k -= size
        return improved

    def delete_one() -> bool:
        return each_preemption(delete=True)

    def cut_streaks() -> bool:
        improved = False
        tried: set[tuple[int, int]] = set()
        while attempts < budget:
            streaks = [s for s in _streaks(best[0]) if s not in tried]
            if not streaks:
                break
            start, end = max(streaks, key=lambda s: (s[1] - s[0], -s[0]))
            tried.add((start, end))
            candidate = ids()
            del candidate[start + 1 : end]
            if consider(candidate):
                improved = True
                tried.clear()
        return improved

    def fewer_operations() -> bool:
        nonlocal current, best
        improved = False
        for name in sorted(current.scenario.params):
            while current.scenario.params[name] > 1 and attempts < budget:
                previous = current
                current = current.with_params(**{name: current.scenario.params[name] // 2})
                got = attempt(ids())
                if got is None or got[0].preemptions > best[0].preemptions:
                    got = attempt(best[0].taken, by_id=False)
                if got is None or got[0].preemptions > best[0].preemptions:
                    current = previous
                    break
                best, improved = got, True
        return improved

    def drop_by_index() -> bool:
        # the recorded answers as indices, each preemptive one replaced by the default
        improved = False
        for j in reversed(preemptive()):
            if attempts >= budget:
                break
            r = best[0]
            if j < len(r.taken) and r.is_choice[j] and r.taken[j] != r.defaults[j]:
                candidate: list[Answer] = list(r.taken)
                candidate[j] = r.defaults[j]
                got = attempt(candidate, by_id=False)
                if got is not None and key(got) < key(best):
                    best_set(got)
                    improved = True
        return improved

    def best_set(run: _Run) -> None:
        nonlocal best
        best = run

    def halve_then_tidy() -> None:
        # fewer actor operations first, tidying the schedule after each success
        nonlocal current
        for name in sorted(current.scenario.params):
            while current.scenario.params[name] > 1 and attempts < budget:
                previous = current
                current = current.with_params(**{name: current.scenario.params[name] // 2})
                got = attempt(best[0].taken, by_id=False)
                if got is None or got[0].preemptions > best[0].preemptions:
                    current = previous
                    break
                best_set(got)
                truncate()
                drop_by_index()

    # The first round as the indices say (truncate, drop, truncate, fewer operations),
    # then rounds of every pass by task id to a fixed point.
    truncate()
    drop_by_index()
    truncate()
    halve_then_tidy()
    rounds = 1
    while rounds < MAX_ROUNDS and attempts < budget:
        rounds += 1
        improved = fewer_operations()
        for shrink_pass in (truncate, cut_streaks, drop_one, drop_runs, delete_one, truncate):
            improved |= shrink_pass()
        if not improved:
            break

    minimal: bool | None = None
    p = best[0].preemptions
    if p == 0:
        minimal = True
    elif proof_budget > 0:
        # above the proof's range, the search still looks below MAX_PROOF_PREEMPTIONS + 1
        # (the passes can stop at 4 for a 2-preemption bug): a find replaces the result
        below = min(p, MAX_PROOF_PREEMPTIONS + 1)
        # within the cap of the shrunk run's failure step
        found, minimal, level = _fewer_preemptions(
            current, signature, below, max_steps, proof_budget, _cap(_step(best[1]), max_steps)
        )
        if below < p:
            minimal = None  # only the schedules of fewer than `below` preemptions ran
        if found is not None:
            got = attempt(found, by_id=False)
            if got is not None and key(got) < key(best):
                best = got
                # the search ran every schedule of fewer than `level` preemptions first
                # (iterative bounding) and none failed so: a find within `level` is minimal
                minimal = True if best[0].preemptions <= level else None

    return ShrinkResult(
        tuple(best[0].taken),
        best[1],
        before[0],
        best[0].preemptions,
        before[1],
        _step(best[1]),
        attempts,
        dict(current.params),
        minimal,
        rounds,
        signature,
    )


_Run = tuple[LenientReplay, Execution]


def _streaks(run: LenientReplay) -> list[tuple[int, int]]:
    """The runs ``[start, end)`` of at least `MIN_STREAK` consecutive choice points that
    chose the same task (draws end a run)."""
    found: list[tuple[int, int]] = []
    start = 0
    n = len(run.taken_ids)
    for j in range(1, n + 1):
        same = (
            j < n
            and run.is_choice[j]
            and run.is_choice[start]
            and run.taken_ids[j] == run.taken_ids[start]
        )
        if not same:
            if j - start >= MIN_STREAK and run.is_choice[start]:
                found.append((start, j))
            start = j
    return found


def _cap(step: int, max_steps: int) -> int:
    """The latest failure step a candidate may have against a run failing at `step`:
    twice it (at least `MIN_CAP` more), and never past the step bound when `step` is
    within it (a failure the fair continuation found is the bound's doing)."""
    cap = max(2 * step, step + MIN_CAP)
    return min(cap, max_steps) if step <= max_steps else cap


def _step(execution: Execution) -> int:
    return execution.failure.sim_step if execution.failure else execution.sim.steps


def _fewer_preemptions(
    target: Target,
    signature: FailureSignature | None,
    preemptions: int,
    max_steps: int,
    budget: int,
    latest: int | None = None,
) -> tuple[tuple[int, ...] | None, bool | None, int]:
    """Search every schedule of at most ``preemptions - 1`` preemptions (plain dfs, no
    reduction, iterative bounding: level 0, then 1...) for one failing with `signature` by
    step `latest` (None: `max_steps`; its runs need go no further: the step bound is
    ``latest + 1``, if below `max_steps`, and the schedules that differ only past it
    are one): (its
    schedule, None, the level it was found at: no schedule of fewer preemptions fails
    so), or (None, True, -) when none exists, or (None, None, -) when `budget`
    executions could not tell."""
    chooser = DfsChooser(preemptions - 1, iterative=True, reduction=False)
    if latest is None:
        latest = max_steps
    bound = min(max_steps, latest + 1)
    ran = 0
    while chooser.has_more and ran < budget:
        ran += 1
        try:
            execution = target.run(chooser, max_steps=bound)
        except PrunedExecution:
            continue
        if (
            execution.failure is not None
            and failure_signature(execution) == signature
            and _step(execution) <= latest
        ):
            return execution.sim.schedule, None, chooser.bound or 0
    if chooser.is_complete:
        return None, True, preemptions - 1
    return None, None, 0
