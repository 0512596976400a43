"""One fixed schedule run before a search and again after it: state carried between runs
that the watch cannot see, caught by its effect.

Contract
    `record_run(target, config, chooser)` runs `target` once and returns its record:
    ``(schedule, steps, outcome, (failure kind, step) or None, unfinished)``; a run
    that could not be made is ``("stalled", message)`` (a step the watchdog
    interrupted, under `FifoChooser`), ``("another schedule",)`` (a replay that did
    not fit), ``("a stall",)`` or ``("an error",)`` (a replay's), or None (a usage
    error under `FifoChooser`: the search reports it).  The sim is deterministic given
    a schedule, so a program whose runs start from the same state gives the same record
    for the same schedule, however many runs came between.

    `StartCheck.before(target, config)` records the FIFO schedule (each task in turn),
    and keeps the run if it failed (`StartCheck.failed`: the explorer reports it when no
    schedule of the search fails, as it does a failing probe run);
    `StartCheck.after(target, config)` replays that schedule and returns None when it
    ran the same way (or there was nothing to compare), else one line saying how the two
    runs differ.  A difference means the search's runs did not all start from the same
    state (a ``functools`` cache, a module imported inside the body, ``os.environ``, a C
    object, a file) or that a run depends on more than its schedule (the clock, the
    ``random`` module, object ids): neither a pass nor a failure of the search can be
    trusted.  Each call runs the target once, in this process, under the caller's
    watches (Ctrl-C, the stall watchdog); it costs two runs per search.

    The explorer runs it around every search of a program the search watch follows
    (`odp_async.explore.search_watch.watch_target`: user code; built-ins pay nothing);
    the pytest plugin around every explored test (`odp_async.explore.testing`).

Limits
    State that changes the FIFO schedule's run is caught; state that changes only other
    schedules' runs is not (the watch of named state, `odp_async.explore.carried`,
    covers what it can name).
"""

from __future__ import annotations

from typing import Any

import attrs

from .._runtime.budget import RunOutOfTime
from .._runtime.choosers import FifoChooser, ReplayChooser
from .._runtime.stall import StepStalled, halted_line, watching_steps
from ..errors import ReplayMismatch
from .config import ExploreConfig
from .target import Execution, Target

__all__ = ["RERUN", "StartCheck", "describe_record", "record_run"]

#: How a stalled search names the start check's run after it (`ExploreResult.stalled_run`;
#: the one before it is a probe run before the first schedule, `claims.PROBE_RUN`).
RERUN = "the FIFO schedule's run again after the search"

Record = tuple[object, ...]


def record_run(target: Target, config: ExploreConfig, chooser: Any) -> Record | None:
    """One run of `target` under `chooser`, as its record (see the module docstring)."""
    return _run(target, config, chooser)[0]


def _run(
    target: Target, config: ExploreConfig, chooser: Any
) -> tuple[Record | None, Execution | None]:
    """`record_run`'s record, and the run itself if it failed of the program's own doing
    (not of the stall watchdog's interrupt, which the program may have made its error)."""
    fifo = isinstance(chooser, FifoChooser)
    try:
        with watching_steps(config.stall_limit):
            execution = target.run(chooser, max_steps=config.max_steps)
            interrupted = halted_line()
    except StepStalled as e:
        return (("stalled", str(e)) if fifo else ("a stall",)), None
    except ReplayMismatch:
        return ("another schedule",), None
    except RunOutOfTime:  # the caller's time budget: its to handle
        raise
    except Exception:  # a usage error: the search reports it
        return (None if fifo else ("an error",)), None
    if interrupted is not None:
        # the caller's watch interrupted a step, and the program caught it or made it its
        # own error: the run's outcome is not the program's, and the stall is this run's
        return (("stalled", interrupted) if fifo else ("a stall",)), None
    sim = execution.sim
    failure = execution.failure
    kind = (failure.kind, failure.step) if failure is not None else None
    record = (sim.schedule, sim.steps, sim.outcome, kind, execution.unfinished)
    return record, (execution if failure is not None else None)


def describe_record(seen: Record | None) -> str:
    """A record as a reader compares two: ``"40 steps, done"``, ``", error at step 6"``."""
    if seen is None or len(seen) < 5:
        what = seen[0] if seen else "no run"
        if what == "another schedule":
            return "another run: the first run's choices did not fit it"
        return f"{what}: the recorded schedule did not fit"
    _, steps, outcome, kind, _ = seen
    failed = f", {kind[0]} at step {kind[1]}" if isinstance(kind, tuple) else ""
    return f"{steps} steps, {outcome}{failed}"


@attrs.frozen
class StartCheck:
    """The FIFO schedule's record before a search (see the module docstring)."""

    #: The record, or None when the run could not be made or stalled (nothing to compare:
    #: the search meets the same stall or error and reports it).
    seen: Record | None
    #: The run, if it failed (a violation, an error, a deadlock): the program was seen
    #: to fail, so a search that finds nothing is still no pass (the explorer reports
    #: this run as a probe run's failure).
    failed: Execution | None = attrs.field(default=None, eq=False, repr=False)
    #: The stall line, if a step of the run stalled (the search would meet it too, and
    #: under the same watch no later run of the thread gets past its first step).
    stalled: str | None = None

    @classmethod
    def before(cls, target: Target, config: ExploreConfig) -> StartCheck:
        """Run the FIFO schedule once and keep its record (and the run, if it failed)."""
        seen, failed = _run(target, config, FifoChooser())
        if seen is not None and seen[0] == "stalled":
            return cls(None, stalled=str(seen[1]))
        return cls(seen, failed)

    def after(self, target: Target, config: ExploreConfig) -> str | None:
        """Replay the recorded schedule: None if it ran as before, else how it differs."""
        if self.seen is None:
            return None
        schedule = self.seen[0]
        assert isinstance(schedule, tuple)
        again = record_run(target, config, ReplayChooser(schedule))
        if again == self.seen:
            return None
        return (
            f"the same schedule ran differently before the search "
            f"({describe_record(self.seen)}) and after it ({describe_record(again)}): a run "
            "left state behind that a later one read, where the watch of named state cannot "
            "see it (a functools cache, a module imported inside the program, os.environ, a "
            "C object, a file), or a run depends on more than its schedule (the clock, the "
            "random module, object ids)"
        )
