"""The verdict matrix: every built-in scenario under every protocol, against expectations.

Contract
    `verdict_matrix(budget=...)` explores each (scenario, protocol) cell with the random
    chooser and up to `budget` schedules.  A cell whose expected verdict is a failure
    stops at the first schedule showing that verdict; a cell expected clean runs its
    whole budget.  The cell's verdict is the expected one if it was seen, else the most
    severe seen (found, then deadlock, then starvation, then clean); a safety violation
    (found) seen where a deadlock or starvation was expected always wins, so corruption
    is never hidden behind an expected liveness failure.  Cells are
    independent and deterministic (the schedules of a cell depend only on the seed), so
    `jobs` spreads cells over processes without changing any result.  The worker
    processes ignore SIGINT and die with their parent; a `KeyboardInterrupt` in the
    parent terminates them at once and propagates (`on_cell` has seen every cell done).

    A scenario is a built-in name or a scenario file (a path ending ``.toml``): a file's
    cells are the protocols its ``scenario.protocols`` names, expected as its
    ``[expected]`` table says.  A protocol is a built-in name or your own `OdpProtocol`
    subclass or ``module:Class`` reference (its cell is labelled with its ``name``).  Your
    own protocol has an expectation only in a scenario file that names it (by
    ``module:Class``, or by name; not listed in ``[expected]``: clean); elsewhere its cell
    has **no expectation** (``expected`` None): it runs the whole budget like a cell
    expected clean, reports what it saw, and never counts as a mismatch.
    `protocols` given explicitly replaces every scenario's list.
    Unknown names and bad files raise `InvalidArgument` before any cell runs.

See also
    `odp_async.scenarios.builtin` (the expectations), `odp_async.explore.runner`.
"""

from __future__ import annotations

import multiprocessing.connection
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import attrs

from .._runtime.choosers import RandomChooser
from ..errors import InternalError, InvalidArgument
from ..odp.protocols import PROTOCOLS, OdpProtocol, resolve_protocol
from ..scenarios import BUILTIN, Verdict
from ..scenarios.files import read_scenario
from .config import derive_seed
from .shrink import shrink
from .target import Target
from .tokens import encode_token
from .workers import serve_requests, start_workers, stop_workers

__all__ = ["Cell", "verdict_matrix"]

#: A protocol of a cell: a built-in name or an `OdpProtocol` subclass.
ProtocolRef = str | type[OdpProtocol]

_SEVERITY = {Verdict.FOUND: 3, Verdict.DEADLOCK: 2, Verdict.STARVATION: 1, Verdict.CLEAN: 0}


@attrs.frozen
class Cell:
    scenario: str
    protocol: str
    #: None: no expectation (your own protocol in a scenario that does not name it).
    expected: Verdict | None
    verdict: Verdict
    schedules: int
    first_hit: int | None  # schedules to the first schedule showing the verdict
    token: str | None
    detail: str
    elapsed: float

    @property
    def matches(self) -> bool:
        """The verdict is the expected one, or there is no expectation to miss."""
        return self.expected is None or self.verdict is self.expected


def explore_cell(
    scenario: str,
    protocol: ProtocolRef,
    budget: int,
    seed: int = 0,
    max_steps: int = 50_000,
    shrink_found: bool = True,
) -> Cell:
    """Explore one cell (see the module docstring); the token of a failure it shows is
    shrunk first (`shrink_found`), so it replays a schedule a person can follow."""
    start = time.perf_counter()
    given: Any = protocol  # a class is accepted (see `resolve_protocol`)
    target = Target.resolve(scenario, given)
    name = _protocol_name(protocol)
    key = _expectation_key(scenario, protocol)
    expected = None if key is None else target.scenario.expected_for(key)
    seen = Verdict.CLEAN
    first_hit: int | None = None
    token: str | None = None
    detail = ""
    ran = 0
    for index in range(budget):
        execution = target.run(RandomChooser(derive_seed(seed, index)), max_steps=max_steps)
        ran += 1
        verdict = execution.verdict
        if verdict is Verdict.CLEAN:
            continue
        if (verdict is expected and seen is not Verdict.FOUND) or (
            _SEVERITY[verdict] > _SEVERITY[seen]
        ):
            seen = verdict
            first_hit = index + 1
            failure = execution.failure
            assert failure is not None
            detail = failure.describe()
            schedule = execution.sim.schedule
            token_target = target
            if shrink_found:
                shrunk = shrink(target, schedule, failure.kind, max_steps=max_steps, budget=200)
                schedule, execution = shrunk.schedule, shrunk.execution
                token_target = target.with_params(**shrunk.params)
            token = encode_token(token_target, schedule, execution, max_steps)
        if seen is expected or expected in (Verdict.CLEAN, None) or seen is Verdict.FOUND:
            # the expected failure was shown; or a clean cell is not clean; or data was
            # corrupted where only a liveness failure was expected (never hidden)
            break
    return Cell(
        scenario,
        name,
        expected,
        seen,
        ran,
        first_hit,
        token,
        detail,
        time.perf_counter() - start,
    )


