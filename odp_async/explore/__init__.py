"""Explore async code under many schedules: find its races, replay them, shrink them.

Contract
    The public face of the explorer; nothing here needs a private module:

    - `check(fn, *args, chooser=..., schedules=..., seed=...)`: explore your own async
      function (shuttle's ``check_random`` / ``check_pct`` / ``check_dfs`` in one call);
    - `explore(scenario, protocol, ...)`: a built-in scenario, a scenario file, a
      `Scenario`, an async function or ``"module:qualname"``, under a built-in protocol,
      ``"module:Class"`` or your `OdpProtocol` subclass;
    - `replay(token)`: re-run a failure's token exactly (`ReplayMismatch` otherwise);
      `Target.resolve(...)` (what `explore` accepts, as one value), `shrink(target,
      schedule, kind, max_steps=...)`, `encode_token` / `decode_token`;
    - `ExploreConfig` (every bound), `CHOOSERS`, `ExploreResult`, `Failure`,
      `Verdict` (what ``ExploreResult.verdict`` and ``Execution.verdict`` say: ``clean``,
      ``found``, ``deadlock``, ``starvation``, ``error``, or ``inconclusive``, never
      ``clean``, for runs unfinished at the step bound), `ProgressUpdate`,
      `ExploreInterrupted` (Ctrl-C, with the partial result), `ExplorationFailed`,
      `Footprint` (declare what a step touches, for reduction);
    - where the schedules run (``executor=``): `Executor`, `InlineExecutor` (this
      process), `ProcessExecutor` (worker processes), `cluster_executor` (``local:N`` or
      ``tcp://HOST:PORT``: a Dask cluster, with the ``cluster`` extra).

See also
    `odp_async.explore.runner` (the contract in full), `odp_async.explore.tokens`,
    `odp_async.explore.testing` (``@explore_test``).
"""

from __future__ import annotations

from .._runtime.footprint import Footprint
from ..errors import ExplorationFailed, ExplorationInconclusive, ExploreInterrupted
from ..scenarios.model import Verdict
from ..shared import SharedCell
from .config import CHOOSERS, ExploreConfig
from .executors import Executor, InlineExecutor, ProcessExecutor, cluster_executor
from .runner import ExploreResult, Failure, ProgressUpdate, check, explore
from .shrink import shrink
from .target import Target
from .tokens import decode_token, encode_token
from .tokens import replay_token as replay

__all__ = [
    "CHOOSERS",
    "ExplorationFailed",
    "ExplorationInconclusive",
    "Executor",
    "ExploreConfig",
    "ExploreInterrupted",
    "ExploreResult",
    "Failure",
    "Footprint",
    "InlineExecutor",
    "ProcessExecutor",
    "ProgressUpdate",
    "SharedCell",
    "Target",
    "Verdict",
    "check",
    "cluster_executor",
    "decode_token",
    "encode_token",
    "explore",
    "replay",
    "shrink",
]
