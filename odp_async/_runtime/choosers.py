"""Choosers: who decides, at each choice point of the sim, which task runs next.

Contract
    A chooser implements three calls, nothing more (the idea of shuttle's `Scheduler`):

    - ``new_execution()`` before each run;
    - ``choose(runnable, last) -> int``: an index into `runnable` (a list of sim tasks in
      a deterministic order; ``task.id`` identifies a task within one run); `last` is the
      task that ran the previous step, or None if it blocked or finished;
    - ``draw(n, label) -> int``: a value in ``range(n)`` the code under test asked for.

    The sim only asks when there is more than one option (unless the chooser sets
    ``ask_always``), and records every answer given among several options, in order, as
    the run's *schedule*.  All randomness comes from the chooser's own seeded
    generator: the same chooser state gives the same answers in any process.

See also
    `odp_async._runtime.sim.run`, which builds a `RandomChooser` from ``seed=``.
"""

from __future__ import annotations

import array
import hashlib
import itertools
import random
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from ..errors import InvalidArgument, ReplayMismatch
from ._base import Waiter
from .labels import label_text, page_addresses

__all__ = [
    "Chooser",
    "FifoChooser",
    "RandomChooser",
    "ReplayChooser",
    "ScriptChooser",
    "StreamChooser",
]


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


_BLAKE2B = hashlib.blake2b
_array = array.array
_unpack_words = struct.Struct("<16I").unpack
_chain_blocks = itertools.chain.from_iterable


def _blocks(name: bytes) -> Iterator[Sequence[int]]:
    """Blocks 0, 1, 2 ... of the stream `name` (``b"seed/index/"``): BLAKE2b (64-byte
    digests) of ``name + b"k"``, each read as 16 little-endian 32-bit words.  One
    generator step per block; a C iterator reads the words (`StreamChooser._words`).

    A block is an ``array("I")`` made straight from the digest: its words become ints
    only when read (a schedule reads fewer than it draws)."""
    yield _array("I", _BLAKE2B(name + b"0").digest())
    k = 1
    while True:
        yield _array("I", _BLAKE2B(name + b"%d" % k).digest())
        k += 1


def _blocks_portable(name: bytes) -> Iterator[Sequence[int]]:
    """`_blocks` where ``array("I")`` is not 4 little-endian bytes: a tuple per block."""
    for k in itertools.count():
        yield _unpack_words(_BLAKE2B(name + b"%d" % k).digest())


if not (_array("I").itemsize == 4 and sys.byteorder == "little"):  # pragma: no cover
    _blocks = _blocks_portable


class StreamChooser:
    """Uniform choices from a stream named by ``(seed, index)``: schedule `index` of an
    exploration seeded with `seed`.

    The stream is BLAKE2b (64-byte digests) of ``b"seed/index/block"`` for blocks 0, 1,
    2 ..., read as little-endian 32-bit words; a choice among ``n`` options is the next
    word modulo ``n`` (a bias below ``n / 2**32``).  It is the same in any process and on
    any platform, and costs one digest per 16 choices to start and to continue, where a
    `RandomChooser` seeds a 2.5 KB Mersenne Twister state first (the larger part of a
    short schedule's cost).  ``new_execution()`` does not restart the stream.

    Raises `InvalidArgument` for a `seed` or `index` that is not an int.
    """

    __slots__ = ("_words", "index", "seed")

    def __init__(self, seed: int, index: int) -> None:
        if type(seed) is not int or type(index) is not int:  # the common case: plain ints
            for name, value in (("seed", seed), ("index", index)):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise InvalidArgument(
                        f"{name} must be an int, got {value!r} ({type(value).__name__})"
                    )
        self.seed = seed
        self.index = index
        # Block k is BLAKE2b(b"seed/index/k"), computed when its first word is read.
        words = _chain_blocks(_blocks(b"%d/%d/" % (seed, index)))
        #: The stream (the sim's step loop takes its next word itself).
        self._words: Iterator[int] = words

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return next(self._words) % len(runnable)

    def draw(self, n: int, label: object) -> int:
        return next(self._words) % n

    def __repr__(self) -> str:
        return f"StreamChooser(seed={self.seed}, index={self.index})"


def stream_choosers(seed: int) -> Callable[[int], StreamChooser]:
    """A function of `index` giving ``StreamChooser(seed, index)``, for a caller whose
    `seed` and indices are plain ints already (the explorer's loop over schedules): the
    same choosers, without a type call or checks each, the seed's part of the stream's
    name formatted once (a schedule's fixed cost)."""
    seed_name = b"%d/" % seed

    def chooser(index: int) -> StreamChooser:
        c: StreamChooser = _new_object(StreamChooser)
        c.seed = seed
        c.index = index
        words = _chain_blocks(_blocks(seed_name + b"%d/" % index))  # b"seed/index/"
        c._words = words
        return c

    return chooser


