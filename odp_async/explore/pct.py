"""PCT: a randomized priority scheduler with a probabilistic guarantee of finding bugs.

Contract
    `PctChooser` implements the Probabilistic Concurrency Testing scheduler of Burckhardt,
    Kothari, Musuvathi and Nagarakatte, "A Randomized Scheduler with Probabilistic
    Guarantees of Finding Bugs" (ASPLOS 2010).  Each execution:

    - every task gets a distinct random priority the first time the chooser sees it; all
      of these *initial* priorities are above `depth`;
    - ``depth - 1`` *change points* are drawn uniformly, without repetition, from the
      choice points ``1..steps_hint``;
    - at every choice point the highest-priority runnable task runs; at the i-th change
      point (in increasing order), the task that would run has its priority lowered to
      ``depth - i``, below every initial priority, and the highest runnable task is picked
      again.

    The paper's guarantee: for a program with `n` threads and `k` steps, one execution
    finds a given bug of depth `d` (the number of ordering constraints that must hold to
    show it) with probability at least ``1 / (n * k**(d - 1))``.

    Where this implementation deviates from the paper (as shuttle's ``pct.rs`` does):

    - `k` is a *hint* (`steps_hint`), counted in choice points (steps where more than one
      task was runnable), not in steps, and it is not known in advance: an explorer
      updates it between runs, ``c.steps_hint = c.max_choice_points`` (the most choice
      points a run had so far).  The first run alone is a poor guide: running tasks by
      priority gives it few choice points.  Change points past the end of a shorter run
      never happen; choice points past `k` never see one.  The bound holds only when the
      hint is at least the real number of choice points.
    - `n` is not known in advance either: a task spawned later gets its random initial
      priority when first seen runnable, i.e. a uniformly random rank among the initial
      priorities, which is what a random permutation drawn up front would give it.
    - Value choices (`draw`) are uniform from the execution's generator; the guarantee
      says nothing about bugs that also need a particular value.
    - Blocked tasks keep their priority; priorities are real numbers (ties, which have
      probability zero, go to the lower task id so the run stays deterministic).

    All randomness comes from ``random.Random(seed)``: each execution draws its own seed
    from it (`execution_seed`), so the same seed gives the same sequence of executions
    as long as the same `steps_hint` updates are made between them.

Concurrency
    One chooser drives one sim run at a time, on the caller's thread.  Nothing is shared
    between instances.

See also
    `odp_async.explore.dfs` (exhaustive search), `odp_async._runtime.choosers` (the
    chooser protocol), shuttle's ``shuttle-schedulers/src/pct.rs``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidArgument

__all__ = ["PctChooser"]


def _check_int(name: str, value: object, minimum: int | None) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or (minimum is not None and value < minimum)
    ):
        expected = "an int" if minimum is None else f"an int >= {minimum}"
        raise InvalidArgument(
            f"{name} must be {expected}, got {value!r} ({type(value).__name__})", name, value
        )
    return value


class PctChooser:
    """Probabilistic Concurrency Testing: `depth` - 1 priority changes per execution.

    ``PctChooser(seed, depth=3, steps_hint=100)``; `depth` is the bug depth `d` targeted
    (``depth=1``: no change point, a random priority order per execution).  After a run,
    `last_choice_points` is the number of choice points it had and `max_choice_points`
    the most any run had: an explorer sets ``chooser.steps_hint = max_choice_points``,
    and the new hint applies from the next execution.
    """

    __slots__ = (
        "_change_points",
        "_choice_points",
        "_exec_random",
        "_priorities",
        "_random",
        "_steps_hint",
        "depth",
        "execution_seed",
        "executions",
        "last_choice_points",
        "max_choice_points",
        "seed",
    )

    def __init__(self, seed: int, depth: int = 3, steps_hint: int = 100) -> None:
        self.seed = _check_int("seed", seed, None)
        self.depth = _check_int("depth", depth, 1)
        self._steps_hint = _check_int("steps_hint", steps_hint, 1)
        self._random = random.Random(seed)
        #: How many executions were started (`new_execution` calls).
        self.executions = 0
        #: The seed of the current execution's generator (drawn from the chooser's own).
        self.execution_seed = 0
        #: Choice points of the current (or last) execution so far.
        self.last_choice_points = 0
        #: The most choice points any execution had so far.
        self.max_choice_points = 0
        self._choice_points = 0
        self._exec_random = random.Random(0)
        # Task id -> priority.  Invariant: initial priorities are > depth, lowered ones are
        # the ints 1..depth-1, each given at most once per execution.
        self._priorities: dict[int, float] = {}
        # Choice point number (1-based) -> the new priority given there.
        self._change_points: dict[int, int] = {}

    @property
    def steps_hint(self) -> int:
        """`k`: the choice points change points are drawn from.  Settable, >= 1."""
        return self._steps_hint

    @steps_hint.setter
    def steps_hint(self, value: int) -> None:
        self._steps_hint = _check_int("steps_hint", value, 1)

    def new_execution(self) -> None:
        self.executions += 1
        self.execution_seed = self._random.getrandbits(64)
        rng = random.Random(self.execution_seed)
        self._exec_random = rng
        self._priorities = {}
        self._choice_points = 0
        self.last_choice_points = 0
        count = min(self.depth - 1, self._steps_hint)
        points = sorted(rng.sample(range(1, self._steps_hint + 1), count))
        # The i-th change point (1-based, in increasing order) lowers to depth - i.
        self._change_points = {k: self.depth - i for i, k in enumerate(points, start=1)}

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        self._choice_points += 1
        self.last_choice_points = self._choice_points
        self.max_choice_points = max(self.max_choice_points, self._choice_points)
        priorities = self._priorities
        for task in runnable:
            if task.id not in priorities:
                priorities[task.id] = self.depth + 1 + self._exec_random.random()
        best = self._highest(runnable)
        lowered = self._change_points.get(self._choice_points)
        if lowered is not None:
            assert 1 <= lowered < self.depth, "a lowered priority must sit below every initial one"
            priorities[runnable[best].id] = lowered
            best = self._highest(runnable)
        return best

    def _highest(self, runnable: Sequence[Any]) -> int:
        priorities = self._priorities
        best = 0
        best_key = (priorities[runnable[0].id], -runnable[0].id)
        for i in range(1, len(runnable)):
            task = runnable[i]
            key = (priorities[task.id], -task.id)
            if key > best_key:
                best, best_key = i, key
        return best

    def draw(self, n: int, label: object) -> int:
        return self._exec_random.randrange(n)

    def __repr__(self) -> str:
        return f"PctChooser(seed={self.seed}, depth={self.depth}, steps_hint={self._steps_hint})"
