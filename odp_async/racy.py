"""Unlocked windows, drawn: a read of shared state that the caller acts on later.

Contract
    Synchronous model code runs atomically between two checkpoints, so a kernel's
    unlocked read-then-act -- ``if (!atomic_read(&x->count)) list_add(...)``, a seq read
    and a later check -- is atomic in the model unless the window is drawn.  Draw it with
    `racy_read`: it reads now, then passes a checkpoint labelled ``("unlocked window",
    label)``, where the explorer may run any other task before the caller acts on the
    (possibly stale) value::

        if not await racy_read(lambda: item.queued, "list_empty(&item->entry)"):
            add(item)        # acts on what it read: another task may have added it since

    A value read under the lock that guards it needs no window; a value read without it
    does, whenever the code acts on it after the read.

Concurrency
    One checkpoint, after the read.  No lock is taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from . import _runtime as rt

__all__ = ["racy_read"]

T = TypeVar("T")


async def racy_read(read: Callable[[], T], label: object = None) -> T:
    """Return ``read()``, then yield at a checkpoint (the unlocked window).  Checkpoint:
    always, after the read.  Errors: whatever `read` raises."""
    value = read()
    await rt.checkpoint(("unlocked window", label))
    return value
