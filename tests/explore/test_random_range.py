"""A random exploration's loop (its per-schedule checks hoisted) against its definition:
schedule ``i`` is one run under ``StreamChooser(seed, i)``."""

from __future__ import annotations

from odp_async._runtime.choosers import StreamChooser
from odp_async.explore.config import ExploreConfig
from odp_async.explore.runner import explore_target
from odp_async.explore.target import Target


def test_random_schedules_are_the_stream_choosers_runs() -> None:
    target = Target.resolve("classic:twostage")  # fails on some schedules, not all
    config = ExploreConfig(chooser="random", schedules=60, seed=7, stop_on_first=False)
    result = explore_target(target, config)
    runs = [target.run(StreamChooser(7, i), max_steps=config.max_steps) for i in range(60)]
    failing = tuple(i + 1 for i, run in enumerate(runs) if run.is_failure)
    assert 0 < len(failing) < 60, failing  # both kinds, so the tally is tested on both
    assert result.schedules == 60
    assert result.failing == failing
    assert result.steps == sum(run.sim.steps for run in runs)


def test_a_random_exploration_stops_at_its_first_failing_schedule() -> None:
    target = Target.resolve("classic:twostage")
    config = ExploreConfig(chooser="random", schedules=60, seed=7, shrink=False)
    result = explore_target(target, config)
    first = next(
        i
        for i in range(60)
        if target.run(StreamChooser(7, i), max_steps=config.max_steps).is_failure
    )
    assert result.schedules == first + 1
    assert result.failing == (first + 1,)
