"""Scenarios: named concurrent programs over a `World`, with their expected verdicts.

See also
    `odp_async.scenarios.model`, `odp_async.scenarios.builtin`.
"""

from __future__ import annotations

from .builtin import BUILTIN
from .classic import CLASSIC
from .model import Scenario, ScenarioUsageError, Verdict, model_verdict, verdict_of
from .sctbench import SCTBENCH

CLASSIC.update(SCTBENCH)  # SCTBench-style programs, as classic:<name>

__all__ = [
    "BUILTIN",
    "CLASSIC",
    "Scenario",
    "ScenarioUsageError",
    "Verdict",
    "model_verdict",
    "verdict_of",
]
