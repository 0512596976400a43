"""pytest integration: explore an async test over many schedules with one decorator.

Contract
    ``@explore_test(schedules=200, chooser="random")`` on an ``async def test_...`` turns
    it into a plain (sync) test function that runs the body under the sim once per
    schedule.  The body may take pytest fixtures (they are resolved once and shared by
    every schedule: build the state under test inside the body).  It must await only
    odp_async's runtime calls and primitives.

    A failing schedule (an exception, a deadlock, a run past ``max_steps``) fails the test
    with `ExplorationFailed`: the violation, the shrunk schedule step by step, and the
    token.  Re-run that one schedule with::

        ODP_ASYNC_REPLAY=<token> pytest path/to/test_file.py::test_name

    (or ``@explore_test(replay="<token>")``).  The decorated test is a sync function,
    so it works beside pytest-trio and anyio's plugin, which only take async tests.

See also
    `odp_async.explore.runner.explore_target`, `odp_async.explore.tokens`.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Coroutine
from typing import Any

from .._runtime.choosers import ReplayChooser
from ..errors import InvalidArgument, OdpError
from ..scenarios import Scenario
from .config import ExploreConfig
from .runner import ExploreResult, explore_target
from .target import Target
from .tokens import decode_token

__all__ = ["ExplorationFailed", "explore_test"]

REPLAY_ENV = "ODP_ASYNC_REPLAY"


class ExplorationFailed(OdpError, AssertionError):
    """An explored test found a failing schedule.  ``.result`` holds the exploration."""

    def __init__(self, message: str, result: ExploreResult | None = None) -> None:
        super().__init__(message)
        self.result = result


TestFunction = Callable[..., Coroutine[Any, Any, Any]]


def explore_test(
    *,
    schedules: int = 200,
    chooser: str = "random",
    seed: int = 0,
    max_steps: int = 20_000,
    depth: int = 3,
    preemption_bound: int | None = None,
    replay: str | None = None,
) -> Callable[[TestFunction], Callable[..., None]]:
    """Decorate an async test to be explored; see the module docstring."""
    config = ExploreConfig(
        chooser=chooser,
        schedules=schedules,
        seed=seed,
        max_steps=max_steps,
        depth=depth,
        preemption_bound=preemption_bound,
    )

    def decorate(fn: TestFunction) -> Callable[..., None]:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidArgument(f"explore_test needs an async def test, got {fn!r}")
        source = f"test:{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            async def body() -> Any:
                return await fn(*args, **kwargs)

            scenario = Scenario(fn.__qualname__, fn.__doc__ or "", body, (), needs_world=False)
            target = Target(scenario, None, {}, source)
            token = replay or os.environ.get(REPLAY_ENV)
            if token:
                decoded = decode_token(token)
                if decoded.source == source:
                    _replay(target, decoded.schedule, decoded.max_steps, token)
                    return
            result = explore_target(target, config)
            if result.failure is not None:
                raise ExplorationFailed(_report(target, result, fn.__qualname__), result)

        return run

    return decorate


def _replay(target: Target, schedule: tuple[int, ...], max_steps: int, token: str) -> None:
    execution = target.run(ReplayChooser(schedule), max_steps=max_steps, trace=True)
    if execution.failure is not None:
        raise ExplorationFailed(
            f"replayed {token[:24]}...: {execution.failure.describe()}\n"
            + _steps(execution.sim.trace)
        )


def _report(target: Target, result: ExploreResult, name: str) -> str:
    failure = result.failure
    assert failure is not None
    lines = [
        f"{name}: {failure.verdict} after {failure.index} schedules "
        f"({result.config.chooser}, seed {result.config.seed})",
        failure.describe(),
    ]
    schedule = failure.shrunk.schedule if failure.shrunk is not None else failure.schedule
    shown = target.run(ReplayChooser(schedule), max_steps=result.config.max_steps, trace=True)
    lines.append("the schedule, step by step (task id, then what it was about to do):")
    lines.append(_steps(shown.sim.trace))
    token = failure.shrunk_token or failure.token
    if token:
        lines.append(f"re-run it alone: {REPLAY_ENV}='{token}' pytest ...::{name}")
    return "\n".join(lines)


def _steps(trace: tuple[tuple[int, int, int, object], ...] | None, last: int = 40) -> str:
    if not trace:
        return ""
    rows = [f"  step {step:4d}  task {task}  {label}" for step, task, _, label in trace[-last:]]
    return "\n".join(rows)
