"""Every bound of an exploration, in one frozen record.

Contract
    `ExploreConfig` holds the chooser's name and each knob the explorer has; building one
    with a bad value, or `evolve` with an unknown field, raises `InvalidArgument` naming
    the field and the value: every field is checked by type (a bool field takes only a
    bool, not 1 or ``"no"``), and every number has a range (`MAX_SCHEDULES`, `MAX_STEPS`,
    `MAX_DEPTH`, `MAX_PREEMPTIONS`, `MAX_JOBS`, `SEED_BITS`).  Nothing else
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

from .._runtime.stall import DEFAULT_STALL
from ..errors import InvalidArgument
from .arguments import require_bool

__all__ = [
    "CHOOSERS",
    "DEFAULT_STALL",
    "MAX_DEPTH",
    "MAX_JOBS",
    "MAX_PREEMPTIONS",
    "MAX_SCHEDULES",
    "MAX_SECONDS",
    "MAX_STEPS",
    "SEED_BITS",
    "STALL_GRACE",
    "ExploreConfig",
    "check_fields",
    "derive_seed",
]

CHOOSERS: Final = ("portfolio", "random", "pct", "dfs", "dpor")
ChooserName = Literal["portfolio", "random", "pct", "dfs", "dpor"]

# The ranges of the budgets: wide enough for any real exploration, narrow enough that a
# typo (or a fuzzer) gets a one-line error instead of an overflow or a run of years.
#: The most schedules one exploration may run.
MAX_SCHEDULES: Final = 10**9
#: The largest step bound per execution (also the bound a replay token may carry).
MAX_STEPS: Final = 10**9
#: The largest pct depth.
MAX_DEPTH: Final = 1000
#: The largest preemption bound (dfs; fixed or iterative).
MAX_PREEMPTIONS: Final = 1000
#: The most worker processes (the CLI also caps ``--jobs`` to the CPUs and the work).
MAX_JOBS: Final = 1024
#: A seed is an int of at most this many bits (either sign).
SEED_BITS: Final = 64
#: The longest wall-clock budget (`ExploreConfig.time`, `ExploreConfig.stall`), in
#: seconds: 30 days.
MAX_SECONDS: Final = 30 * 24 * 3600.0
#: The seconds past the wall-clock budget (`ExploreConfig.time`) a step may still run
#: before the search stops at it (`ExploreConfig.stall_limit`).
STALL_GRACE: Final = 5.0


def _positive(name: str, maximum: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{name} must be a positive int, got {_show(value)}")
        if value > maximum:
            raise InvalidArgument(f"{name} must be at most {maximum}, got {_show(value)}")

    return check


def _count(name: str, maximum: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"{name} must be a non-negative int, got {_show(value)}")
        if value > maximum:
            raise InvalidArgument(f"{name} must be at most {maximum}, got {_show(value)}")

    return check


def _show(value: object) -> str:
    """`value` for a message: an int of hundreds of digits is not worth printing whole."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"
    return repr(value)


