"""`SharedCell`: plain shared state whose reads and writes the explorer can see.

Contract
    A `SharedCell` holds one value.  `get` and `set` are plain synchronous accesses that
    also add a *read* or a *write* of the cell to the footprint of the running sim step
    (`odp_async._runtime.footprint.note_read` and `note`), so DPOR and sleep sets
    (`odp_async.explore.dpor`, `odp_async.explore.dfs`) can tell steps on different cells,
    or two reads of one cell, apart.  On a live runtime (trio, asyncio) nothing is noted
    and the cell is just a box.  Neither method checkpoints or blocks.

    **Where the accesses must sit.**  The sim attributes a note to the step running when
    it is made, i.e. the code between two checkpoints of one task.  Without the
    program's noted-only promise (``Scenario(..., noted_only=True)``,
    ``DporChooser(noted_only=True)``) that step's footprint is *known* only when the
    checkpoint that starts it declares one with a `Footprint` label (the author's
    declaration of the whole step: ``await checkpoint(Footprint())`` declares nothing
    else, so the step is exactly its noted accesses).  After a checkpoint with any other
    label (a string, None, a primitive's acquire or wait, `load` and `store`) and in a
    task's first step (before its first checkpoint), the step's footprint is unknown: it
    conflicts with every other step, which stays sound but loses the reduction (the code
    after `load` returns runs in the same step, and may touch plain state).  Under the
    promise every step is exactly its noted accesses.  `load` and `store` are a
    checkpoint, then the access.

    **What `get` hands out.**  A value of the allow-list of `odp_async.tracked` (None,
    numbers, strs, frozen records of those, tracked objects and containers, the
    primitives...) is noted by reading the cell.  Anything else (a plain list, dict or
    set, an object of an untracked class) can be changed in place past the cell
    (``cell.get().append(x)``), so `get` then makes the step's footprint unknown, as a
    tracked field handing one out does: sound, not reduced.  Keep a value in the cell
    and `set` a new one, or hold a `odp_async.tracked.TrackedList` (or dict, set).

    Soundness: every access to the shared state a step makes must be noted (through a
    cell) or declared; plain objects changed beside a cell are invisible to reduction.

Concurrency
    Single-threaded per event loop, like everything under the sim: a cell is not a lock.
    Two tasks that `get` then `set` across a checkpoint can lose an update; that is what
    the explorer is for.

See also
    `odp_async._runtime.footprint`, `odp_async.explore.dpor`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from ._runtime import checkpoint
from ._runtime.footprint import note, note_read
from .tracked import _handed as _judged  # the allow-list of what may be handed out

__all__ = ["SharedCell"]

T = TypeVar("T")


class SharedCell(Generic[T]):
    """One shared value; `get`/`set` note a read/write of the cell in the running step.

    ``SharedCell(value, name=None)``: `name` only shows in ``repr``.  Cells compare and
    hash by identity: two cells are two resources, whatever they hold.
    """

    __slots__ = ("_value", "name")

    def __init__(self, value: T, name: str | None = None) -> None:
        self._value = value
        self.name = name

    def get(self) -> T:
        """The value; notes a read of the cell (and makes the step unknown when the
        value is mutable state nobody notes: see the module doc).  Sync, never blocks."""
        note_read(self)
        value: T = _judged(self._value)
        return value

    def set(self, value: T) -> None:
        """Replace the value; notes a write of the cell.  Sync, never blocks."""
        note(self)
        self._value = value

    async def load(self) -> T:
        """A checkpoint, then the read (`get`).

        The step is shown as ``load 'name'`` in a run's step list and timelines.  It
        declares nothing: the step goes on past the read into the caller's code, so its
        footprint is the read only under the noted-only promise (module doc)."""
        await checkpoint(f"load {self._shown()}")
        return self.get()

    async def store(self, value: T) -> None:
        """A checkpoint, then the write (`set`).

        The step is shown as ``store 'name'`` in a run's step list and timelines; like
        `load`, it declares nothing beyond the noted write."""
        await checkpoint(f"store {self._shown()}")
        self.set(value)

    def _shown(self) -> str:
        # The cell as a step's label shows it: its name, never its value (a trace label
        # is compared across runs; the value is what the runs disagree about).
        return repr(self.name) if self.name is not None else "SharedCell"

    def __repr__(self) -> str:
        """Shows the value: a noted read of the cell."""
        note_read(self)
        name = f" {self.name!r}" if self.name is not None else ""
        return f"<SharedCell{name} {self._value!r}>"
