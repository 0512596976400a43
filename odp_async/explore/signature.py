"""Failure signatures: when two failing runs show the same failure.

Contract
    `failure_signature(execution)` is a frozen, hashable value that two failing runs
    share when they fail the same way, and that differs when they fail differently.  The
    shrinker keeps a candidate schedule only if its signature equals the original run's
    (`odp_async.explore.shrink`), so a shrunk failure is the failure that was found, never
    another bug of the same program that a simpler schedule happens to reach.  By the
    kind of the run's first violation (`Execution.failure`):

    ``error`` (the program raised)
        the exception's type and its raise site: the ``(file, line)`` of every traceback
        frame in the program's code (`odp_async.explore.failures.user_frames`: outside
        the odp_async package), outermost first, so the raising line and the calls that
        led to it (a shared ``check()`` helper raising for two callers is two failures).
        Of an `ExceptionGroup`, its first leaf (raise order: the one the report shows
        first).  The message is not part of it: ``lost update: 0`` and ``lost update:
        1`` are one failure, and a message that shows a history would change with every
        shorter schedule.
    ``deadlock``
        the blocked tasks of the wait-for cycle (every blocked task when there is no
        cycle), each as its name, the primitive it waits on (without its state, such as
        ``(0 free)``) and how the holders relate to it (held by, to finish...), as a
        multiset in which runs of digits read as one digit (``worker-3`` waiting for
        ``fork-4`` is ``worker-3`` waiting for ``fork-1`` under the symmetry of identical
        tasks; two tasks in a cycle are never three).
    any model violation (``stale-translation``, ``use-after-free``...)
        the kind and the addresses the checker recorded (the pages whose invariant broke):
        which invariant, where.  Not the moment that caught it: one race leaves the
        device translating a page the page table no longer maps, and whether the
        checker sees it at the install (``installed 0x4000 -> frame 4.1, but the page
        table maps nothing there``) or at the unmap (``frame 4.1 was unmapped while B
        still translates 0x4000``) depends on the order, which is what shrinking
        changes.  A violation without addresses (a use-after-free of a model object, a
        double queue...) is its kind.

    A run that does not fail has the signature None.  Pure: reads the execution.

See also
    `odp_async.explore.shrink` (the one user), `odp_async.check.Violation`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

import attrs

from .failures import error_leaves, user_frames

if TYPE_CHECKING:
    from .target import Execution

__all__ = ["FailureSignature", "failure_signature"]

#: A number in a detail: hex (an address) or decimal (a count, a frame, a step).
_NUMBER: Final = re.compile(r"0x[0-9a-fA-F]+|\d+")
#: ``Mutex 'm'`` of ``Mutex 'm' (held)``: a primitive's identity without its state.
_STATE: Final = re.compile(r"^(\w+ '[^']*') \(.*\)$")


@attrs.frozen
class FailureSignature:
    """What makes a failure that failure (see the module docstring).

    `kind`: the violation kind.  `what`: for an error, the exception's type; else empty.
    `where`: for an error, the raise site (``(file, line)`` of each frame in the
    program's code, outermost first); for a deadlock, the sorted ``(task, waits for,
    relation)`` of its blocked tasks; for a model violation, its addresses (hex).
    """

    kind: str
    what: str = ""
    where: tuple[tuple[str, ...], ...] = ()

    def describe(self) -> str:
        """A line for a message: ``error AssertionError at bank.py:14``."""
        if self.kind == "error":
            at = f" at {self.where[-1][0]}:{self.where[-1][1]}" if self.where else ""
            return f"error {self.what}{at}"
        if self.kind == "deadlock":
            return "deadlock of " + "; ".join(" ".join(w) for w in self.where)
        at = f" at {', '.join(self.where[0])}" if self.where else ""
        return f"{self.kind}{at}"


def failure_signature(execution: Execution) -> FailureSignature | None:
    """The signature of `execution`'s failure (its first violation); None if it passed."""
    failure = execution.failure
    if failure is None:
        return None
    sim = execution.sim
    if failure.kind == "error" and sim.outcome == "error":
        leaves = error_leaves(sim)
        if leaves:
            first = leaves[0]
            frames = tuple((f, str(n)) for f, n in user_frames(first.error))
            return FailureSignature("error", first.type_name, frames)
    if failure.kind == "deadlock" and sim.deadlock is not None:
        blocked = sim.deadlock.cycle or sim.deadlock.blocked
        waits = sorted((_form(b.task), _form(_identity(b.waits_for)), b.relation) for b in blocked)
        return FailureSignature("deadlock", "", tuple(waits))
    if failure.kind == "error":  # recorded without an outcome's error: its detail
        return FailureSignature("error", _form(failure.detail))
    where = (tuple(f"{a:#x}" for a in failure.addresses),) if failure.addresses else ()
    return FailureSignature(failure.kind, "", where)


def _form(text: str) -> str:
    """`text` with every run of digits (or a hex number) as ``#``."""
    return _NUMBER.sub("#", text)


def _identity(text: str) -> str:
    m = _STATE.match(text)
    return m.group(1) if m else text