def _chooser(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in CHOOSERS:
        raise InvalidArgument(f"unknown chooser {value!r}; expected one of {', '.join(CHOOSERS)}")


def _bound(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidArgument(
            f"preemption_bound must be None or a non-negative int, got {_show(value)}"
        )
    if value is not None and value > MAX_PREEMPTIONS:
        raise InvalidArgument(
            f"preemption_bound must be at most {MAX_PREEMPTIONS}, got {_show(value)}"
        )


def _optional_bool(name: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, bool):
            raise InvalidArgument(f"{name} must be None or a bool, got {value!r}")

    return check


def _flag(name: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        require_bool(name, value)  # not 1, not "no", not None: a bool

    return check


def _start(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # Any index is a valid schedule (its seed is derived from (seed, index)); bounded as
    # the seed is, so a report's schedule numbers stay readable.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"start must be a non-negative int, got {_show(value)}")
    if value.bit_length() > SEED_BITS:
        raise InvalidArgument(
            f"start must be an int of at most {SEED_BITS} bits (< 2**{SEED_BITS}), "
            f"got {_show(value)}"
        )


def _seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    name = attribute.name
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise InvalidArgument(f"{name} must be None or a number of seconds > 0, got {value!r}")
    if value > MAX_SECONDS:  # inf included
        raise InvalidArgument(f"{name} must be at most {MAX_SECONDS:g} seconds, got {value!r}")


def _seed(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value.bit_length() > SEED_BITS:
        raise InvalidArgument(
            f"seed must be an int of at most {SEED_BITS} bits (|seed| < 2**{SEED_BITS}), "
            f"got {_show(value)}"
        )


@attrs.frozen
class ExploreConfig:
    """How to explore.

    - `chooser`: ``portfolio`` (the default: random, pct at depths 1 to 5, a
      one-preemption sweep and dpor, each with a fixed share of the schedule indices;
      `odp_async.explore.portfolio`),
      ``random`` (uniform, seeded), ``pct`` (priority change points, `depth`),
      ``dfs`` (exhaustive, bounded by `preemption_bound`; None = iterative bounding from 0
      up to `max_preemptions`, 0 included: the schedules without a preemption).
    - `schedules`: the budget, in executions.
    - `time`: a wall-clock budget in seconds (None: none); the search stops at the first
      schedule (or, with workers, chunk or dpor subtree) that would start after it, and a
      schedule running in the exploring process when it is spent is abandoned between two
      steps (looked at every `odp_async._runtime.budget.CHECK_EVERY` steps; not once a
      failure is known) and counts for nothing.  Results then depend
      on the machine's speed; without it they do not.
    - `stall`: the longest one step of a run may take, in seconds (None: no limit of
      its own).  The sim cannot preempt code between checkpoints: a step that loops with
      no await or blocks in a synchronous call would hang the search.  Past the limit
      the search stops inconclusive (`ExploreResult.stalled`; in the main thread:
      interrupted by a signal, `odp_async._runtime.stall`; in another thread the step
      cannot be stopped, and the line goes to stderr).  With a `time` budget the limit
      is at most ``time + STALL_GRACE`` (`stall_limit`), ``stall=None`` included.  No
      result of a step that returns depends on it.
    - `start` (random, pct, portfolio): the index of the first schedule; schedules
      ``start .. start+schedules-1`` run, so runs with adjacent ranges shard one search.
      Indices count from 0, while `Failure.index` and `ExploreResult.failing` count
      from 1: the failure at schedule N is index N-1 (``start=N-1, schedules=1``); 0
      there is a probe run made before the schedules, not a schedule.
      Any index below ``2**64`` is valid (each schedule's seed is derived from the seed
      and its index, `derive_seed`): `InvalidArgument` when ``start + schedules``
      exceeds ``2**64``, so every schedule a run reports (numbered up to ``2**64``) can
      be re-run alone.
    - `seed`: the base of every per-schedule seed (random, pct, portfolio): any int of
      at most `SEED_BITS` bits, negative ones too (each seed is another reproducible
      search); `InvalidArgument` past it.
    - `max_steps`: per execution; a run past it that a fair continuation does not
      finish either is *unfinished*: no verdict, and the search is inconclusive
      (`odp_async.explore.fairness`, `ExploreResult.inconclusive`), never starvation.
    - ``dpor``: source-DPOR with sleep sets (`odp_async.explore.dpor`), exhaustive over
      Mazurkiewicz traces; `preemption_bound` optional (None: unbounded).
    - portfolio: `depth` is not used (its pct members run depths 1 to 5); its dpor
      share uses `preemption_bound`.
    - `reduction` (dfs): sleep sets over footprints and symmetry between identical tasks
      not yet started (`odp_async.explore.dfs`).
    - `symmetry` (dfs): None follows `reduction`; False turns symmetry off (sound either
      way: it only merges tasks that have not run a step).
    - `trust_primitives` (dfs, dpor): under the program's noted-only promise, a step that
      starts at a primitive's acquire or wait also declares that primitive.  It acts only
      under the promise: without it such a step is unknown, trusted or not (the code
      after the acquire may touch unnoted state).  Always off for the ODP model's
      scenarios, whose primitives' own notes are their footprints.
    - `jobs`: worker processes (random, pct, portfolio: its dpor share runs in this
      process); results do not depend on it.
    - `stop_on_first`: stop at the first failing schedule (and the portfolio where its
      dpor member completes); False runs the whole budget.
    - `shrink`: shrink the first failure's schedule.
    """

    chooser: str = attrs.field(default="portfolio", validator=_chooser)
    schedules: int = attrs.field(default=1000, validator=_positive("schedules", MAX_SCHEDULES))
    seed: int = attrs.field(default=0, validator=_seed)
    start: int = attrs.field(default=0, validator=_start)
    max_steps: int = attrs.field(default=50_000, validator=_positive("max_steps", MAX_STEPS))
    depth: int = attrs.field(default=3, validator=_positive("depth", MAX_DEPTH))
    preemption_bound: int | None = attrs.field(default=None, validator=_bound)
    max_preemptions: int = attrs.field(
        default=3, validator=_count("max_preemptions", MAX_PREEMPTIONS)
    )
    reduction: bool = attrs.field(default=True, validator=_flag("reduction"))
    symmetry: bool | None = attrs.field(default=None, validator=_optional_bool("symmetry"))
    trust_primitives: bool = attrs.field(default=True, validator=_flag("trust_primitives"))
    jobs: int = attrs.field(default=1, validator=_positive("jobs", MAX_JOBS))
    stop_on_first: bool = attrs.field(default=True, validator=_flag("stop_on_first"))
    shrink: bool = attrs.field(default=True, validator=_flag("shrink"))
    time: float | None = attrs.field(default=None, validator=_seconds)
    stall: float | None = attrs.field(default=DEFAULT_STALL, validator=_seconds)

    def __attrs_post_init__(self) -> None:
        last = self.start + self.schedules  # the last schedule's number, counted from 1
        if last > 1 << SEED_BITS:
            raise InvalidArgument(
                f"start + schedules must be at most 2**{SEED_BITS} (schedule indices stay "
                f"below 2**{SEED_BITS}), got start={self.start} + schedules={self.schedules}"
                f" = {last}"
            )

    @property
    def stall_limit(self) -> float | None:
        """The seconds a step may run before the search stops at it: `stall`, but never
        more than the wall-clock budget `time` plus `STALL_GRACE` (a search given 3 s does
        not hang for a minute on a step that never returns), ``stall=None`` included;
        None (no limit) only with neither set."""
        if self.time is None:
            return self.stall
        cap = self.time + STALL_GRACE
        return cap if self.stall is None else min(self.stall, cap)

    def evolve(self, **changes: Any) -> ExploreConfig:
        """This config with some fields changed.  Raises `InvalidArgument` naming an
        unknown field (with the closest known one) or a bad value."""
        check_fields(changes)
        return attrs.evolve(self, **changes)


#: The fields only some choosers use: field -> the choosers that use it (as documented
#: on `ExploreConfig`; the CLI refuses its flags by the same table, `odp_async.cli`).
CHOOSER_FIELDS: Mapping[str, tuple[str, ...]] = {
    "preemption_bound": ("dfs", "dpor", "portfolio"),
    "max_preemptions": ("dfs",),
    "depth": ("pct",),
    "reduction": ("dfs",),
    "symmetry": ("dfs",),
    "trust_primitives": ("dfs", "dpor", "portfolio"),
    "jobs": ("random", "pct", "portfolio", "dpor"),
}


def refuse_ignored(config: ExploreConfig) -> None:
    """Raise `InvalidArgument` for a field of `config` set away from its default that
    its chooser ignores (`CHOOSER_FIELDS`: ``depth`` with ``random``, ``jobs`` with
    ``dfs``...), naming the field, its value and the chooser: a bound the search never
    applies must not look applied.  A field left at its default passes, so a caller may
    pass every field."""
    defaults = attrs.fields_dict(ExploreConfig)
    for name, users in CHOOSER_FIELDS.items():
        value = getattr(config, name)
        if config.chooser not in users and value != defaults[name].default:
            raise InvalidArgument(
                f"{name}={_show(value)} is for chooser {' or '.join(users)}; chooser "
                f"{config.chooser!r} ignores it (drop it, or choose one that uses it)"
            )


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
