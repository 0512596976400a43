"""The verdict matrix: every built-in scenario under every protocol, against expectations.

Contract
    `verdict_matrix(budget=...)` explores each (scenario, protocol) cell with the random
    chooser and up to `budget` schedules (not the portfolio, the explorer's default: the
    matrix asks each cell's verdict, every expected failure shows within its default
    budget under random, and a cell expected clean runs its whole budget, where the
    portfolio's pct probes and in-process dpor share would only add cost).  A cell whose
    expected verdict is a failure stops at the first schedule showing that verdict; a
    cell expected clean runs its whole budget.  The cell's verdict is the expected one
    if it was seen, else the most severe seen (found, then deadlock, then starvation,
    then clean); a safety violation (found) seen where a deadlock or starvation was
    expected always wins, so corruption is never hidden behind an expected liveness
    failure.  Cells are independent and deterministic (the schedules of a cell depend
    only on the seed), so `jobs` spreads cells over processes, and `executor` over any
    `Executor` (a Dask cluster), without changing any result.

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

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from .._runtime.choosers import RandomChooser
from ..errors import InvalidArgument
from ..odp.protocols import PROTOCOLS, OdpProtocol, resolve_protocol
from ..scenarios import BUILTIN, Verdict
from ..scenarios.files import read_scenario
from .config import MAX_JOBS, derive_seed
from .executors import Executor, ProcessExecutor
from .shrink import shrink
from .target import Target
from .tokens import encode_token

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
            schedule = execution.sim.schedule
            token_target = target
            if shrink_found:
                # a modest shrink, no minimality proof: the matrix stays fast
                shrunk = shrink(
                    target, schedule, failure.kind, max_steps=max_steps, budget=100, proof_budget=0
                )
                schedule, execution = shrunk.schedule, shrunk.execution
                token_target = target.with_params(**shrunk.params)
                # the detail describes the run the token replays (the shrunk one)
                failure = execution.failure
                assert failure is not None
            detail = failure.describe()
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
    executor: Executor | None = None,
) -> list[Cell]:
    """Every cell, in scenario order then protocol order; `on_cell` sees each as it ends.
    The cells run in this process (``jobs=1``), on `jobs` worker processes, or as tasks
    of `executor` (which the caller closes)."""
    if not isinstance(budget, int) or budget < 1:
        raise InvalidArgument(f"budget must be a positive int, got {budget!r}")
    names = list(scenarios) if scenarios is not None else list(BUILTIN)
    defaults = {name: _default_protocols(name) for name in names}
    for p in protocols or ():
        _check_protocol(p)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise InvalidArgument(f"jobs must be a positive int, got {jobs!r}")
    if jobs > MAX_JOBS:
        raise InvalidArgument(f"jobs must be at most {MAX_JOBS}, got {jobs!r}")
    pairs = [(s, p) for s in names for p in (list(protocols or ()) or defaults[s])]
    jobs = max(1, min(jobs, len(pairs)))  # no idle worker processes
    if jobs == 1 and executor is None:
        done = []
        for s, p in pairs:
            cell = explore_cell(s, p, budget, seed)
            if on_cell is not None:
                on_cell(cell)
            done.append(cell)
        return done
    pool = executor if executor is not None else ProcessExecutor(jobs)
    cells: dict[int, Cell] = {}
    try:
        for key, (s, p) in enumerate(pairs):
            pool.submit(key, explore_cell, s, p, budget, seed)
        while len(cells) < len(pairs):
            for finished in pool.wait(1.0):
                if finished.error is not None:
                    raise finished.error
                assert isinstance(finished.key, int)
                cells[finished.key] = finished.value
                if on_cell is not None:
                    on_cell(finished.value)
    except BaseException:
        pool.abort()
        raise
    finally:
        if executor is None:
            pool.close()
    return [cells[key] for key in range(len(pairs))]
