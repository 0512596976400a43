"""The deterministic sim runtime, public face: run async code under a chosen schedule.

Contract
    ``sim.run(main, *args, seed=0)`` runs ``main(*args)`` under the sim runtime and returns
    a `SimResult` (outcome, value, error, deadlock, steps, schedule).  Code under the sim
    must await only odp_async's runtime calls (``odp_async.checkpoint``, ``sleep``,
    ``task_group``...) and `odp_async.sync` primitives.  The same seed, or the same
    recorded schedule replayed with `ReplayChooser`, gives the same run in any process.

See also
    `odp_async._runtime.sim` (the driver and its contract in full),
    `odp_async._runtime.choosers`.
"""

from __future__ import annotations

from ._runtime.choosers import Chooser, FifoChooser, RandomChooser, ReplayChooser, ScriptChooser
from ._runtime.sim import (
    BlockedTask,
    Cancelled,
    Deadlock,
    DeadlockError,
    SimResult,
    StepLimitExceeded,
    run,
)

__all__ = [
    "BlockedTask",
    "Cancelled",
    "Chooser",
    "Deadlock",
    "DeadlockError",
    "FifoChooser",
    "RandomChooser",
    "ReplayChooser",
    "ScriptChooser",
    "SimResult",
    "StepLimitExceeded",
    "run",
]
