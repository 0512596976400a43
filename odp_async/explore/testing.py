"""pytest integration: explore an async test over many schedules with one decorator.

Contract
    ``@explore_test(schedules=200, chooser="random")`` (or bare ``@explore_test``, every
    setting its default) on an ``async def test_...`` turns it into a plain (sync) test
    function that runs the body under the sim once per schedule.  It must await
    only odp_async's runtime calls and primitives.  The body may take pytest fixtures
    and parameters: they are resolved once and shared by every schedule (and every
    replay), so a test must leave each of them as it found it by the end of each
    schedule, and so must it leave everything else its runs reach (a helper's module
    global, a class attribute, a closure fixture's cell, an ``lru_cache``'s results).
    One that changes between two runs (a fixture's dict that one schedule mutates,
    compared by value: `odp_async.explore.carried`), or that cannot be compared, fails
    the test with `ExplorationInconclusive` naming it and saying what changed: its
    schedules shared state, so neither a pass nor a violation can be trusted.  So does a
    test that runs one schedule (FIFO: each task in turn) differently before the
    exploration and after it (`_Probe`: state carried that the comparison cannot follow,
    caught by its effect; the body runs twice more than the budget).  Build the state
    under test inside the body.  An unknown setting (``schedulez=10``) raises
    `InvalidArgument` naming the closest one, as `check` does.

    A failing schedule (an exception, a deadlock) fails the test with
    `ExplorationFailed`: the violation, the shrunk schedule step by step, and, as the
    last line, a command that replays that one schedule::

        pytest 'tests/test_x.py::test_name[param]' --odp-replay=<token>

    No failing schedule, but runs that reached ``max_steps`` and did not finish under a
    fair continuation either (a livelock, or a test longer than the bound): the test
    fails with `ExplorationInconclusive` (no verdict, not a violation: the message says
    how many runs and the bound to raise: ``@explore_test(max_steps=...)``, or the
    selected profile's ``max_steps`` when it sets one).

    pytest's own outcomes are the test's, never a failure: a schedule whose run ends
    with ``pytest.skip()`` (or `unittest.SkipTest`) or ``pytest.xfail()``, raised in any
    task and nothing else with it, ends the exploration, and that exception is raised:
    the test is skipped (xfailed) with its reason, with no replay line, and nothing goes
    into the failure database.  It is the first such schedule, in the chooser's order (the
    same every run): a schedule before it that fails is the failure, as always; the
    schedules after it are not run (the test said this run does not apply), so a skip
    that depends on the interleaving ends the test where it first happens.  A replay
    whose schedule now skips skips the test; a token saved in the failure database
    whose schedule now skips no longer reproduces: it is deleted, and the exploration
    runs.  ``pytest.fail()`` (`Failed`) is a failure.

    The token carries the test's id (its pytest node id, parameters included); a replay
    (``--odp-replay``, ``ODP_ASYNC_REPLAY=<token>``, or ``@explore_test(replay=...)``)
    applies only to the test it was made by: every other test explores as usual.  A
    replay that does not reproduce the token's recorded failure (another failure, or
    none) fails the test with `ReplayMismatch`: a token never silently passes.  The
    decorated test is a sync function, so it works beside pytest-trio and anyio's plugin,
    which only take async tests.

    Under the pytest plugin (`odp_async.explore.pytest_plugin`, registered as the
    ``pytest11`` entry point ``odp_async``), the run's settings, the named profiles and
    the failure database apply; called directly (or with ``-p no:odp_async``), the test
    runs with its decorator's arguments and honours only ``ODP_ASYNC_REPLAY``.

Profiles
    A `Profile` is a partial set of settings (schedules, chooser, seed, max_steps, depth,
    stall, time: in a profile, None means "not set", never "no limit");
    a run selects one by name (``--odp-profile``, ini ``odp_profile``).  Built in:
    ``default`` (sets nothing: each test's decorator arguments), ``ci`` (100 schedules)
    and ``nightly`` (10 000 schedules).  `register_profile` adds or replaces one.  The
    registry is explicit module state, like Hypothesis's settings profiles: call
    `register_profile` at import time of a ``conftest.py`` (it lasts for the process).

    Precedence, lowest first: the decorator's arguments, ini settings (``odp_schedules``
    ...), the selected profile, command-line options (``--odp-schedules`` ...).  A profile
    is an explicit choice for this run, so it overrides the project's ini defaults; the
    command line overrides everything.

Failure database
    Every failing token is saved under a directory of the project (`FailureDatabase`,
    default ``.odp-async/failures/``), one file per token, keyed by the test's node id.
    The next run of that test replays its saved tokens first: one that still fails fails
    the test at once with that failure; one that no longer reproduces (it passes, or the
    test now makes other choices: a replay mismatch) is deleted, and exploration runs.

See also
    `odp_async.explore.runner.explore_target`, `odp_async.explore.tokens`,
    `odp_async.explore.pytest_plugin`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn, overload

import attrs

from .._raised import leaves
from .._runtime.choosers import ReplayChooser
from .._runtime.stall import DEFAULT_STALL
from .._user_files import UnreadableFile, open_output, read_text
from ..errors import ExplorationFailed, ExplorationInconclusive, InvalidArgument, ReplayMismatch
from ..scenarios import Scenario
from .arguments import show
from .carried import ArgumentWatch, code_names, outside_names
from .claims import PROBE_FAILURE, PROBE_RUN, claim_text, count
from .config import ExploreConfig, refuse_ignored
from .failures import describe_execution
from .portfolio import PROBE_FINDERS
from .runner import ExploreResult, explore_target, make_failure
from .start_check import StartCheck, describe_record, record_run
from .target import EXPLORED_TEST_ATTR, Execution, Target, docstring_parts
from .tokens import DecodedToken, decode_token, raised_otherwise

__all__ = [
    "REPLAY_ENV",
    "ExplorationFailed",
    "ExploredTest",
    "FailureDatabase",
    "Profile",
    "decode_test_token",
    "explore_test",
    "explored_test_of",
    "get_profile",
    "profile_names",
    "register_profile",
    "replay_command",
]

REPLAY_ENV: Final = "ODP_ASYNC_REPLAY"

TestFunction = Callable[..., Coroutine[Any, Any, Any]]


# --- profiles -------------------------------------------------------------------------------


def _optional(check: Callable[..., None]) -> Callable[[object, Any, object], None]:
    def validate(instance: object, attribute: Any, value: object) -> None:
        if value is not None:
            check(**{attribute.name: value})

    return validate


def _check_fields(**fields: Any) -> None:
    ExploreConfig(**fields)  # raises InvalidArgument naming the field and the value


@attrs.frozen
class Profile:
    """A partial set of exploration settings: None means "not set here" (a lower layer,
    ending with the decorator's arguments, decides)."""

    schedules: int | None = attrs.field(default=None, validator=_optional(_check_fields))
    chooser: str | None = attrs.field(default=None, validator=_optional(_check_fields))
    seed: int | None = attrs.field(default=None, validator=_optional(_check_fields))
    max_steps: int | None = attrs.field(default=None, validator=_optional(_check_fields))
    depth: int | None = attrs.field(default=None, validator=_optional(_check_fields))
    stall: float | None = attrs.field(default=None, validator=_optional(_check_fields))
    time: float | None = attrs.field(default=None, validator=_optional(_check_fields))

    def over(self, lower: Profile) -> Profile:
        """These settings on top of `lower`'s (each field: ours if set, else theirs)."""
        fields = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(lower, name)
            for name in attrs.fields_dict(Profile)
        }
        return Profile(**fields)

    def apply(self, config: ExploreConfig) -> ExploreConfig:
        """`config` with the fields set here replaced."""
        changes = {k: v for k, v in attrs.asdict(self).items() if v is not None}
        return config.evolve(**changes) if changes else config