_new_object = object.__new__


class ReplayChooser:
    """Answers from a recorded schedule, in order; exact unless told otherwise.

    A replay must not silently diverge from its recording, so each of these raises
    `ReplayMismatch` naming the position: a recorded answer that does not fit the
    question (an index past the number of options: the code changed since); a run that
    asks for more answers than recorded (``then=None``, the default; else `then` answers
    the rest); and, when the caller calls `finish()` after the run, a recording the run did
    not use up (the run ended earlier than recorded).  ``exact=False`` makes `finish()`
    accept an unused tail (a prefix replay, as a shrinker's candidates are).
    """

    __slots__ = ("_choices", "_pos", "exact", "then")

    def __init__(
        self, choices: Sequence[int], *, then: Chooser | None = None, exact: bool = True
    ) -> None:
        for i, c in enumerate(choices):
            if not isinstance(c, int) or isinstance(c, bool) or c < 0:
                raise InvalidArgument(
                    f"schedule entry {i} must be a non-negative int, "
                    f"got {c!r} ({type(c).__name__})"
                )
        self._choices = tuple(choices)
        self._pos = 0
        self.then = then
        self.exact = exact

    @property
    def position(self) -> int:
        """How many recorded answers were consumed."""
        return self._pos

    @property
    def is_exhausted(self) -> bool:
        return self._pos >= len(self._choices)

    def finish(self, ending: str = "the run ended") -> None:
        """After a run: raise `ReplayMismatch` if it left recorded answers unused (unless
        not `exact`).  `ending` says how the run ended, for the message."""
        if self.exact and not self.is_exhausted:
            raise ReplayMismatch(
                f"the recorded schedule has {len(self._choices)} choices, but {ending} "
                f"having made only {self._pos}: the code no longer matches the recording"
            )

    def new_execution(self) -> None:
        self._pos = 0
        if self.then is not None:
            self.then.new_execution()

    def _next(self, n: int, what: str) -> int:
        pos = self._pos
        if pos >= len(self._choices):
            k = len(self._choices)
            raise ReplayMismatch(
                f"the recorded schedule has {k} choice{'s' * (k != 1)}, but the run asked "
                f"for more than the {k} recorded (one more, among {n} {what})"
            )
        c = self._choices[pos]
        if c >= n:
            raise ReplayMismatch(
                f"choice #{pos + 1} of the recorded schedule is option {c} (counting from "
                f"0), but the run offers only {n} options ({what}): the code no longer "
                "matches the recording"
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


class FifoChooser:
    """Always the longest-runnable task (index 0): a fixed, fair, boring schedule."""

    __slots__ = ()

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return 0

    def draw(self, n: int, label: object) -> int:
        return 0

    def __repr__(self) -> str:
        return "FifoChooser()"


class ScriptChooser:
    """Follows a readable script of ``(task name, until)`` steps, then hands over.

    Each step runs the task called `name` until the label of the checkpoint it is paused
    at contains the text `until` (the task then stays paused there), or, with
    ``until=None``, until it blocks or finishes.  A tuple label holds the text as the
    reports show it (``fault(B, 0x8000, commit)``) or as its ``str``
    (``"('fault', 'B', 32768, 'commit')"``).  While the scripted task is blocked, the
    other runnable tasks run, oldest first, so it can get unblocked.  When the script is
    done, `then` decides (default: oldest first).

    A script that no longer fits the code (a task that never appears, an `until` never
    reached) does not raise while the run goes on; `is_done` stays False.  After the run,
    `finish()` says which step was not reached and why (the labels the step's task was
    paused at, so a mistyped `until` can be fixed), or None when the run followed the
    script to its end.
    """

    __slots__ = ("_paused", "_pos", "_seen", "steps", "then")

    #: Asked at every step, even with one runnable task, so a step can end exactly.
    ask_always = True

    def __init__(
        self, steps: Sequence[tuple[str, str | None]], *, then: Chooser | None = None
    ) -> None:
        for i, step in enumerate(steps):
            if (
                not isinstance(step, tuple)
                or len(step) != 2
                or not isinstance(step[0], str)
                or not (step[1] is None or isinstance(step[1], str))
            ):
                raise InvalidArgument(
                    f"script step {i} must be (task name, until text or None), got {step!r}"
                )
        self.steps = tuple(steps)
        self.then = then
        self._pos = 0
        self._seen: set[str] = set()
        #: Task name -> the labels it was paused at, in order: each as shown (its
        #: `_label_text`) -> every text of it an `until` may be found in.
        self._paused: dict[str, dict[str, tuple[str, ...]]] = {}

    @property
    def is_done(self) -> bool:
        return self._pos >= len(self.steps)

    @property
    def position(self) -> int:
        """The index of the step being followed (``len(steps)`` once done)."""
        return self._pos

    def new_execution(self) -> None:
        self._pos = 0
        self._seen = set()
        self._paused = {}
        if self.then is not None:
            self.then.new_execution()

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        paused = self._paused
        for task in runnable:
            self._seen.add(task.name)
            text = _label_text(task.pending)
            if text is not None:
                seen = paused.setdefault(task.name, {})
                if text not in seen:
                    seen[text] = _label_forms(task.pending)
        while self._pos < len(self.steps):
            name, until = self.steps[self._pos]
            index = next((i for i, t in enumerate(runnable) if t.name == name), None)
            if index is None:
                if until is None and name in self._seen:
                    self._pos += 1  # it blocked or finished: step done
                    continue
                return 0  # not started yet, or blocked: let the others run
            if until is not None and _holds(runnable[index].pending, until):
                self._pos += 1
                continue
            return index
        if self.then is not None:
            return self.then.choose(runnable, last)
        return 0

    def draw(self, n: int, label: object) -> int:
        if self.then is not None:
            return self.then.draw(n, label)
        return 0

    def finish(self, *, run_over: bool = True) -> str | None:
        """After a run: None if it followed the script to its end, else one line naming
        the first step it did not reach, that step's task and `until`, and why (the task
        never ran; or the labels of the checkpoints it was paused at, none of which holds
        the `until` text; or it was still running).

        `run_over`: the run ended with no task runnable (every outcome but the step bound).
        Then a step without `until` whose task ran is done (the task blocked or finished),
        as it would be had the run asked once more; its following steps too, while they
        are of that kind.  Call it once per run, before `new_execution`."""
        steps = self.steps
        while self._pos < len(steps):
            name, until = steps[self._pos]
            if until is None and run_over and name in self._seen:
                self._pos += 1
                continue
            break
        if self._pos >= len(steps):
            return None
        pos = self._pos
        name, until = steps[pos]
        shown = f"[{name!r}]" if until is None else f"[{name!r}, {until!r}]"
        head = f"script step {pos} {shown} was not reached: "
        bound = "" if run_over else " before the run stopped at its step bound"
        if name not in self._seen:
            return head + f"task {name!r} never ran{bound}"
        if until is None:
            return head + f"task {name!r} was still running when the run stopped at its step bound"
        forms = self._paused.get(name, {})
        labels = list(forms)
        if not labels:
            where = "it was paused at no labelled checkpoint"
        else:
            cap = 12
            where = "it was paused at: " + ", ".join(repr(t) for t in labels[:cap])
            if len(labels) > cap:
                where += f", ... ({len(labels) - cap} more)"
            # a label that holds the text was met before the step: the run went past it
            passed = next((t for t in labels if any(until in f for f in forms[t])), None)
            if passed is not None:
                where = f"it passed {passed!r} before that step; {where}"
        return (
            head + f"task {name!r} was never paused at a checkpoint whose label contains "
            f"{until!r} from that step on{bound} ({where})"
        )

    def __repr__(self) -> str:
        return f"ScriptChooser({list(self.steps)!r})"


def _holds(pending: object, until: str) -> bool:
    """Whether the label `pending` holds the text `until`, in any of `_label_forms`."""
    text = str(pending)
    if until in text:
        return True
    return type(pending) is tuple and any(until in f for f in _label_forms(pending))


def _label_forms(pending: object) -> tuple[str, ...]:
    """The texts of a label a script's ``until`` is looked for in: ``str(pending)``
    (``"('fault', 'B', 32768, 'commit')"``) and, for a tuple label, the forms the reports
    show: ``fault(B, 0x8000, commit)``, and with a page number as its address
    (``dma(B, 0x14000)`` of ``('dma', 'B', 20)``, as the timeline shows it)."""
    text = str(pending)
    if type(pending) is not tuple:
        return (text,)
    return (text, label_text(pending), label_text(pending, page_addresses))


def _label_text(pending: object) -> str | None:
    """The label of the checkpoint a task is paused at, as `ScriptChooser.finish` lists
    it: a tuple label as the reports show it (``fault(B, 0x8000, commit)``), a primitive
    (one with ``describe_wait``) by its kind and name (``"Mutex 'B.umem_mutex'"``: its
    full text holds its state too, which changes), any other as ``str(pending)``; None
    when the task is not paused at a checkpoint (not started, woken from a park or a
    sleep)."""
    if pending is None or isinstance(pending, (Waiter, float)):
        return None
    if type(pending) is tuple:
        return label_text(pending)
    text = str(pending)
    describe = getattr(pending, "describe_wait", None)
    if describe is not None:
        name = describe()[0]
        if isinstance(name, str) and name in text:
            return name
    return text
