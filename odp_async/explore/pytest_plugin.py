"""The pytest plugin for explored tests (entry point ``pytest11``: ``odp_async``).

Contract
    Installed with odp_async, it is active in every pytest run (``-p no:odp_async`` turns
    it off).  It runs each test decorated with `odp_async.explore.testing.explore_test`
    with the run's settings, the selected profile and the failure database; every other
    test is left alone.  Its fixtures, parameters and ``self`` are handed to the test's
    watch under their names (``fixture 'box'``, ``parameter 'n'``): one that changes
    between two runs fails the test with `ExplorationInconclusive` (see
    `odp_async.explore.testing`), and a replay that does not reproduce its token fails
    it with `ReplayMismatch`.  ``pytest.skip()`` and ``pytest.xfail()`` in the test (in
    any task) skip (xfail) it: the first schedule that raises one ends the exploration,
    nothing is saved (see `odp_async.explore.testing`).  A test that passes on part of
    its budget, the time budget having stopped it, says how far it got in a line of the
    terminal summary (``odp_async: <node id>: no violation in N schedules (time budget
    reached, not complete); ...``), which its report carries as the ``user_properties``
    entry `NOTE_PROPERTY` (so under pytest-xdist and in junitxml too).  The summary
    also counts the explored tests that passed, how many of their searches were complete
    (every trace explored: a proof for that test's program) and how many stopped at
    their budget (``odp_async: 3 explored tests passed: 1 complete (every trace
    explored), 2 on their budget, not complete``); under ``-v`` it lists each test's
    claim (`CLAIM_PROPERTY`, `COMPLETE_PROPERTY`).

    ==========================  =====================  =====================================
    command line                ini                    what
    ==========================  =====================  =====================================
    ``--odp-schedules N``       ``odp_schedules``      the budget of every explored test
    ``--odp-seed N``            ``odp_seed``           the base seed
    ``--odp-chooser NAME``      ``odp_chooser``        portfolio | random | pct | dfs | dpor
    ``--odp-stall SECONDS``     ``odp_stall``          the longest one step may take (the
                                                       decorator's ``stall``, default 60)
    ``--odp-time SECONDS``      ``odp_time``           a wall-clock budget per explored test
    ``--odp-profile NAME``      ``odp_profile``        a named profile (default, ci, nightly,
                                                       or one from `register_profile`)
    ``--odp-replay TOKEN``      ``odp_replay``         replay this token on the test it was
                                                       made by (``ODP_ASYNC_REPLAY`` too)
    ``--odp-database PATH``     ``odp_database``       the failure database (default
                                                       ``.odp-async/failures`` under the
                                                       rootdir; ``none``: off; a path given
                                                       must be in a directory that exists)
    ==========================  =====================  =====================================

    Precedence, lowest first: decorator arguments < ini < profile < command line (see
    `odp_async.explore.testing`).  A bad value is a usage error (pytest exits 4 with one
    line naming the option and the value); an unknown profile name is reported once
    every ``conftest.py`` has been imported (after collection).

See also
    `odp_async.explore.testing` (the decorator, profiles, the database).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import attrs
import pytest

from ..errors import InvalidArgument
from .testing import (
    REPLAY_ENV,
    FailureDatabase,
    Profile,
    _token_test_id,
    decode_test_token,
    explored_test_of,
    get_profile,
    replay_command,
)

__all__ = ["DEFAULT_DATABASE", "NOTE_PROPERTY", "OdpSettings"]

DEFAULT_DATABASE = ".odp-async/failures"

_NUMBERS = ("schedules", "seed")
_SECONDS = ("stall", "time")
#: The settings an option, an ini key and a profile can each set.
_LAYERED = ("schedules", "seed", "chooser", "stall", "time")


@attrs.frozen
class OdpSettings:
    """The run's odp_async settings, parsed once from options and ini."""

    ini: Profile
    cli: Profile
    profile_name: str
    replay: str | None
    replay_from: str | None  # where `replay` came from, for messages
    database: FailureDatabase | None
    profile_from: str = "--odp-profile"

    @property
    def replay_test_id(self) -> str | None:
        """The node id of the test the replay token was made by."""
        return None if self.replay is None else _token_test_id(decode_test_token(self.replay))

    def layers(self) -> Profile:
        """ini < profile < command line, as one partial set of settings."""
        return self.cli.over(get_profile(self.profile_name).over(self.ini))


