"""`SharedCell`: plain shared state whose reads and writes the explorer can see.

Contract
    A `SharedCell` holds one value.  `get` and `set` are plain synchronous accesses that
    also add a *read* or a *write* of the cell to the footprint of the running sim step
    (`odp_async._runtime.footprint.note_read` and `note`), so DPOR and sleep sets
    (`odp_async.explore.dpor`, `odp_async.explore.dfs`) can tell steps on different cells,
    or two reads of one cell, apart.  On a live runtime (trio, asyncio) nothing is noted
    and the cell is just a box.  Neither method checkpoints or blocks.

    **Where the accesses must sit.**  The sim attributes a note to the step running when
    it is made, i.e. the code between two checkpoints of one task.  That step's footprint
    is *known* only when the checkpoint that starts it declares one: a `Footprint` label
    (``await checkpoint(Footprint())`` declares nothing else, so the step is exactly its
    noted accesses), or a primitive's acquire under ``trust_primitives``.  After a
    checkpoint with any other label (a string, None) and in a task's first step (before
    its first checkpoint), the step's footprint is unknown: it conflicts with every other
    step, which stays sound but loses the reduction.  `load` and `store` are the short
    way: a checkpoint declaring exactly that access, then the access, as one step.

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
from ._runtime.footprint import Footprint, note, note_read

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
        """The value; notes a read of the cell.  Sync, never blocks."""
        note_read(self)
        return self._value

    def set(self, value: T) -> None:
        """Replace the value; notes a write of the cell.  Sync, never blocks."""
        note(self)
        self._value = value

    async def load(self) -> T:
        """A checkpoint that declares a read of the cell, then the read (one step).

        The step is shown as ``load 'name'`` in a run's step list and timelines."""
        await checkpoint(Footprint(reads=frozenset((self,)), label=f"load {self._shown()}"))
        return self.get()

    async def store(self, value: T) -> None:
        """A checkpoint that declares a write of the cell, then the write (one step).

        The step is shown as ``store 'name'`` in a run's step list and timelines."""
        await checkpoint(Footprint(writes=frozenset((self,)), label=f"store {self._shown()}"))
        self.set(value)

    def _shown(self) -> str:
        # The cell as a step's label shows it: its name, never its value (a trace label
        # is compared across runs; the value is what the runs disagree about).
        return repr(self.name) if self.name is not None else "SharedCell"

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name is not None else ""
        return f"<SharedCell{name} {self._value!r}>"