def _protocol_name(protocol: ProtocolRef) -> str:
    return protocol if isinstance(protocol, str) else protocol.name


def _expectation_key(scenario: str, protocol: ProtocolRef) -> str | None:
    """The name a scenario's expectations know `protocol` by, or None if they do not know
    it: a built-in protocol is known to every scenario; your own protocol only to a
    scenario file that names it in ``scenario.protocols`` (by ``module:Class`` or name)."""
    name = _protocol_name(protocol)
    if name in PROTOCOLS and (isinstance(protocol, str) or PROTOCOLS[name] is protocol):
        return name
    if not scenario.endswith(".toml"):
        return None
    listed = read_scenario(scenario).protocols
    refs = [protocol] if isinstance(protocol, str) else [_ref(protocol), name]
    return next((r for r in refs if r in listed), None)


def _ref(protocol: type[OdpProtocol]) -> str:
    return f"{protocol.__module__}:{protocol.__qualname__}"


def _check_protocol(protocol: ProtocolRef) -> None:
    if isinstance(protocol, type) and issubclass(protocol, OdpProtocol):
        return
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return
    if isinstance(protocol, str) and ":" in protocol:
        resolve_protocol(protocol)
        return
    raise InvalidArgument(
        f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)} "
        "or an OdpProtocol subclass"
    )


def _default_protocols(scenario: str) -> list[ProtocolRef]:
    """The protocols a scenario is meant for: a file's list, else every built-in one."""
    if scenario.endswith(".toml"):
        return list(read_scenario(scenario).protocols)
    if scenario not in BUILTIN:
        raise InvalidArgument(
            f"unknown scenario {scenario!r}; expected one of {', '.join(BUILTIN)} "
            "or a scenario file (.toml)"
        )
    return list(PROTOCOLS)


def verdict_matrix(
    *,
    budget: int = 300,
    scenarios: Iterable[str] | None = None,
    protocols: Sequence[ProtocolRef] | None = None,
    seed: int = 0,
    jobs: int = 1,
    on_cell: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """Every cell, in scenario order then protocol order; `on_cell` sees each as it ends."""
    if not isinstance(budget, int) or budget < 1:
        raise InvalidArgument(f"budget must be a positive int, got {budget!r}")
    names = list(scenarios) if scenarios is not None else list(BUILTIN)
    defaults = {name: _default_protocols(name) for name in names}
    for p in protocols or ():
        _check_protocol(p)
    if not isinstance(jobs, int) or jobs < 1:
        raise InvalidArgument(f"jobs must be a positive int, got {jobs!r}")
    pairs = [(s, p) for s in names for p in (list(protocols or ()) or defaults[s])]
    if jobs == 1:
        done = []
        for s, p in pairs:
            cell = explore_cell(s, p, budget, seed)
            if on_cell is not None:
                on_cell(cell)
            done.append(cell)
        return done
    return _matrix_pool(pairs, budget, seed, jobs, on_cell)


def _matrix_pool(
    pairs: list[tuple[str, ProtocolRef]],
    budget: int,
    seed: int,
    jobs: int,
    on_cell: Callable[[Cell], None] | None,
) -> list[Cell]:
    """The cells over `jobs` worker processes, one cell per worker at a time.  The workers
    ignore SIGINT and die with this process; on Ctrl-C (`KeyboardInterrupt`) or an error
    they are terminated at once and the exception propagates."""
    done: dict[int, Cell] = {}
    todo = iter(range(len(pairs)))
    workers = start_workers(min(jobs, len(pairs)), _serve_cells, (budget, seed))
    busy: dict[Connection, int] = {}

    def feed(conn: Connection) -> None:
        for index in todo:
            scenario, protocol = pairs[index]
            conn.send((scenario, protocol))
            busy[conn] = index
            return

    try:
        for _, conn in workers:
            feed(conn)
        while busy:
            for ready in multiprocessing.connection.wait(list(busy), timeout=0.5):
                assert isinstance(ready, Connection)
                try:
                    kind, payload = ready.recv()
                except (EOFError, OSError):
                    raise InternalError("a matrix worker process died") from None
                index = busy.pop(ready)
                if kind == "error":
                    raise payload
                done[index] = payload
                if on_cell is not None:
                    on_cell(payload)
                feed(ready)
    finally:
        stop_workers(workers)
    return [done[i] for i in range(len(pairs))]


def _serve_cells(conn: Connection, budget: int, seed: int) -> None:
    """A matrix worker: explore each ``(scenario, protocol)`` received on `conn`."""
    serve_requests(conn, lambda cell: explore_cell(cell[0], cell[1], budget, seed))