_SETTINGS = pytest.StashKey[OdpSettings]()
_REPLAYED = pytest.StashKey[list[str]]()
_REPLAY_LOOKALIKES = pytest.StashKey[list[str]]()
#: The key, in a test's ``user_properties``, of the line a pass the time budget cut
#: short adds (its report carries it: to the terminal summary, pytest-xdist's
#: controller, junitxml's properties).
NOTE_PROPERTY = "odp_async"
#: The keys, in a passing explored test's ``user_properties``, of what its search
#: established (`ExploreResult.claim`, a str) and whether it was complete (a bool): the
#: terminal summary counts them, and lists each under ``-v``.
CLAIM_PROPERTY = "odp_async_claim"
COMPLETE_PROPERTY = "odp_async_complete"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("odp_async", "odp_async explored tests (@explore_test)")
    helps = {
        "schedules": "schedules per explored test (overrides the decorator, ini, profile)",
        "seed": "base seed of every explored test",
        "chooser": "portfolio | random | pct | dfs | dpor",
        "stall": "seconds one step of a schedule may take before the test is inconclusive",
        "time": "wall-clock budget in seconds of every explored test",
        "profile": "a named settings profile: default, ci, nightly, or your own",
        "replay": "replay this token on the test that made it (other tests explore)",
        "database": f"failure database directory (default {DEFAULT_DATABASE}; none: off)",
    }
    for name, text in helps.items():
        group.addoption(f"--odp-{name}", dest=f"odp_{name}", default=None, help=text)
        parser.addini(f"odp_{name}", f"odp_async: {text}", type="string", default="")


