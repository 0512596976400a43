"""The exceptions odp_async raises.

Contract
    Every exception odp_async raises on purpose derives from `OdpError`, and also from the
    builtin that best says what kind of mistake it is, so ``except ValueError`` keeps
    working for callers who do not know this package.  Messages say what happened, what
    was expected and what was found; the offending values are also kept in ``args``.

    Three exceptions carry a result rather than a mistake: `ExplorationFailed` (an
    exploration asked to raise found a failing schedule), `ExplorationInconclusive` (it
    found none, but runs reached the step bound unfinished: no verdict) and
    `ExploreInterrupted` (Ctrl-C stopped an exploration; a `KeyboardInterrupt`, so it
    stops a program as Ctrl-C does).

See also
    `odp_async.sync` (misuse of primitives), `odp_async._runtime.sim` (deadlocks),
    `odp_async.explore` (exploration results).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BodyNotAwaitable",
    "ForeignAwait",
    "ExplorationFailed",
    "ExplorationInconclusive",
    "ExploreInterrupted",
    "InternalError",
    "InvalidArgument",
    "InvariantViolation",
    "NondeterminismError",
    "OdpError",
    "ProtocolViolation",
    "ProtocolUsageError",
    "ReplayMismatch",
    "RunTimeout",
    "ScenarioUsageError",
    "WouldBlock",
]


class OdpError(Exception):
    """Base class of every exception odp_async raises on purpose."""


class InvalidArgument(OdpError, ValueError):
    """A value passed to odp_async is out of range or of the wrong shape."""


class ForeignAwait(InvalidArgument):
    """Code run by the sim awaited something that is not an odp_async runtime call.

    An asyncio, trio or anyio primitive (or a bare ``yield``, as in ``asyncio.sleep(0)``)
    cannot be scheduled by the sim: it is a mistake in how the program is written, not a
    behaviour of the program, so it leaves the run (and the explorer) instead of being
    recorded as the program's error.  The message names the awaited object and what to
    use instead.
    """


class ProtocolViolation(OdpError, RuntimeError):
    """An operation was used against its contract.

    Examples: releasing a lock the current task does not hold, re-acquiring a mutex the
    current task already owns, using a primitive outside any async runtime.
    """


class ScenarioUsageError(InvalidArgument):
    """A mistake of a scenario (its file) that shows only while it runs: an operation the
    model refuses (an MR registered twice, an ``mmap`` over a mapping), or a subscriber
    class whose constructor raises.  The scenario's body raises it; `Target.run` raises it
    out of the run, so it is never reported as the protocol's violation (the command
    line: one line, exit 2).  The message names the file, the operation's key path and
    the bad value.  (Re-exported by `odp_async.scenarios`.)"""


class BodyNotAwaitable(ScenarioUsageError):
    """A scenario's body, or a run's main function, returned what cannot be awaited: it
    is no async function (a lambda, a plain ``def``).  Raised where it is called (the
    world's main task, the sim's root task); `Target.run` raises it again naming the
    scenario.  `returned` is the returned value's repr, cut short."""

    def __init__(self, called: str, returned: object) -> None:
        self.returned = _short(returned)
        super().__init__(
            f"{called} returned {self.returned}, not an awaitable (define it with async def)"
        )


#: The most characters of a value's repr `BodyNotAwaitable` shows.
_SHOWN = 80


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # the program's __repr__: any failure of it is its own
        return f"a {type(value).__name__}"
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}... (a {type(value).__name__})"


class ProtocolUsageError(ScenarioUsageError):
    """A protocol's hook broke the hook's contract while it ran: it returned a value of
    another type than the hook promises (``fault_commit`` must return a bool; one that
    forgets ``return`` gives None).  A mistake in how the protocol is written, not a
    behaviour of it: like a scenario's own mistake it leaves the run (`Target.run` raises
    it; the command line: one line, exit 2) instead of being taken as "retry" and
    reported as the protocol's starvation.  The message names the hook, the protocol
    class and the value; ``args`` keeps the message.  Also raised when a protocol class
    is created with a hook override of the other kind (a plain ``def`` for an async hook,
    an ``async def`` for a sync one), naming the class and the hook."""


class RunTimeout(OdpError, TimeoutError):
    """A live run (`odp_async._runtime.run_live` with a `timeout`) passed its wall limit
    and was cancelled.

    The limit's, not the program's: a `TimeoutError` the program raises itself (its own
    `fail_after`, a ``raise TimeoutError``) leaves the run unchanged, as any error does.
    """


class WouldBlock(OdpError, RuntimeError):
    """A ``*_nowait`` operation could not complete without blocking."""


class InvariantViolation(OdpError, AssertionError):
    """The invariant checker found the model in a state its protocol forbids."""


class ReplayMismatch(OdpError, RuntimeError):
    """A recorded schedule does not fit the run it was replayed against."""


class NondeterminismError(OdpError, RuntimeError):
    """The same choices led to different runs: the code under test is not deterministic."""


class InternalError(OdpError, RuntimeError):
    """A bug in odp_async itself.  Please report it with the replay token, if any."""


class ExplorationFailed(OdpError, AssertionError):
    """An exploration found a failing schedule (``check(..., raise_on_failure=True)``, an
    explored test).  The message is the failure's report; ``result`` holds the whole
    `odp_async.explore.ExploreResult` (None when there is none, e.g. a replay)."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result: Any = result


class ExplorationInconclusive(OdpError, AssertionError):
    """An exploration asked to raise found no failing schedule, but some runs reached the
    step bound and did not finish under a fair continuation either (a livelock, or a
    program longer than ``max_steps``): no verdict, neither a pass nor a violation.  The
    message says how many and the bound to raise; ``result`` holds the
    `odp_async.explore.ExploreResult`.  An explored test whose schedules shared state (a
    fixture value, parameter or module global that changed between two runs) raises it
    too, naming what changed."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result: Any = result


class ExploreInterrupted(KeyboardInterrupt):
    """Ctrl-C (a `KeyboardInterrupt`) stopped an exploration.

    ``result`` is the partial `odp_async.explore.ExploreResult`: the schedules run so far,
    and the first failure found so far (unshrunk), if any.  A `KeyboardInterrupt`, not an
    `OdpError`, so a program that does not catch it stops as it would on Ctrl-C.
    """

    def __init__(self, result: object) -> None:
        super().__init__("exploration interrupted")
        self.result: Any = result
