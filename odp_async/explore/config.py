"""Every bound of an exploration, in one frozen record.

Contract
    `ExploreConfig` holds the chooser's name and each knob the explorer has; building one
    with a bad value, or `evolve` with an unknown field, raises `InvalidArgument` naming
    the field and the value.  Nothing else
    in the explorer has a hidden default: what a run did is a function of its config.

See also
    `odp_async.explore.runner.explore`.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from ..errors import InvalidArgument

__all__ = ["CHOOSERS", "ExploreConfig", "check_fields", "derive_seed"]

CHOOSERS: Final = ("random", "pct", "dfs")
ChooserName = Literal["random", "pct", "dfs"]


def _positive(name: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{name} must be a positive int, got {value!r}")

    return check


def _chooser(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in CHOOSERS:
        raise InvalidArgument(f"unknown chooser {value!r}; expected one of {', '.join(CHOOSERS)}")


def _bound(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidArgument(
            f"preemption_bound must be None or a non-negative int, got {value!r}"
        )


def _start(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"start must be a non-negative int, got {value!r}")


def _seed(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"seed must be an int, got {value!r}")


@attrs.frozen
class ExploreConfig:
    """How to explore.

    - `chooser`: ``random`` (uniform, seeded), ``pct`` (priority change points, `depth`),
      ``dfs`` (exhaustive, bounded by `preemption_bound`; None = iterative bounding from 0
      up to `max_preemptions`).
    - `schedules`: the budget, in executions.
    - `start` (random, pct): the index of the first schedule; schedules
      ``start .. start+schedules-1`` run, so runs with adjacent ranges shard one search.
    - `seed`: the base of every per-schedule seed (random, pct).
    - `max_steps`: per execution; a run past it is reported as starvation.
    - `reduction` (dfs): sleep sets over footprints and symmetry between identical tasks.
    - `trust_primitives` (dfs): count a primitive's acquire as the step's footprint (lock
      discipline); False for code with shared state outside its locks.  Always off for
      the ODP model's scenarios, whose shared state is not all under locks.
    - `jobs`: worker processes (random, pct); results do not depend on it.
    - `stop_on_first`: stop at the first failing schedule.
    - `shrink`: shrink the first failure's schedule.
    """

    chooser: str = attrs.field(default="random", validator=_chooser)
    schedules: int = attrs.field(default=1000, validator=_positive("schedules"))
    seed: int = attrs.field(default=0, validator=_seed)
    start: int = attrs.field(default=0, validator=_start)
    max_steps: int = attrs.field(default=50_000, validator=_positive("max_steps"))
    depth: int = attrs.field(default=3, validator=_positive("depth"))
    preemption_bound: int | None = attrs.field(default=None, validator=_bound)
    max_preemptions: int = attrs.field(default=3, validator=_positive("max_preemptions"))
    reduction: bool = True
    trust_primitives: bool = True
    jobs: int = attrs.field(default=1, validator=_positive("jobs"))
    stop_on_first: bool = True
    shrink: bool = True

    def evolve(self, **changes: Any) -> ExploreConfig:
        """This config with some fields changed.  Raises `InvalidArgument` naming an
        unknown field (with the closest known one) or a bad value."""
        check_fields(changes)
        return attrs.evolve(self, **changes)


def check_fields(fields: Mapping[str, Any]) -> None:
    """Raise `InvalidArgument` for the first name in `fields` that is not a config field."""
    known = [a.name for a in attrs.fields(ExploreConfig)]
    for name in fields:
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise InvalidArgument(
                f"unknown exploration setting {name!r}{maybe}; expected one of: {', '.join(known)}"
            )


def derive_seed(seed: int, index: int) -> int:
    """The seed of schedule `index` of an exploration seeded with `seed` (64 bits)."""
    digest = hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