def _parse_int(where: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise pytest.UsageError(f"{where}: expected an integer, got {text!r}") from None


def _parse_seconds(where: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise pytest.UsageError(f"{where}: expected a number of seconds, got {text!r}") from None


def _as_given(message: str, value: object, text: str) -> str:
    """`message` about a setting parsed from `text` into `value`, naming the value as the
    user wrote it (``got '0'``, not ``got 0.0``); a setting given as text is never None,
    so ``must be None or ...`` loses its ``None or``."""
    converted = f", got {value!r}"
    if value is not text and message.endswith(converted):
        message = f"{message[: -len(converted)]}, got {text!r}"
    return message.replace(" must be None or ", " must be ", 1)


def _said_of(place: str, name: str, message: str) -> str:
    """`message`, about the setting `name`, said of `place` as the user spelled it:
    ``--odp-schedules must be a positive int, got 0`` (not ``--odp-schedules: schedules
    must be ...``); any other message follows ``place:``."""
    if message.startswith(f"{name} must be "):
        return f"{place} {message[len(name) + 1 :]}"
    return f"{place}: {message}"


def _layer(values: dict[str, str], where: str) -> Profile:
    fields: dict[str, Any] = {}
    for name, text in values.items():
        if not text:
            continue
        place = where.format(name=name)
        value: Any = text
        if name in _NUMBERS:
            value = _parse_int(place, text)
        elif name in _SECONDS:
            value = _parse_seconds(place, text)
        try:
            Profile(**{name: value})
        except InvalidArgument as e:
            message = _as_given(str(e), value, text)
            raise pytest.UsageError(_said_of(place, name, message)) from None
        fields[name] = value
    return Profile(**fields)


def _setting(config: pytest.Config, name: str) -> tuple[str, str]:
    """(value, where it came from): the command line over the ini file."""
    value = config.getoption(f"odp_{name}")
    if value is not None:
        return str(value), f"--odp-{name}"
    return str(config.getini(f"odp_{name}") or ""), f"ini odp_{name}"


def _database(config: pytest.Config) -> FailureDatabase | None:
    """The failure database; a usage error (one line) for a path given whose parent
    directory does not exist, or that names something other than a directory: like the
    CLI's outputs, a database goes into a directory that exists (the default one,
    ``.odp-async/failures`` under the rootdir, is made as needed)."""
    value, where = _setting(config, "database")
    if value.strip().lower() == "none":
        return None
    if value and not value.strip():
        raise pytest.UsageError(f"{where} needs a directory path, got an empty one")
    path = Path(value or DEFAULT_DATABASE)
    path = path if path.is_absolute() else config.rootpath / path
    if value:
        if not path.parent.is_dir():
            raise pytest.UsageError(f"{where} {value}: no such directory {path.parent}")
        if path.exists() and not path.is_dir():
            raise pytest.UsageError(f"{where} {value}: not a directory")
    return FailureDatabase(path)


def _replay(config: pytest.Config) -> tuple[str | None, str | None]:
    value, where = _setting(config, "replay")
    if not value:
        value, where = os.environ.get(REPLAY_ENV, ""), REPLAY_ENV
    if not value:
        return None, None
    try:
        decode_test_token(value)
    except InvalidArgument as e:
        raise pytest.UsageError(f"{where}: {e}") from None
    return value.strip(), where


def pytest_configure(config: pytest.Config) -> None:
    cli = {n: config.getoption(f"odp_{n}") for n in _LAYERED}
    ini = {n: config.getini(f"odp_{n}") for n in _LAYERED}
    profile, profile_from = _setting(config, "profile")
    replay, replay_from = _replay(config)
    config.stash[_SETTINGS] = OdpSettings(
        ini=_layer({k: str(v or "") for k, v in ini.items()}, "ini odp_{name}"),
        cli=_layer({k: "" if v is None else str(v) for k, v in cli.items()}, "--odp-{name}"),
        profile_name=profile or "default",
        replay=replay,
        replay_from=replay_from,
        database=_database(config),
        profile_from=profile_from,
    )
    config.stash[_REPLAYED] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every conftest.py is imported by now, so every register_profile call has run.
    settings = config.stash[_SETTINGS]
    made_by = settings.replay_test_id
    if made_by is not None:  # the token's test under another rootdir: its id ends the same
        config.stash[_REPLAY_LOOKALIKES] = [
            item.nodeid for item in items if item.nodeid.endswith("/" + made_by)
        ]
    try:
        get_profile(settings.profile_name)
    except InvalidArgument as e:
        raise pytest.UsageError(f"{settings.profile_from}: {e}") from None


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return None
    database = settings.database.path if settings.database is not None else "off"
    return f"odp_async: profile {settings.profile_name!r}, failure database {database}"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    obj = pyfuncitem.obj
    spec = explored_test_of(obj)
    if spec is None:
        return None
    __tracebackhide__ = True
    config = pyfuncitem.config
    settings = config.stash[_SETTINGS]
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    args = (obj.__self__,) if inspect.ismethod(obj) else ()
    callspec = getattr(pyfuncitem, "callspec", None)
    params = callspec.params if callspec is not None else {}
    labels = {name: f"{'parameter' if name in params else 'fixture'} {name!r}" for name in kwargs}
    labels["0"] = "the test's instance (self)"
    node_id = pyfuncitem.nodeid
    if settings.replay_test_id == node_id:
        config.stash[_REPLAYED].append(node_id)
    spec.call(
        args,
        kwargs,
        node_id=node_id,
        settings=settings.layers(),
        replay=settings.replay,
        database=settings.database,
        replay_hint=lambda token: replay_command(_command_id(pyfuncitem), token),
        labels=labels,
        note=lambda text: pyfuncitem.user_properties.append((NOTE_PROPERTY, text)),
        claimed=lambda claim, complete: pyfuncitem.user_properties.extend(
            [(CLAIM_PROPERTY, claim), (COMPLETE_PROPERTY, complete)]
        ),
    )
    return True


def _command_id(item: pytest.Function) -> str:
    """The test as a command run where pytest was started names it: the node id with its
    file relative to that directory (a node id's is relative to the rootdir, which may
    be a parent of it: ``work/test_x.py::t`` run from ``work`` finds no file)."""
    path, sep, rest = item.nodeid.partition("::")
    try:
        path = os.path.relpath(item.path, item.config.invocation_params.dir)
    except ValueError:  # another drive (Windows): the node id's own path
        pass
    return f"{path}{sep}{rest}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    claims: list[tuple[str, str, bool]] = []
    for report in terminalreporter.stats.get("passed", ()):
        if getattr(report, "when", None) != "call":
            continue
        properties = dict(getattr(report, "user_properties", ()))
        for name, value in getattr(report, "user_properties", ()):
            if name == NOTE_PROPERTY:
                terminalreporter.write_line(f"odp_async: {value}")
        if CLAIM_PROPERTY in properties:
            claims.append(
                (report.nodeid, properties[CLAIM_PROPERTY], properties[COMPLETE_PROPERTY] is True)
            )
    if claims:
        complete = sum(c for _, _, c in claims)
        listed = config.get_verbosity() > 0
        terminalreporter.write_line(
            f"odp_async: {len(claims)} explored test{'s' if len(claims) != 1 else ''} passed: "
            f"{complete} complete (every trace explored), {len(claims) - complete} on "
            f"{'their' if len(claims) - complete != 1 else 'its'} budget, not complete"
            + ("" if listed else " (-v lists each test's claim)")
        )
        if listed:
            for node_id, claim, _ in claims:
                terminalreporter.write_line(f"odp_async: {node_id}: {claim}")
    settings = config.stash.get(_SETTINGS, None)
    if settings is None or settings.replay is None or config.stash[_REPLAYED]:
        return
    lookalikes = config.stash.get(_REPLAY_LOOKALIKES, [])
    terminalreporter.write_line(
        f"odp_async: the token of {settings.replay_from} was made by "
        f"{settings.replay_test_id!r}, "
        "which did not run: nothing was replayed"
        + (
            f" (this run's {lookalikes[0]!r} ends the same: a node id is relative to "
            f"pytest's rootdir, here {str(config.rootpath)!r}; run pytest where the token "
            "was made)"
            if lookalikes
            else ""
        )
    )
