"""A user program's state watched between a search's runs: a program whose runs share
state (a lazily set module global, a mutated default, a class attribute) gets no
verdict, never ``complete`` and never a pass.

Contract
    `watch_target(target)` gives the `SearchWatch` of a user program (a function, a
    `Scenario` object or ``module:qualname`` that is not built in, a protocol class that
    is not built in), kept with the target for this process; None for what the package
    ships (a built-in or classic scenario with a built-in protocol, a scenario file's
    body, an explored test, which the pytest plugin watches itself): those pay nothing.
    `begin(target)` takes the fingerprints (the watch of the pytest plugin,
    `odp_async.explore.carried.ArgumentWatch`: the roots are the program's function or
    body, the module globals and closure variables its code names, its arguments and a
    user protocol class) before this process runs the target; `ran()` is called after
    each run and compares after runs 1, 2, 4, 8...; `carried(target)` compares now and
    says what changed (a line), or None.  A root that cannot be compared is a change.
    A worker process begins when it rebuilds the target, and reports with each chunk.

Limits
    What `odp_async.explore.carried` does not follow is not seen (a name computed at run
    time, a C object of a trusted library, a file, the environment); state that changes
    and changes back between two comparisons is not seen; a baseline is the state when
    the search starts in this process, so state set before (an earlier `explore` of the
    same program in this process) is taken as the program's start.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .carried import ArgumentWatch, code_names, outside_names

if TYPE_CHECKING:
    from .target import Target

__all__ = ["SearchWatch", "begin", "carried", "watch_target"]


def _same(value: object) -> object:
    return value


class SearchWatch:
    """The fingerprints of one user program's roots in this process, and a run count."""

    __slots__ = ("_due", "_roots", "_watch", "change", "runs")

    def __init__(self, roots: dict[str, tuple[str, Callable[[], object]]]) -> None:
        self._roots = roots
        self._watch: ArgumentWatch | None = None
        self._due = 1
        self.runs = 0
        self.change: str | None = None

    def begin(self) -> None:
        """Take the fingerprints now (a search starts here)."""
        if self._watch is None or self.change is None:
            names = frozenset().union(*(_names_of(r) for r in self._roots.values()))
            self._watch = ArgumentWatch.take(self._roots, names)
            self._watch.runs = 1
            self.runs = 0
            self._due = 1

    def ran(self) -> None:
        """A run ended: compare after runs 1, 2, 4, 8..."""
        self.runs += 1
        if self.runs == self._due:
            self._due *= 2
            self.compare()

    def compare(self) -> str | None:
        """Compare now (once a change is seen it stays); what changed, or None."""
        watch = self._watch
        if self.change is None and watch is not None:
            watch.runs = max(self.runs, 1)
            found = watch.check()
            if found is None and watch._unreadable and self.runs:
                label, why = next(iter(watch._unreadable.items()))
                self.change = f"{label} could not be compared between runs ({'; '.join(why)})"
            elif found is not None:
                self.change = _describe(found)
        return self.change


def _names_of(root: tuple[str, Callable[[], object]]) -> frozenset[str]:
    value = root[1]()
    return code_names(value) if callable(value) else frozenset()


def _describe(change: Any) -> str:
    if change.why is not None:
        return f"{change.label} could not be compared between runs ({change.why})"
    return (
        f"{change.label} changed between runs ({change.path} was {change.before} before "
        f"the first run, {change.after} after run {change.run})"
    )


def _user_function(body: object) -> object:
    """The user's function under a target's body (a `_Call`, a partial)."""
    for _ in range(8):
        if isinstance(body, functools.partial):
            body = body.func
        elif hasattr(body, "fn") and not isinstance(body, types.FunctionType):
            body = body.fn
        else:
            break
    return body


def _roots(target: Target) -> dict[str, tuple[str, Callable[[], object]]] | None:
    from ..odp.protocols import PROTOCOLS
    from ..scenarios import BUILTIN, CLASSIC

    roots: dict[str, tuple[str, Callable[[], object]]] = {}
    scenario = target.scenario
    source = target.source or ""
    builtin = (
        BUILTIN.get(scenario.name) is scenario
        or CLASSIC.get(scenario.name) is scenario
        or target.file is not None
        or source.startswith("test:")
        or getattr(scenario.body, "__module__", None) == "odp_async.scenarios.files"
    )
    if not builtin:
        fn = _user_function(scenario.body)
        if callable(fn):
            roots.update(outside_names(fn))
            roots["the program"] = (
                getattr(fn, "__name__", "program"),
                functools.partial(_same, fn),
            )
        if scenario.body is not fn:  # a `_Call`, a partial: its arguments too
            roots["the scenario's body"] = ("body", functools.partial(_same, scenario.body))
        if scenario.setup is not None:
            roots["the scenario's setup"] = ("setup", functools.partial(_same, scenario.setup))
        if target.args:
            roots["the program's arguments"] = ("args", functools.partial(_same, target.args))
    protocol = target.protocol_class
    if protocol is not None and PROTOCOLS.get(protocol.name) is not protocol:
        label = f"protocol class {protocol.__qualname__}"
        roots[label] = (protocol.__qualname__, functools.partial(_same, protocol))
    return roots or None


def watch_target(target: Target) -> SearchWatch | None:
    """`target`'s watch in this process (made at the first call), or None (see the module
    docstring)."""
    holder = target._watch_holder
    if holder.made:
        return holder.watch
    holder.made = True
    roots = _roots(target)
    holder.watch = SearchWatch(roots) if roots is not None else None
    return holder.watch


def begin(target: Target) -> None:
    """A search of `target` starts in this process: take its fingerprints (if watched)."""
    watch = watch_target(target)
    if watch is not None:
        watch.begin()


def carried(target: Target) -> str | None:
    """What of `target`'s state changed between its runs in this process, or None."""
    watch = target._watch_holder.watch
    return watch.compare() if watch is not None else None