#: The process-wide profile registry (explicit module state, as Hypothesis's settings
#: profiles are): `register_profile` writes it, the pytest plugin reads it.
_PROFILES: dict[str, Profile] = {
    "default": Profile(),
    "ci": Profile(schedules=100),
    "nightly": Profile(schedules=10_000),
}


def register_profile(
    name: str,
    *,
    schedules: int | None = None,
    chooser: str | None = None,
    seed: int | None = None,
    max_steps: int | None = None,
    depth: int | None = None,
    stall: float | None = None,
    time: float | None = None,
) -> Profile:
    """Add (or replace) the profile `name`; select it with ``--odp-profile=<name>``.

    Call it at import time of a ``conftest.py``.  Raises `InvalidArgument` naming a bad
    value (as `ExploreConfig` would) or a name that is not a non-empty str.
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"a profile name is a non-empty str, got {name!r}")
    try:
        profile = Profile(schedules, chooser, seed, max_steps, depth, stall, time)
    except InvalidArgument as e:
        raise InvalidArgument(f"profile {name!r}: {e}") from None
    _PROFILES[name] = profile
    return profile


def get_profile(name: str) -> Profile:
    """The profile registered as `name`; `InvalidArgument` listing the known ones."""
    try:
        return _PROFILES[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown odp_async profile {name!r}; expected one of {', '.join(_PROFILES)}"
        ) from None


def profile_names() -> tuple[str, ...]:
    return tuple(_PROFILES)


# --- the failure database -------------------------------------------------------------------


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.frozen
class FailureDatabase:
    """Failing tokens of explored tests, as files under `path`.

    Layout: ``<path>/<hash of the test id>/<hash of the token>.token``; each file holds
    the test id on its first line and the token on its second, so a reader can tell
    what it is.  Writes are whole small files; a file that does not parse is ignored.
    """

    path: Path

    def _dir(self, test_id: str) -> Path:
        return self.path / _key(test_id)

    def save(self, test_id: str, token: str) -> Path:
        """Store `token` for `test_id` (idempotent); returns its file."""
        directory = self._dir(test_id)
        directory.mkdir(parents=True, exist_ok=True)
        file = directory / f"{_key(token)}.token"
        try:
            with open_output(file) as f:
                f.write(f"{test_id}\n{token}\n")
        except UnreadableFile as e:
            raise OSError(str(e)) from None
        return file

    def fetch(self, test_id: str) -> list[str]:
        """The tokens saved for `test_id`, oldest file name first (a stable order)."""
        directory = self._dir(test_id)
        if not directory.is_dir():
            return []
        tokens = []
        for file in sorted(directory.glob("*.token")):
            try:
                lines = read_text(file).splitlines()
            except UnreadableFile:  # not a token file of ours (a FIFO, not UTF-8, ...)
                continue
            if len(lines) >= 2 and lines[0] == test_id:
                tokens.append(lines[1])
        return tokens

    def delete(self, test_id: str, token: str) -> None:
        """Forget `token` for `test_id` (no error if it is not there)."""
        directory = self._dir(test_id)
        (directory / f"{_key(token)}.token").unlink(missing_ok=True)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


# --- the decorator --------------------------------------------------------------------------


def _token_test_id(decoded: DecodedToken) -> str | None:
    """The test id a token was made by, or None if it is not an explored test's token.

    Integration point: tokens may carry ``test_id`` themselves (header key "i"); until
    then a test's token names it in its source, ``test:<test id>``.
    """
    test_id = getattr(decoded, "test_id", None)
    if test_id is not None:
        return str(test_id)
    if decoded.source.startswith("test:"):
        return decoded.source.removeprefix("test:")
    return None


def decode_test_token(token: str) -> DecodedToken:
    """Decode a token given to replay an explored test; `InvalidArgument` if it is
    malformed or is not a test's token (a scenario's token replays with the CLI)."""
    decoded = decode_token(token)
    if _token_test_id(decoded) is None:
        raise InvalidArgument(
            f"token for {decoded.source!r} is not an explored test's token; replay it with "
            "`odp-async replay TOKEN`"
        )
    return decoded


@attrs.frozen
class ExploredTest:
    """What `explore_test` made of a test function: the body and its decorator settings.

    `call` runs it once as a test (replay, database, exploration); the pytest plugin
    calls it with the run's settings, a direct call of the decorated function with none.
    """

    fn: TestFunction
    config: ExploreConfig
    replay: str | None = None

    @property
    def default_test_id(self) -> str:
        """The id outside pytest (no node id): ``module.qualname``."""
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def call(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        node_id: str | None = None,
        settings: Profile | None = None,
        replay: str | None = None,
        database: FailureDatabase | None = None,
        replay_hint: Callable[[str], str] | None = None,
        labels: Mapping[str, str] | None = None,
        note: Callable[[str], None] | None = None,
        claimed: Callable[[str, bool], None] | None = None,
    ) -> bool:
        """Run the test; raise `ExplorationFailed` on a failing schedule, and
        `ExplorationInconclusive` (no violation, but runs reached the step bound
        unfinished: raise ``max_steps``) when the exploration has no verdict.

        `settings` go on top of the decorator's; `replay` is a token to replay instead of
        exploring if it was made by this test (see the module docstring); `database`
        saves failing tokens and replays them first.  `labels` name the arguments in
        messages (keyword name, or the position as a str, to e.g. ``fixture 'box'``).
        `note` is called with one line when the test passes on part of its budget (the
        time budget stopped it): its id, its claim, and how far it got.  `claimed` is
        called, when the test passes after exploring (not on a replay), with what the
        search established (`ExploreResult.claim`) and whether it was complete.
        Returns True if a replay token applied to this test.

        Raises `ExplorationInconclusive` if an argument changed between two runs (see the
        module docstring), `ReplayMismatch` if a replay does not reproduce its token.
        """
        __tracebackhide__ = True
        config = (settings or Profile()).apply(self.config)
        test_id = node_id or self.default_test_id
        kwargs = dict(kwargs or {})
        watch = _watch(self.fn, args, kwargs, labels or {})
        target = self._target(args, kwargs, test_id, watch)
        hint = replay_hint or self._env_hint
        for token in (self.replay, replay):
            if token and _token_test_id(decode_test_token(token)) == test_id:
                self._replay(target, test_id, token, hint, watch)
                return True
        if database is not None:
            for token in database.fetch(test_id):
                if self._still_fails(target, token, test_id, watch):
                    self._replay(target, test_id, token, hint, watch, saved_in=database)
                database.delete(test_id, token)
        probe = _Probe.before(target, config, test_id)
        result = explore_target(target, config)
        _refuse_shared_state(test_id, watch, result)
        if result.stalled is None:
            probe.after(target, config, test_id, watch, result)
        result = probe.with_failure(target, config, result)
        failure = result.failure
        if failure is not None:
            outcome = _pytest_outcome(failure.execution)
            if outcome is not None:
                raise outcome  # the test's own skip or xfail: no failure, nothing saved
            token = failure.shrunk_token or failure.token
            report = _report(target, result, test_id, hint)
            if database is not None and token is not None:
                try:
                    database.save(test_id, token)
                except OSError as e:
                    report += f"\n(not saved in the failure database: {e})"
            raise ExplorationFailed(report, result)
        if result.inconclusive:
            claim = result.claim_for(_max_steps_setting(settings))
            raise ExplorationInconclusive(f"{test_id}: {claim}", result)
        if result.out_of_time and note is not None:
            note(
                f"{test_id}: {result.claim}; {config.schedules} schedules were asked for, "
                f"the time budget ({config.time:g} s) stopped it"
            )
        if claimed is not None:
            claimed(result.claim, result.complete)
        return False

    def _target(
        self, args: Sequence[Any], kwargs: dict[str, Any], test_id: str, watch: ArgumentWatch
    ) -> Target:
        fn = self.fn

        async def body() -> Any:
            watch.run_starts()
            return await fn(*args, **kwargs)

        summary, description = docstring_parts(fn)
        scenario = Scenario(
            fn.__qualname__, summary, body, (), description=description, needs_world=False
        )
        return Target(scenario, None, {}, f"test:{test_id}")

    def _env_hint(self, token: str) -> str:
        return f"{REPLAY_ENV}='{token}' pytest ...::{self.fn.__qualname__}"

    @staticmethod
    def _still_fails(target: Target, token: str, test_id: str, watch: ArgumentWatch) -> bool:
        __tracebackhide__ = True
        try:
            decoded = decode_token(token)
            execution = target.run(ReplayChooser(decoded.schedule), max_steps=decoded.max_steps)
        except (InvalidArgument, ReplayMismatch):
            return False
        finally:
            _refuse_shared_state(test_id, watch)
        return execution.failure is not None and _pytest_outcome(execution) is None

    @staticmethod
    def _replay(
        target: Target,
        test_id: str,
        token: str,
        hint: Callable[[str], str],
        watch: ArgumentWatch,
        saved_in: FailureDatabase | None = None,
    ) -> None:
        __tracebackhide__ = True
        decoded = decode_token(token)
        chooser = ReplayChooser(decoded.schedule)
        try:
            execution = target.run(chooser, max_steps=decoded.max_steps, trace=True)
        except ReplayMismatch as e:
            raise ExplorationFailed(
                f"{test_id}: the replay token does not fit this test any more ({e}); the "
                "test changed since the token was made: run it without the token to explore"
            ) from None
        if execution.failure is None and not chooser.is_exhausted:
            raise ExplorationFailed(
                f"{test_id}: the replay token does not fit this test any more (the run "
                f"made {chooser.position} of its {len(decoded.schedule)} recorded "
                "choices); run it without the token to explore"
            )
        if saved_in is not None:
            _refuse_shared_state(test_id, watch)
        outcome = _pytest_outcome(execution)
        if outcome is not None:
            raise outcome  # the replayed schedule skips (xfails) the test now
        failure = execution.failure
        got = (failure.kind, failure.step) if failure is not None else (None, None)
        if got != (decoded.kind, decoded.step):
            _replay_mismatch(test_id, decoded, got, watch)
        otherwise = raised_otherwise(decoded, execution)
        if otherwise is not None:
            _replay_mismatch(test_id, decoded, got, watch, otherwise)
        if failure is None:
            if execution.unfinished:  # no violation, but no pass either
                raise ExplorationInconclusive(
                    f"{test_id}: the replayed schedule reached the step bound of "
                    f"{decoded.max_steps} steps unfinished (a livelock, or a run longer "
                    "than the bound): no verdict"
                )
            return  # the token recorded a run that does not fail, and this one does not
        where = (
            f"a schedule saved in the failure database ({saved_in.path}) by an earlier run"
            if saved_in is not None
            else f"token {token[:24]}..."
        )
        lines = [
            f"{test_id}: replayed {where}: {failure.describe()}",
            _describe_steps(execution),
            "replay it alone:",
            hint(token),
        ]
        raise ExplorationFailed("\n".join(line for line in lines if line))


@attrs.frozen
class _Probe:
    """One schedule run before the exploration and again after it: a test whose runs
    start from the same state runs it the same way twice (the sim is deterministic given
    its schedule).  It catches state carried between runs that the watch
    (`odp_async.explore.carried`) cannot see, when it changes what the test does: a
    first run that "warms" something sends every later run down another path, which
    may hide the bug (trial 21a f3c), or fails where no single run would."""

    #: (schedule, steps, outcome, failure kind and step, unfinished), or None when the
    #: run could not be made (a stall, a usage error: the exploration says so itself)
    seen: tuple[object, ...] | None
    #: The run, if it failed: a test seen to fail is never a pass, whatever the
    #: exploration then finds (`with_failure`).
    failed: Execution | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def before(cls, target: Target, config: ExploreConfig, test_id: str) -> _Probe:
        """Run the schedule; `ExplorationInconclusive` at once if a step of it stalled
        (the exploration would stall too: one wait for the stall limit, not two)."""
        __tracebackhide__ = True
        start = StartCheck.before(target, config)
        if start.stalled is not None:
            claim = claim_text(
                0, chooser=config.chooser, stalled=start.stalled, stalled_run=PROBE_RUN
            )
            raise ExplorationInconclusive(f"{test_id}: {claim}")
        return cls(start.seen, start.failed)

    def with_failure(
        self, target: Target, config: ExploreConfig, result: ExploreResult
    ) -> ExploreResult:
        """`result`, with this run as its failure (index 0, found by the FIFO probe run,
        shrunk, with its token) if it failed and no schedule of the exploration did."""
        if self.failed is None or result.failure is not None or result.stalled is not None:
            return result
        schedule = self.failed.sim.schedule
        failure = make_failure(target, config, 0, schedule, self.failed, found_by=FIFO_PROBE)
        return attrs.evolve(
            result,
            failure=failure,
            found_by=FIFO_PROBE,
            complete=False,
            traces=None,
            failing=(0, *result.failing),
        )

    def after(
        self,
        target: Target,
        config: ExploreConfig,
        test_id: str,
        watch: ArgumentWatch,
        result: ExploreResult,
    ) -> None:
        """Run the schedule again; `ExplorationInconclusive` if it ran otherwise."""
        __tracebackhide__ = True
        if self.seen is None:
            return
        schedule = self.seen[0]
        assert isinstance(schedule, tuple)
        again = record_run(target, config, ReplayChooser(schedule))
        _refuse_shared_state(test_id, watch, result)  # the watch names what, if it saw it
        if again == self.seen:
            return
        raise ExplorationInconclusive(
            f"{test_id}: no verdict: the same schedule ran differently before the "
            f"exploration ({describe_record(self.seen)}) and after it "
            f"({describe_record(again)}): the test's runs do not start from the same "
            "state. "
            "A run left state behind that the next one read, where the check of the "
            "fixtures, arguments and globals cannot see it (a C object, a name computed "
            "at run time, a file), or a run depends on more than its schedule (the clock, "
            "the random module, object ids): neither a pass nor a failure can be trusted, "
            "and this is not a violation found in the test.",
            result,
        )


def _max_steps_setting(settings: Profile | None) -> str:
    """The setting that raises an explored test's step bound, as its user sets it: the
    decorator's, unless the run's settings (under the pytest plugin: the profile, the
    only layer that sets ``max_steps``) override it."""
    if settings is not None and settings.max_steps is not None:
        return "max_steps in the selected profile (register_profile)"
    return "@explore_test(max_steps=...)"


def _pytest_outcome(execution: Execution) -> BaseException | None:
    """The pytest outcome a run ended with, to be raised as the test's: the first of its
    exceptions when every one is ``pytest.skip``'s (`unittest.SkipTest` too, which pytest
    reports as a skip) or ``pytest.xfail``'s; None for any other run (``pytest.fail``'s
    `Failed` is a failure, and so is a run that also raised anything else)."""
    error = execution.sim.error
    failure = execution.failure
    if error is None or failure is None or failure.kind != "error":
        return None
    kinds: list[type[BaseException]] = []
    outcomes = sys.modules.get("_pytest.outcomes")  # not imported: no pytest outcome raised
    if outcomes is not None:
        kinds += [outcomes.Skipped, outcomes.XFailed]
    unittest = sys.modules.get("unittest")
    if unittest is not None:
        kinds.append(unittest.SkipTest)
    raised = leaves(error)
    if kinds and raised and all(isinstance(e, tuple(kinds)) for e in raised):
        return raised[0]
    return None


#: Who found a failure of the FIFO run before the exploration (`_Probe.with_failure`).
FIFO_PROBE: Final = PROBE_FINDERS[0]

#: The settings `explore_test` takes, by keyword.
_SETTINGS: Final = (
    "schedules",
    "chooser",
    "seed",
    "max_steps",
    "depth",
    "preemption_bound",
    "stall",
    "time",
    "replay",
)


@overload
def explore_test(fn: TestFunction, /) -> Callable[..., None]: ...


@overload
def explore_test(
    *,
    schedules: int = 200,
    chooser: str = "portfolio",
    seed: int = 0,
    max_steps: int = 20_000,
    depth: int = 3,
    preemption_bound: int | None = None,
    stall: float | None = DEFAULT_STALL,
    time: float | None = None,
    replay: str | None = None,
    **unknown: Any,
) -> Callable[[TestFunction], Callable[..., None]]: ...


def explore_test(
    fn: TestFunction | None = None,
    /,
    *,
    schedules: int = 200,
    chooser: str = "portfolio",
    seed: int = 0,
    max_steps: int = 20_000,
    depth: int = 3,
    preemption_bound: int | None = None,
    stall: float | None = DEFAULT_STALL,
    time: float | None = None,
    replay: str | None = None,
    **unknown: Any,
) -> Callable[..., Any]:
    """Decorate an async test to be explored; see the module docstring.  Bare
    (``@explore_test``: every setting its default) or with settings
    (``@explore_test(schedules=500)``).

    `stall` is the longest one step of a schedule may take, in seconds (default 60; None:
    no limit of its own), and never more than `time` plus 5 s when a time budget is set
    (`ExploreConfig.stall_limit`): past it the test fails with `ExplorationInconclusive`
    naming the line it was stuck at (``time.sleep``, a spin with no await).  `time` is a
    wall-clock budget in seconds (default None: none): the search stops at the first
    schedule that would start after it, and a pass it cut short then says how far it got
    (as `check`'s ``time``): under the pytest plugin, a line of the run's terminal
    summary (``odp_async: <node id>: no violation in N schedules (time budget reached,
    not complete); M schedules were asked for, the time budget (T s) stopped it``), the
    same text as the test's ``user_properties`` entry ``odp_async`` (junitxml's
    properties); called directly, nothing.  Both are `ExploreConfig`'s.

    Raises `InvalidArgument` at decoration time for an unknown setting (naming the
    closest known one), a bad value, a setting its chooser ignores (``depth`` with
    ``random``, as `odp_async.explore.check` does), a positional argument that is not an
    async test, or a test that is not an ``async def``.
    """
    for name in unknown:
        hint = difflib.get_close_matches(name, _SETTINGS, n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise InvalidArgument(
            f"unknown explore_test setting {name!r}{maybe}; expected one of: "
            f"{', '.join(_SETTINGS)}"
        )
    if fn is not None and not callable(fn):
        raise InvalidArgument(
            "explore_test takes its settings by keyword (@explore_test(schedules=200)) or "
            f"none (@explore_test), got {show(fn)}"
        )
    config = ExploreConfig(
        chooser=chooser,
        schedules=schedules,
        seed=seed,
        max_steps=max_steps,
        depth=depth,
        preemption_bound=preemption_bound,
        stall=stall,
        time=time,
    )
    refuse_ignored(config)  # as check() and explore(): depth with random is refused
    if replay is not None:
        if not isinstance(replay, str):
            raise InvalidArgument(f"replay must be None or a token (str), got {show(replay)}")
        decode_test_token(replay)

    def decorate(fn: TestFunction) -> Callable[..., None]:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidArgument(f"explore_test needs an async def test, got {fn!r}")
        spec = ExploredTest(fn, config, replay)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            __tracebackhide__ = True
            spec.call(args, kwargs, replay=os.environ.get(REPLAY_ENV) or None)

        run.__dict__[EXPLORED_TEST_ATTR] = spec
        return run

    return decorate(fn) if fn is not None else decorate


def explored_test_of(obj: object) -> ExploredTest | None:
    """The `ExploredTest` behind a function decorated with `explore_test`, else None."""
    spec = getattr(obj, EXPLORED_TEST_ATTR, None)
    return spec if isinstance(spec, ExploredTest) else None


def _watch(
    fn: TestFunction, args: Sequence[Any], kwargs: Mapping[str, Any], labels: Mapping[str, str]
) -> ArgumentWatch:
    """Watch every argument of a call of the test (`labels` name them, by keyword or by
    position as a str), and the globals and closure variables its code names."""
    values = outside_names(fn)
    for i, value in enumerate(args):
        label = labels.get(str(i), f"argument {i + 1}")
        name = "self" if "self" in label else f"<argument {i + 1}>"
        values[label] = (name, functools.partial(_same, value))
    for name, value in kwargs.items():
        values[labels.get(name, f"argument {name!r}")] = (name, functools.partial(_same, value))
    return ArgumentWatch.take(values, code_names(fn))


def _same(value: object) -> object:
    return value


def _refuse_shared_state(test_id: str, watch: ArgumentWatch, result: object = None) -> None:
    """Raise `ExplorationInconclusive` if `watch` saw an argument change between runs."""
    __tracebackhide__ = True
    change = watch.check()
    if change is None:
        return
    raise ExplorationInconclusive(
        f"{test_id}: no verdict: {change.describe()}. Every schedule of an explored test "
        "(and every replay that checks, shrinks or reports a failure) runs on the same "
        "fixture values and arguments, built once for the test, so its schedules share "
        "that state and each starts where the one before left it: neither a pass nor a "
        "failure can be trusted, and this is not a violation found in the test. Build "
        "the state under test inside the test body, or leave every fixture value as it "
        "was when a schedule ends (restore it in a `finally`).",
        result,
    )


def _replay_mismatch(
    test_id: str,
    decoded: DecodedToken,
    got: tuple[str | None, int | None],
    watch: ArgumentWatch,
    otherwise: str | None = None,
) -> NoReturn:
    # `otherwise`: the same kind at the same step, other exceptions (`raised_otherwise`).
    __tracebackhide__ = True
    expected = f"{decoded.kind} at step {decoded.step}" if decoded.kind else "no failure"
    found = f"{got[0]} at step {got[1]}" if got[0] else "no failure"
    what = otherwise or f"recorded {expected}, the replay gave {found}"
    change = watch.check()
    cause = (
        "the test, its fixtures or odp_async changed since the token was made (a fixed "
        "bug?), or the run that made it carried state between its schedules"
    )
    if change is not None and change.why is not None:
        cause += (
            f"; {change.describe()}: a token made then records a verdict that cannot be trusted"
        )
    elif change is not None:
        cause += (
            f"; the replay changed {change.label} ({change.path} went from {change.before} "
            f"to {change.after}): a token made while the schedules shared it records a "
            "verdict that cannot be trusted"
        )
    raise ReplayMismatch(
        f"{test_id}: the replay token {what}: {cause}; run the test without the token to explore"
    )


def replay_command(node_id: str, token: str) -> str:
    """The shell command that replays `token` on the test `node_id` (always quoted:
    parameter ids hold brackets, which shells glob)."""
    quoted = "'" + node_id.replace("'", "'\"'\"'") + "'"
    return f"pytest {quoted} --odp-replay={token}"


# --- the report -----------------------------------------------------------------------------


def _report(
    target: Target, result: ExploreResult, test_id: str, hint: Callable[[str], str]
) -> str:
    failure = result.failure
    assert failure is not None
    # index 0: no schedule failed, a probe run did (`Failure.index`)
    when = f"after {count(failure.index, 'schedule')}" if failure.index else PROBE_FAILURE
    by = f", found by {failure.found_by}" if not failure.index and failure.found_by else ""
    lines = [
        f"{test_id}: {failure.verdict} {when} "
        f"({result.config.chooser}, seed {result.config.seed}{by})",
        failure.violation.describe(),
    ]
    if failure.shrunk is not None:
        s = failure.shrunk
        lines.append(
            f"shrunk: {s.preemptions_before} -> {s.preemptions_after} preemptions, "
            f"failure at step {s.steps_before} -> {s.steps_after}"
        )
    if failure.shrunk is not None:
        target = target.with_params(**failure.shrunk.params)
        schedule = failure.shrunk.schedule
    else:
        schedule = failure.schedule
    shown = target.run(ReplayChooser(schedule), max_steps=result.config.max_steps, trace=True)
    lines.append(_describe_steps(shown))
    token = failure.shrunk_token or failure.token
    if token:
        lines.append("replay it alone:")
        lines.append(hint(token))
    return "\n".join(line for line in lines if line)


def _describe_steps(execution: Execution) -> str:
    """The schedule step by step, with the names the test gave its tasks (the violation
    itself is said once, by the caller)."""
    return describe_execution(execution, steps=True, cause=False)
