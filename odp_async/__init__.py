"""odp_async: a model of RDMA On-Demand Paging, and a deterministic explorer for async code.

The general parts stand alone:

- the runtime seam (`checkpoint`, `task_group`, `sleep`, ...), so one piece of async code
  runs on trio, on asyncio, and under the deterministic sim (`odp_async.sim.run`);
- `odp_async.sync`: `Mutex`, `RWLock` (with `downgrade`), `Completion`, `SlotPool`,
  `WaitQueue`, `Condition`, cancellation-safe on every runtime;
- `odp_async.intervals`: a fast dynamic interval tree.

See README.md for the tour.
"""

from __future__ import annotations

from . import sim
from ._runtime import (
    MAX_DRAW,
    cancel_scope,
    cancelled_exc_class,
    checkpoint,
    current_task,
    draw,
    fail_after,
    move_on_after,
    now,
    sleep,
    task_group,
    task_name,
)
from .errors import (
    ForeignAwait,
    InternalError,
    InvalidArgument,
    InvariantViolation,
    NondeterminismError,
    OdpError,
    ProtocolViolation,
    ReplayMismatch,
    WouldBlock,
)
from .intervals import IntervalHandle, IntervalTree
from .sync import Completion, Condition, Mutex, RWLock, SlotPool, WaitQueue

__version__ = "0.1.0"

__all__ = [
    "Completion",
    "Condition",
    "ForeignAwait",
    "IntervalHandle",
    "IntervalTree",
    "InternalError",
    "InvalidArgument",
    "InvariantViolation",
    "MAX_DRAW",
    "Mutex",
    "NondeterminismError",
    "OdpError",
    "ProtocolViolation",
    "RWLock",
    "ReplayMismatch",
    "SlotPool",
    "WaitQueue",
    "WouldBlock",
    "__version__",
    "cancel_scope",
    "cancelled_exc_class",
    "checkpoint",
    "current_task",
    "draw",
    "fail_after",
    "move_on_after",
    "now",
    "sim",
    "sleep",
    "task_group",
    "task_name",
]
