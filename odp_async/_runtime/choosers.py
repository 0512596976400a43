"""Choosers: who decides, at each choice point of the sim, which task runs next.

Contract
    A chooser implements three calls, nothing more (the idea of shuttle's `Scheduler`):

    - ``new_execution()`` before each run;
    - ``choose(runnable, last) -> int``: an index into `runnable` (a list of sim tasks in
      a deterministic order; ``task.id`` identifies a task within one run); `last` is the
      task that ran the previous step, or None if it blocked or finished;
    - ``draw(n, label) -> int``: a value in ``range(n)`` the code under test asked for.

    The sim only asks when there is more than one option, and records every answer, in
    order, as the run's *schedule*.  All randomness comes from the chooser's own seeded
    generator: the same chooser state gives the same answers in any process.

See also
    `odp_async._runtime.sim.run`, which builds a `RandomChooser` from ``seed=``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import InvalidArgument, ReplayMismatch

__all__ = ["Chooser", "RandomChooser", "ReplayChooser"]


class Chooser(Protocol):
    """The interface the sim runtime asks "which task next?" and "which value?"."""

    def new_execution(self) -> None: ...

    def choose(self, runnable: Sequence[Any], last: Any) -> int: ...

    def draw(self, n: int, label: object) -> int: ...


class RandomChooser:
    """Uniform choices from a `random.Random` seeded with `seed`.

    Two instances built with the same seed answer the same questions identically, in any
    process (`random.Random` with an int seed is specified to be reproducible).
    ``new_execution()`` does not reseed: a sequence of executions continues one stream, so
    executions differ while the whole sequence stays reproducible.
    """

    __slots__ = ("_random", "seed")

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidArgument(f"seed must be an int, got {seed!r} ({type(seed).__name__})")
        self.seed = seed
        self._random = random.Random(seed).random

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return int(self._random() * len(runnable))

    def draw(self, n: int, label: object) -> int:
        return int(self._random() * n)

    def __repr__(self) -> str:
        return f"RandomChooser(seed={self.seed})"


class ReplayChooser:
    """Answers from a recorded schedule, in order.

    A recorded answer that does not fit the question (an index past the number of options)
    raises `ReplayMismatch` naming the position: the code changed since the recording, and
    the replay must not silently diverge.  When the recording runs out, the chooser either
    raises `ReplayMismatch` (``then=None``, the default) or hands over to `then`.
    """

    __slots__ = ("_choices", "_pos", "then")

    def __init__(self, choices: Sequence[int], *, then: Chooser | None = None) -> None:
        for i, c in enumerate(choices):
            if not isinstance(c, int) or isinstance(c, bool) or c < 0:
                raise InvalidArgument(
                    f"schedule entry {i} must be a non-negative int, "
                    f"got {c!r} ({type(c).__name__})"
                )
        self._choices = tuple(choices)
        self._pos = 0
        self.then = then

    @property
    def position(self) -> int:
        """How many recorded answers were consumed."""
        return self._pos

    @property
    def is_exhausted(self) -> bool:
        return self._pos >= len(self._choices)

    def new_execution(self) -> None:
        self._pos = 0
        if self.then is not None:
            self.then.new_execution()

    def _next(self, n: int, what: str) -> int:
        pos = self._pos
        if pos >= len(self._choices):
            raise ReplayMismatch(
                f"the recorded schedule has {len(self._choices)} choices, but the run asked "
                f"for choice {pos} ({what} among {n})"
            )
        c = self._choices[pos]
        if c >= n:
            raise ReplayMismatch(
                f"choice {pos} of the recorded schedule is {c}, but the run offers only "
                f"{n} options ({what}): the code no longer matches the recording"
            )
        self._pos = pos + 1
        return c

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        if self.then is not None and self._pos >= len(self._choices):
            return self.then.choose(runnable, last)
        return self._next(len(runnable), "runnable tasks")

    def draw(self, n: int, label: object) -> int:
        if self.then is not None and self._pos >= len(self._choices):
            return self.then.draw(n, label)
        return self._next(n, f"values for {label!r}")
