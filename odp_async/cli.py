"""The ``odp-async`` command: the verdict matrix, exploring, replaying, shrinking, live runs.

Contract
    `main(argv) -> int` runs one command and returns an `ExitCode`; `entry_point` is the
    thin console-script wrapper.  Results go to stdout (``--json`` for machine-readable
    output on every command that prints a result: ``list``, ``show``, ``explore``,
    ``replay``, ``shrink``, ``run`` and ``matrix``); progress and diagnostics go to
    stderr.  A user mistake (an unknown name, a malformed token or scenario file, a bad
    number or option, an unwritable path) prints one line and exits 2, never a traceback
    (an unknown scenario or protocol name with a "did you mean"); a bug of odp_async
    prints the traceback and exits 3.  An exploration (or a replay) with no violation but
    runs that reached the step bound unfinished (``inconclusive``) exits 5.  Ctrl-C stops an
    exploration, prints what was explored so far (and the failure found so far, if any)
    and exits 130.  A standard
    output closed before everything was written (``| head -1``) exits 141 (128 + SIGPIPE).

    A protocol is a built-in name or ``module:Class`` (your own `OdpProtocol` subclass,
    imported from ``sys.path``, e.g. ``PYTHONPATH=.``); ``-o key=value`` (repeatable) sets
    one of its ``OPTIONS``, typed like the option's default (a bool takes
    true/false/yes/no/1/0).  A scenario is a built-in name, ``classic:<name>`` or a
    scenario file (``.toml``); ``explore FILE`` without ``-p`` explores every protocol
    the file names and compares each with the file's ``[expected]`` table, and
    ``matrix --scenario FILE`` (repeatable) puts files in the matrix.  ``explore SCENARIO
    --chooser script`` runs the scenario's script once (per protocol, as above), compares
    each verdict with the one expected under the script and prints each run's replay
    token (`odp_async.explore.scripted`); a run that did not follow the script to its end
    is one line naming the step and exits 2, never a pass.

See also
    `odp_async.explore` (what the commands drive), `odp_async.report` (timelines).
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import gc
import json
import os
import re
import shlex
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

import click

from ._runtime.interrupts import marking_ctrl_c
from ._runtime.stall import DEFAULT_STALL
from .errors import (
    ForeignAwait,
    InternalError,
    InvalidArgument,
    OdpError,
    ReplayMismatch,
    RunTimeout,
)

if TYPE_CHECKING:
    from .scenarios.files import ScenarioFile

__all__ = ["ExitCode", "entry_point", "main"]


class ExitCode(enum.IntEnum):
    #: Nothing wrong: every matrix cell met its expectation; no violation was found.
    OK = 0
    #: A violation was found (explore, replay, run), or a matrix cell missed its expectation.
    VIOLATION = 1
    #: A usage error or bad input: unknown scenario/protocol/chooser, malformed token or
    #: scenario file, a bad number, an unwritable output path; an exploration that ran
    #: no schedule at all (it establishes nothing: never reported as clean); a scenario's
    #: script that a run did not follow to its end (``explore --chooser script``: a step
    #: the code never reached has no verdict).
    USAGE = 2
    #: A bug in odp_async (the traceback is printed; please report it).
    INTERNAL = 3
    #: A replay token no longer reproduces its failure: the code changed since.
    REPLAY_MISMATCH = 4
    #: No verdict: no violation, but runs reached the step bound (``--max-steps``) and did
    #: not finish under a fair continuation either (a livelock, or a program longer than
    #: the bound): neither a pass (0) nor the program's fault (1).
    INCONCLUSIVE = 5
    #: Interrupted (Ctrl-C, SIGINT): 128 + SIGINT, as a shell reports it.
    INTERRUPTED = 130
    #: Standard output closed before everything was written (``odp-async ... | head``):
    #: 128 + SIGPIPE, as a shell reports a writer killed by it; never 1 (a violation).
    CLOSED_OUTPUT = 141


class _Exit(Exception):
    def __init__(self, code: ExitCode) -> None:
        self.code = code


def _err(message: str) -> None:
    click.echo(message, err=True)


def _fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    _err(f"odp-async: error: {_one_line(message)}")
    raise _Exit(code)


def _usage_error_in(error: BaseException | None) -> BaseException | None:
    """The `ScenarioUsageError` (a scenario's or a protocol's own mistake, such as a hook's
    return value of the wrong type: `ProtocolUsageError`) in a live run's `error`, within
    exception groups, or None."""
    from ._raised import walk
    from .errors import ScenarioUsageError

    if error is None:
        return None
    return next((e for e in walk(error) if isinstance(e, ScenarioUsageError)), None)


def _check_path(option: str, path: str | None, *, output: bool = True, log: bool = False) -> None:
    """A file path given to `option`: refused (one line, exit 2) before any work when it
    is empty (click takes ``--html ""`` for a value, which would then write nothing) or,
    for a file to write, when its directory does not exist or it names a directory; when
    it names an existing file that is not a regular file, except that a file to write
    (not a `log`, which is read back too) may be a FIFO or a character device
    (``/dev/stdout``).  Opening it later never waits (`odp_async._user_files`)."""
    import stat

    from ._user_files import file_kind

    if path is None:
        return
    if not path.strip():
        _fail(f"{option} needs a file path, got an empty one")
    if output:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            _fail(f"{option} {path}: no such directory {parent}")
        if os.path.isdir(path):
            _fail(f"{option} {path}: is a directory, not a file")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing (or unreachable): the reader or writer says so, naming it
    if log:
        from .explore.runlog import RunLog

        try:
            RunLog.check(path)
        except InvalidArgument as e:
            _fail(f"{option} {e}")
    special_ok = output and not log and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode))
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode) and not special_ok:
        _fail(f"{option} {path}: not a regular file ({file_kind(mode)})")


def _shipped_example(scenario: str) -> str:
    """`scenario`, or the example file shipped with odp_async that it names when it is
    ``NAME.toml`` or ``examples/NAME.toml`` and no such file is here (the README's
    commands work from any directory; a note on stderr says which file is used).  A
    file on disk always wins, and any other path is left as given."""
    if not _is_file(scenario) or os.path.lexists(scenario):
        return scenario
    folder, name = os.path.split(os.path.normpath(scenario))
    if folder not in ("", "examples"):
        return scenario
    from .example_files import examples_dir

    try:
        shipped = examples_dir() / name
    except InvalidArgument:  # a broken install: the file is missing, as given
        return scenario
    if not shipped.is_file():
        return scenario
    _err(
        f"odp-async: note: no file {scenario} here: using the example shipped with "
        f"odp_async, {shipped} (odp-async examples lists them)"
    )
    return str(shipped)


def _example_argument(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback of a SCENARIO argument or ``--scenario`` option: each value through
    `_shipped_example`."""
    if isinstance(value, tuple):
        return tuple(_shipped_example(v) for v in value)
    return value if value is None else _shipped_example(value)


#: What each of replay's outputs writes, and the file-name suffixes that name it (case
#: aside).  A name with no suffix (``race``, ``/dev/stdout``) promises no format.
_OUTPUT_FORMATS: Final = {
    "--trace": ("Chrome trace JSON", (".json",)),
    "--png": ("PNG", (".png", ".svg")),  # an .svg name writes SVG (the option's help)
    "--svg": ("SVG", (".svg",)),
    "--html": ("HTML", (".html", ".htm")),
}


def _check_suffix(option: str, path: str | None) -> None:
    """Refuse (one line, exit 2) a file for `option` whose suffix names another format
    than the one it writes (``--png x.jpg`` wrote PNG data into a .jpg file)."""
    if path is None:
        return
    suffix = os.path.splitext(os.path.basename(path))[1]
    what, suffixes = _OUTPUT_FORMATS[option]
    if not suffix or suffix.lower() in suffixes:
        return
    also = " (or .svg, which writes SVG)" if option == "--png" else ""
    names = " or ".join(s for s in suffixes if option != "--png" or s == ".png")
    _fail(
        f"{option} {path}: {option} writes {what}, and the name ends in {suffix!r}: give a "
        f"name ending in {names}{also}"
    )


def _refuse_same_paths(paths: Sequence[tuple[str, str | None]]) -> None:
    """Refuse (one line, exit 2) two options naming one file: the later write would
    replace the earlier one (or the file read), silently.  Paths are compared resolved
    (``./a``, ``a``, ``d/../a`` and a symlink to ``a`` are one file)."""
    seen: dict[str, tuple[str, str]] = {}
    for option, path in paths:
        if path is None:
            continue
        resolved = os.path.realpath(path)
        if resolved in seen:
            first, first_path = seen[resolved]
            shown = path if path == first_path else f"{first_path} and {path}"
            _fail(f"{first} and {option} both name {shown}; give each its own file")
        seen[resolved] = (option, path)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


class _OptionsOnce(click.Command):
    """A command whose single-valued options are each given at most once: click keeps the
    last of two silently, so ``-p A -p B`` explored B alone while the command line named
    both."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)  # for `_as_typed`
        if not ctx.resilient_parsing:
            try:
                _opts, _rest, order = self.make_parser(ctx).parse_args(args=list(args))
            except click.UsageError:
                order = []  # the parse below reports it
            seen: set[str | None] = set()
            for param in order:
                if not isinstance(param, click.Option) or param.multiple or param.count:
                    continue
                if param.is_flag:
                    continue  # twice the same switch says nothing new
                if param.name in seen:
                    given = _values_of(param, args)
                    ctx.fail(
                        f"{'/'.join(param.opts)} is given {len(given)} times "
                        f"({', '.join(map(_printable, given))}); give it once"
                    )
                seen.add(param.name)
        return super().parse_args(ctx, args)


class _Commands(click.Group):
    command_class = _OptionsOnce


#: Where `_OptionsOnce` keeps its command's arguments (`click.Context.meta`).
_ARGS: Final = "odp_async.cli.args"


def _as_typed(name: str) -> str:
    """The flag of the running command's option `name` (click's parameter name) as the
    command line spelled it (``matrix --schedules`` is ``--budget`` too), for an error
    about its value; its first spelling when it was not given."""
    ctx = click.get_current_context()
    option = next(p for p in ctx.command.params if isinstance(p, click.Option) and p.name == name)
    typed = option.opts[0]
    for arg in ctx.meta.get(_ARGS, ()):
        if arg == "--":
            break
        for flag in option.opts:
            if arg == flag or (flag.startswith("--") and arg.startswith(flag + "=")):
                typed = flag
    return typed


#: `ExploreConfig`'s fields set from the command line: field -> the option (click's
#: parameter name) that sets it.  An `InvalidArgument` of the config names the field,
#: the Python API's keyword; the CLI's error line names the flag (`_flag_words`).
_CONFIG_OPTIONS: Final = {
    "schedules": "schedules",
    "time": "time_budget",
    "stall": "stall",
    "seed": "seed",
    "jobs": "jobs",
    "preemption_bound": "preemptions",
    "max_preemptions": "max_preemptions",
    "depth": "depth",
    "max_steps": "max_steps",
    "start": "start",
}


def _flag_words(message: str) -> str:
    """`message`, an `InvalidArgument` of `ExploreConfig` (or of a check of one), with
    each field it names as the flag the user typed: ``preemption_bound must be None or a
    non-negative int, got -1`` is ``--preemptions must be a non-negative int, got -1``
    (no flag gives None); ``start=5`` is ``--start 5``.  A field is recognised only
    where the config's messages name one: before `` must be``, ``=`` or `` +``."""
    fields = "|".join(sorted(_CONFIG_OPTIONS, key=len, reverse=True))

    def flag(found: re.Match[str]) -> str:
        typed = _as_typed(_CONFIG_OPTIONS[found.group(1)])
        return typed + (" " if found.group(2) == "=" else found.group(2))

    if message.startswith("unknown chooser "):
        return f"{_as_typed('chooser')}: {message}"
    words = re.sub(rf"(?<![\w-])({fields})( must be | \+|=)", flag, message)
    return re.sub(r"(--[\w-]+ must be )None or ", r"\1", words)


def _config(**fields: Any) -> Any:
    """The `ExploreConfig` of `fields` (from the command's options, `_CONFIG_OPTIONS`);
    a bad value is one line naming its flag (`_flag_words`)."""
    from .explore.config import ExploreConfig

    try:
        return ExploreConfig(**fields)
    except InvalidArgument as e:
        _fail(_flag_words(str(e)))


def _values_of(option: click.Option, args: list[str]) -> list[str]:
    """The values `option` takes in `args`, in order (``-p A``, ``-pA``, ``--protocol=A``)."""
    found: list[str] = []
    longs = [o for o in option.opts if o.startswith("--")]
    shorts = [o for o in option.opts if not o.startswith("--")]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg in option.opts and i + 1 < len(args):
            found.append(args[i + 1])
            i += 2
            continue
        for name in longs:
            if arg.startswith(name + "="):
                found.append(arg[len(name) + 1 :])
        for name in shorts:
            if arg.startswith(name) and len(arg) > len(name) and not arg.startswith("--"):
                found.append(arg[len(name) :])
        i += 1
    return found


EPILOG_MAIN = """\b
Examples:
  odp-async                      # the verdict matrix, random schedules per cell
  odp-async matrix               # the same with the portfolio: claims such as 'complete'
  odp-async list                 # scenarios and protocols
  odp-async explore registration-race --protocol odp2014 --chooser pct
  odp-async replay 'odp2....' --text --png race.png
  odp-async run fault-vs-munmap --backend trio --protocol naive

\b
Exit codes: 0 ok, 1 violation (or a matrix cell off its expectation),
2 usage or bad input, 3 internal error, 4 replay mismatch, 5 inconclusive
(runs reached --max-steps unfinished: raise it; or a step did not return
within --stall seconds), 130 interrupted,
141 standard output closed early (| head).
"""


@click.group(
    cls=_Commands,
    invoke_without_command=True,
    epilog=EPILOG_MAIN,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="odp_async")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Model RDMA On-Demand Paging and explore its races deterministically.

    With no command, runs the verdict matrix: every built-in scenario under every
    protocol, compared with its expected verdict, on random schedules (about half a
    minute); `odp-async matrix` runs the explorer's portfolio per cell instead, whose
    dpor member can prove a cell clean (minutes).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(matrix, chooser="random")


# --- list / show ------------------------------------------------------------------------


@cli.command("list", epilog="\b\nExamples:\n  odp-async list\n  odp-async list --json")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def list_(as_json: bool) -> None:
    """List the scenarios and the protocols, one line each."""
    from . import scenarios as registry
    from .odp.protocols import PROTOCOLS

    builtin, classic = registry.BUILTIN, registry.CLASSIC
    if as_json:
        _echo_json(
            {
                "scenarios": [
                    {"name": name, "summary": s.summary, "needs_protocol": True}
                    for name, s in builtin.items()
                ]
                + [
                    {"name": f"classic:{name}", "summary": s.summary, "needs_protocol": False}
                    for name, s in classic.items()
                ],
                "protocols": [
                    {"name": name, "summary": cls.summary, "options": dict(cls.OPTIONS)}
                    for name, cls in PROTOCOLS.items()
                ],
            }
        )
        return
    click.echo("ODP scenarios (take --protocol):")
    for name, scenario in builtin.items():
        click.echo(f"  {name:30} {scenario.summary}")
    click.echo("general programs (no protocol):")
    for name, scenario in classic.items():
        click.echo(f"  classic:{name:22} {scenario.summary}")
    click.echo("protocols (-o KEY=VALUE sets an option):")
    for name, cls in PROTOCOLS.items():
        click.echo(f"  {name:30} {cls.summary}")
        if cls.OPTIONS:
            opts = ", ".join(f"{k}={_show_value(v)}" for k, v in cls.OPTIONS.items())
            click.echo(f"  {'':30} options: {opts}")


@cli.command(
    epilog="\b\nExamples:\n  odp-async show registration-race\n  odp-async show my.toml --json"
)
@click.argument("scenario", callback=_example_argument)
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def show(scenario: str, as_json: bool) -> None:
    """Show a scenario: what it does, its actors, its expected verdicts, its script.

    The script is shown, not run: `explore SCENARIO --chooser script` runs it and checks
    that each step fits the code and that the verdict is the one expected."""
    from .odp.protocols import PROTOCOLS

    target = _target(scenario, None, probe=True)
    s = target.scenario
    is_file = _is_file(scenario)
    # A file's description already lists its setup and its actors, op by op.
    protocols = _file_protocols(scenario) if is_file else tuple(PROTOCOLS)
    if as_json:
        _echo_json(
            {
                "name": s.name,
                "summary": s.summary,
                "description": s.description,
                "actors": list(s.actors),
                "needs_protocol": s.needs_world,
                "expected": {p: str(s.expected_for(p)) for p in protocols}
                if s.needs_world
                else str(s.expected_for("-")),
                "script": [[task, until] for task, until in s.script],
                "script_expected": {
                    p: "unfollowed" if p in s.script_unfollowed else str(s.script_expected_for(p))
                    for p in protocols
                }
                if s.needs_world and s.script
                else None,
                "params": dict(s.params),
            }
        )
        return
    click.echo(f"{s.name}: {s.summary or '(no summary)'}")
    if s.description:
        click.echo(s.description.rstrip())
    if not is_file:
        click.echo(f"actors: {', '.join(s.actors) or '-'}")
    if s.needs_world:
        click.echo("expected verdicts:")
        # the verdicts in one column: past the longest name (13 at least, as always)
        width = max((len(protocol) for protocol in protocols), default=0)
        width = max(width, 13)
        for protocol in protocols:
            click.echo(f"  {protocol:{width}}  {s.expected_for(protocol)}")
    else:
        given = "" if "-" in s.expected else " (no expectation given: any failure is one)"
        click.echo(f"expected: {s.expected_for('-')}{given}")
    if s.script:
        click.echo("script (the interleaving that shows the bug):")
        for task, until in s.script:
            click.echo(f"  run {task}" + (f" until it reaches {until!r}" if until else ""))
        differ = [p for p in protocols if s.script_expected_for(p) is not s.expected_for(p)]
        unfollowed = [p for p in protocols if p in s.script_unfollowed]
        differ = [p for p in differ if p not in unfollowed]
        if s.needs_world and (differ or unfollowed):
            click.echo("expected under the script (where it differs):")
            for protocol in differ:
                click.echo(f"  {protocol:14} {s.script_expected_for(protocol)}")
            for protocol in unfollowed:
                click.echo(f"  {protocol:14} cannot follow it (the fix closes the window)")
        # shown, not run: whether each step fits a protocol's code only a run tells
        how = f"odp-async explore {shlex.quote(scenario)} --chooser script"
        how += "" if is_file else " -p PROTOCOL"
        click.echo(f"not checked here; run it and compare its verdicts: {how}")


@cli.command(
    epilog="\b\nExamples:\n  odp-async examples\n  odp-async examples --copy my-scenarios"
)
@click.option(
    "--copy",
    "copy_to",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="copy the files into DIR (refuses to overwrite)",
)
def examples(copy_to: str | None) -> None:
    """List the example scenario files shipped with odp_async, or copy them."""
    from .example_files import copy_examples, list_examples

    if copy_to is not None:
        if not copy_to.strip():
            _fail("--copy needs a directory, got an empty path")
        parent = os.path.dirname(os.path.abspath(copy_to))
        if not os.path.isdir(parent):
            _fail(
                f"--copy {copy_to}: the directory {parent} does not exist; expected "
                "DIR in an existing directory (it creates DIR only)"
            )
        copied = copy_examples(copy_to)
        click.echo(f"copied {len(copied)} scenario files into {copy_to}")
        return
    for example in list_examples():
        click.echo(f"  {example.name:36} {example.summary}")


# --- explore ----------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  odp-async explore registration-race -p odp2014
  odp-async explore registration-race -p odp2014 -o clamp=false
  odp-async explore registration-race -p mymod:MyProtocol   # your own (PYTHONPATH=.)
  odp-async explore registration-race -p odp2014 --chooser dfs --preemptions 3
  odp-async explore classic:lost-update --chooser pct --depth 2 --json
  odp-async explore mymod:my_test --chooser dpor   # your own async function
  odp-async explore stray-end-corruption -p odp2014 --schedules 5000 --jobs 2
  odp-async explore my.toml            # every protocol the file names, vs [expected]
  odp-async explore stray-end-corruption -p odp2014 --schedules 100000 --cluster local:2
  odp-async explore classic:lost-update --cluster tcp://scheduler:8786 --resume run.log
  odp-async explore classic:lost-update --start 5000 --schedules 5000 --all-failures
  odp-async explore classic:reorder_5 --chooser dpor --cluster local:2   # subtrees
  odp-async explore registration-race -p odp2014 --chooser script   # its script
  odp-async explore my.toml --chooser script   # [script] per protocol, vs its verdicts
\b
Progress goes to stderr: a live line on a terminal, else a line every
--progress-every seconds.  Ctrl-C stops, prints what was explored so far
and exits 130.
"""
)
@click.argument("scenario", callback=_example_argument)
@click.option("--protocol", "-p", help="protocol: a name or module:Class (ODP scenarios only)")
@click.option("--option", "-o", "options", multiple=True, help="protocol option KEY=VALUE")
@click.option(
    "--chooser",
    default="portfolio",
    show_default=True,
    help="portfolio | random | pct | dfs | dpor | script (run the scenario's script once, "
    "check its verdict)",
)
@click.option("--schedules", default=1000, show_default=True, type=int, help="budget")
@click.option(
    "--time",
    "time_budget",
    metavar="SECONDS",
    type=float,
    help=(
        "wall-clock budget: after SECONDS start no schedule (nor pct's probe run) and "
        "abandon the one running"
    ),
)
@click.option(
    "--stall",
    metavar="SECONDS",
    type=float,
    default=DEFAULT_STALL,
    show_default=True,
    help="stop, inconclusive, when one step of a run has not returned after SECONDS "
    "(code with no await between checkpoints cannot be preempted)",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="base of every schedule's seed: any int of at most 64 bits, negative ones too",
)
@click.option("--jobs", default=1, show_default=True, type=int, help="worker processes")
@click.option("--preemptions", type=int, help="dfs: a fixed preemption bound")
@click.option("--max-preemptions", default=3, show_default=True, type=int, help="dfs")
@click.option("--depth", default=3, show_default=True, type=int, help="pct depth")
@click.option("--max-steps", default=50_000, show_default=True, type=int)
@click.option("--no-reduction", is_flag=True, help="dfs: no sleep sets, no symmetry")
@click.option("--no-shrink", is_flag=True, help="keep the failing schedule as found")
@click.option(
    "--progress-every",
    default=5.0,
    show_default=True,
    type=float,
    help="seconds between progress lines when stderr is not a terminal",
)
@click.option(
    "--cluster",
    metavar="WHERE",
    help="random/pct/dpor on Dask: local:N (a local cluster of N workers) or tcp://HOST:PORT",
)
@click.option(
    "--start",
    default=0,
    show_default=True,
    type=int,
    help="skip the first START schedules (reports count from 1: schedule N is --start N-1;"
    " START + SCHEDULES at most 2**64)",
)
@click.option(
    "--resume",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="record completed chunks in FILE; skip those it already records",
)
@click.option("--all-failures", is_flag=True, help="run the whole budget; list every failure")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def explore(
    scenario: str,
    protocol: str | None,
    options: Sequence[str],
    chooser: str,
    schedules: int,
    time_budget: float | None,
    stall: float,
    seed: int,
    jobs: int,
    preemptions: int | None,
    max_preemptions: int,
    depth: int,
    max_steps: int,
    no_reduction: bool,
    no_shrink: bool,
    progress_every: float,
    cluster: str | None,
    start: int,
    resume: str | None,
    all_failures: bool,
    as_json: bool,
) -> None:
    """Explore SCENARIO under many schedules; print the first failure and its token.

    SCENARIO is a built-in name, classic:<name>, a scenario file, or module:function
    (your own async function or Scenario, imported from sys.path, e.g. PYTHONPATH=.);
    a file given without --protocol is explored under every protocol it names, each
    compared with its [expected] verdict (exit 1 if any differs).

    --chooser script runs the scenario's script (a file's [script] steps, a built-in's
    interleaving) once instead, per protocol as above, and compares the verdict with the
    one expected under the script (a file's script.expected, else [expected]); it prints
    a replay token of each run.  A run that does not follow the script to its end (a
    step whose task never ran, or never paused at a checkpoint whose label holds the
    step's until text) has no verdict: one line names the step and the labels the task
    paused at (exit 2).  Exit 1 if a verdict differs; a scenario with no script exits 2.
    """
    if chooser == "script":
        _refuse_unscripted_options()
        _explore_script(scenario, protocol, options, max_steps, as_json)
        return
    if chooser not in _chooser_names():
        _fail(
            f"--chooser: unknown chooser {chooser!r}; expected one of "
            f"{', '.join(_chooser_names())}, script"
        )
    asked_jobs = jobs
    jobs, note = _cap_jobs(jobs, schedules, "schedules")
    if time_budget is not None and not 0 < time_budget <= MAX_TIME_BUDGET:  # also nan, inf
        _fail(
            f"--time must be a positive number of seconds (at most {MAX_TIME_BUDGET:g}), "
            f"got {time_budget}"
        )
    _check_stall(stall)
    config = _config(
        time=time_budget,
        stall=stall,
        chooser=chooser,
        schedules=schedules,
        seed=seed,
        jobs=jobs,
        preemption_bound=preemptions,
        max_preemptions=max_preemptions,
        depth=depth,
        max_steps=max_steps,
        reduction=not no_reduction,
        shrink=not no_shrink,
        start=start,
        stop_on_first=not all_failures,
    )
    _refuse_ignored(chooser, asked_jobs)  # after the config judged the values themselves
    if not 0 <= progress_every <= MAX_SECONDS:  # also refuses nan
        _fail(
            f"--progress-every must be a number of seconds >= 0 (at most {MAX_SECONDS:g}), "
            f"got {progress_every}"
        )
    if protocol is None and _is_file(scenario):
        if options:
            _fail("-o/--option needs -p/--protocol (the options belong to one protocol)")
        if cluster is not None or resume is not None:
            _fail("--cluster and --resume explore one protocol: give -p/--protocol")
        note = "\n".join(filter(None, (note, _serial_note(None, config, None)))) or None
        _explore_file(scenario, config, progress_every, as_json, note)
        return
    target = _target(scenario, protocol, options)
    if chooser in ("dfs", "dpor"):  # refused before a cluster starts
        from .explore.runner import check_systematic

        try:
            check_systematic(config, cluster is not None, resume)
        except InvalidArgument as e:
            _fail(_flag_words(str(e)))
    _check_path("--resume", resume, log=True)  # before the "exploring" line: one line, not two
    executor = _cluster(cluster)
    if note:
        _err(note)
    serial = _serial_note(target, config, executor)
    if serial:
        _err(serial)
    _err(f"exploring {target.label} with {chooser} ({_count(schedules, 'schedule')})...")
    try:
        result = _explore(scenario, target, config, progress_every, executor, resume)
    except KeyboardInterrupt as e:
        partial = getattr(e, "result", None)
        if resume and partial is not None:
            held = _log_holds(resume, config, partial.schedules)
            _err(
                f"odp-async: interrupted after {_count(partial.schedules, 'schedule')}; "
                f"continue it with --resume {resume}" + (f" ({held})" if held else "")
            )
        _interrupted(partial, as_json)
    finally:
        if executor is not None:
            executor.close()
    failure = result.failure
    if resume and failure is None and 0 < result.schedules < config.schedules:
        held = _log_holds(resume, config, result.schedules)
        if held:
            _err(f"odp-async: note: {held}")
    if as_json:
        _echo_json(_explore_json(result))
    else:
        click.echo(_explore_line(result))
        if result.stalled is not None and failure is not None:
            # the claim names the failure; the stall that ended the search early is
            # said too (a search with no failure says it in its claim)
            ran = _count(result.schedules, "schedule")
            click.echo(
                f"the search stopped early, after {ran}: {result.stalled_run} stalled: "
                f"{result.stalled}"
            )
        if all_failures and result.failing:
            click.echo(_failing_list(result.failing))
            for run in result.failures:
                click.echo(_failing_run_line(run))
        if executor is not None or len(result.per_worker) > 1:
            counts = ", ".join(f"{w}: {n}" for w, n in result.per_worker.items())
            click.echo(f"schedules per worker: {counts}")
        if failure is not None:
            click.echo(failure.describe())
    if result.carried is not None:
        raise _Exit(ExitCode.INCONCLUSIVE)  # runs shared state: a failure found is no verdict
    if failure is not None:
        raise _Exit(ExitCode.VIOLATION)
    if result.schedules == 0 and not result.complete and result.stalled is None:
        _fail(f"{target.label}: {result.claim}; give a longer --time")
    if result.inconclusive:
        raise _Exit(ExitCode.INCONCLUSIVE)


def _failing_list(failing: Sequence[int]) -> str:
    """``25 failing schedules: 5, 7, 10, ...`` (the first 20 indices); for ``(0,)`` (no
    schedule failed, a probe run did: `ExploreResult.failing`) says so."""
    if tuple(failing) == (0,):
        return "no failing schedule, but a probe run before schedule 1 failed"
    shown = ", ".join(map(str, failing[:20]))
    more = ", ..." if len(failing) > 20 else ""
    return f"{_count(len(failing), 'failing schedule')}: {shown}{more}"


def _failing_run_line(run: Any) -> str:
    """``  schedule 7: deadlock (found by pct-d4): odp-async replay odp2...`` (a
    `FailingRun`, replayable as listed; the reason instead when it has no token); ``  a
    probe run before schedule 1: ...`` for index 0."""
    kind = run.kind or "failure"
    by = f" (found by {run.found_by})" if run.found_by else ""
    then = f"odp-async replay {run.token}" if run.token else f"no replay token: {run.no_token}"
    where = f"schedule {run.index}" if run.index else "a probe run before schedule 1"
    return f"  {where}: {kind}{by}: {then}"


def _serial_note(target: Any, config: Any, executor: Any) -> str | None:
    """The note saying why ``--jobs`` starts no worker process for this search (a small
    budget: `odp_async.explore.runner.serial_why`), or None."""
    from .explore.runner import serial_why

    why = serial_why(target, config, executor)
    return (
        f"odp-async: note: --jobs {config.jobs} starts no worker process: {why}" if why else None
    )


def _log_holds(resume: str, config: Any, schedules: int) -> str:
    """When a run resumed from the log `resume` would take fewer than the `schedules`
    this run counted, how many it takes and why the others run again (a portfolio's dpor
    slots, which this process runs ahead of the worker chunks, are never taken from a
    log: they run again, to the same results); else ""."""
    from .explore.portfolio import dpor_ordinal
    from .explore.runlog import RunLog

    def dpor_slots(a: int, b: int) -> int:
        return dpor_ordinal(b) - dpor_ordinal(a)

    rerun = dpor_slots if config.chooser == "portfolio" else None
    kept = RunLog.kept(resume, config.start, config.start + config.schedules, rerun)
    if kept >= schedules:
        return ""
    which = ", the portfolio's dpor slots among them," if rerun else ""
    return (
        f"{resume} holds {kept} of these {schedules} schedules; the other "
        f"{schedules - kept}{which} run again when resumed"
    )


def _check_stall(stall: float) -> None:
    """`_fail` for a ``--stall`` that is not a positive number of seconds within range."""
    if not 0 < stall <= MAX_TIME_BUDGET:  # also nan, inf
        _fail(
            f"--stall must be a positive number of seconds (at most {MAX_TIME_BUDGET:g}), "
            f"got {stall}"
        )


#: The ``explore`` options only some choosers use: option name -> (its flag, choosers).
_CHOOSER_OPTIONS = {
    "preemptions": ("--preemptions", ("dfs", "dpor")),
    "max_preemptions": ("--max-preemptions", ("dfs",)),
    "depth": ("--depth", ("pct",)),
    "no_reduction": ("--no-reduction", ("dfs",)),
}


def _refuse_ignored(chooser: str, jobs: int) -> None:
    """Refuse an option given on the command line that `chooser` would ignore (one line):
    a bound the search never applies must not look applied.  ``--jobs`` above 1 with
    dfs too (`odp_async.explore.config.refuse_ignored`, the API's rule: dfs runs in this
    process)."""
    if chooser == "dfs" and jobs > 1:
        _fail(
            f"--jobs {jobs} is for --chooser random, pct, portfolio or dpor; --chooser dfs "
            "runs in this process (drop it, or choose one that uses it)"
        )
    ctx = click.get_current_context()
    for name, (flag, users) in _CHOOSER_OPTIONS.items():
        source = ctx.get_parameter_source(name)
        given = source is not None and source is not click.core.ParameterSource.DEFAULT
        if given and chooser not in users:
            _fail(
                f"{flag} is for --chooser {' or '.join(users)}; --chooser {chooser} "
                "ignores it (drop it, or choose one that uses it)"
            )


def _chooser_names() -> tuple[str, ...]:
    from .explore.config import CHOOSERS

    return tuple(CHOOSERS)


#: The ``explore`` options a script run ignores: it runs one fixed schedule, here.
_SCRIPT_IGNORES = (
    ("schedules", "--schedules"),
    ("time_budget", "--time"),
    ("stall", "--stall"),
    ("seed", "--seed"),
    ("jobs", "--jobs"),
    ("preemptions", "--preemptions"),
    ("max_preemptions", "--max-preemptions"),
    ("depth", "--depth"),
    ("no_reduction", "--no-reduction"),
    ("no_shrink", "--no-shrink"),
    ("progress_every", "--progress-every"),
    ("cluster", "--cluster"),
    ("start", "--start"),
    ("resume", "--resume"),
    ("all_failures", "--all-failures"),
)


def _refuse_unscripted_options() -> None:
    """Refuse (one line) an option given that ``--chooser script`` would ignore: a budget
    or a search bound that no search applies must not look applied."""
    ctx = click.get_current_context()
    for name, flag in _SCRIPT_IGNORES:
        source = ctx.get_parameter_source(name)
        if source is not None and source is not click.core.ParameterSource.DEFAULT:
            _fail(
                f"{flag} is for the searching choosers; --chooser script runs the scenario's "
                "script once, one fixed schedule (drop it)"
            )


def _explore_script(
    scenario: str,
    protocol: str | None,
    options: Sequence[str],
    max_steps: int,
    as_json: bool,
) -> None:
    """``explore SCENARIO --chooser script``: the scenario's script run once per protocol
    (each protocol a file names, without `protocol`), each verdict compared with the one
    expected under the script."""
    from .explore.scripted import run_script

    _config(max_steps=max_steps)  # a bad --max-steps: one line naming the flag
    path: str | None = None
    if protocol is None and _is_file(scenario):
        if options:
            _fail("-o/--option needs -p/--protocol (the options belong to one protocol)")
        path = scenario
        file = _read_file(scenario)
        # every protocol built once before any runs (a constructor that raises: one line)
        targets = [
            _target(scenario, p, where=f"{scenario}: scenario.protocols[{i}]: ")
            for i, p in enumerate(file.protocols)
        ]
    else:
        targets = [_target(scenario, protocol, options)]
    s = targets[0].scenario
    if not s.script:
        _fail(_no_script(scenario, s.name))
    runs = [run_script(target, max_steps=max_steps) for target in targets]
    if as_json:
        rows = [_script_json(run) for run in runs]
        if path is None:
            _echo_json(rows[0])
        else:
            matching = all(run.matches for run in runs)
            _echo_json({"scenario": s.name, "file": path, "matches": matching, "rows": rows})
    else:
        for run in runs:
            click.echo(_script_lines(run))
        if path is not None:
            shown = sum(run.matches for run in runs)
            click.echo(f"{shown}/{len(runs)} protocols as expected under the script")
    for run in runs:
        if run.unfollowed is not None and not run.expect_unfollowed:
            _err(f"odp-async: error: {_one_line(f'{run.target.label}: {run.unfollowed}')}")
    judged = [run for run in runs if run.unfollowed is None or run.expect_unfollowed]
    if any(not run.matches and not run.execution.unfinished for run in judged):
        raise _Exit(ExitCode.VIOLATION)
    if len(judged) < len(runs):
        raise _Exit(ExitCode.USAGE)
    if any(not run.matches for run in runs):
        raise _Exit(ExitCode.INCONCLUSIVE)


def _no_script(scenario: str, name: str) -> str:
    """Why ``--chooser script`` cannot run `scenario` (named `name`): it has no script."""
    if _is_file(scenario):
        return (
            f"{scenario}: scenario {name!r} has no [script] steps for --chooser script to run; "
            'add one (steps = [["actor"], ["actor", "until text"]]) or choose another chooser'
        )
    from .scenarios import BUILTIN

    scripted = ", ".join(n for n, b in BUILTIN.items() if b.script)
    return (
        f"scenario {scenario!r} has no script for --chooser script to run; the built-in "
        f"scenarios with one: {scripted}"
    )


def _script_lines(run: Any) -> str:
    """A script run as text: the verdict against the expected one, the violation if any,
    the replay command."""
    steps = _count(run.execution.sim.steps, "step")
    label = run.target.label
    if run.unfollowed is not None and run.expect_unfollowed:
        head = f"{label}: cannot follow the script, as expected"
        if not run.matches:  # what the run found off the script is still found
            head += f", but the run is {run.verdict}, expected {run.expected}"
        head += f" ({steps})\nnot followed: {_one_line(run.unfollowed)}"
    elif run.unfollowed is not None:
        head = f"{label}: no verdict: the run did not follow the script ({steps})"
    elif run.expect_unfollowed:
        head = f"{label}: {run.verdict} under the script, expected it not to be followed ({steps})"
    elif run.expected is None:
        head = f"{label}: {run.verdict} under the script (no expectation) ({steps})"
    elif run.matches:
        head = f"{label}: {run.verdict} under the script, as expected ({steps})"
    else:
        head = f"{label}: {run.verdict} under the script, expected {run.expected} ({steps})"
    lines = [head]
    failure = run.execution.failure
    if failure is not None:
        lines.append(f"{run.verdict}: {failure.describe()}")
        lines.extend(f"also: {v.describe()}" for v in run.execution.violations[1:])
    if run.token:
        lines.append(f"replay: odp-async replay {run.token}")
    else:
        lines.append(f"no replay token: {run.no_token}")
    return "\n".join(lines)


def _script_json(run: Any) -> dict[str, Any]:
    return {
        "target": run.target.label,
        "protocol": run.target.protocol,
        # a run that left the script has no verdict under it (its outcome: violations)
        "verdict": str(run.verdict) if run.unfollowed is None else None,
        "expected": "unfollowed"
        if run.expect_unfollowed
        else None
        if run.expected is None
        else str(run.expected),
        "followed": run.unfollowed is None,
        "unfollowed": run.unfollowed,
        "matches": run.matches,
        "steps": run.execution.sim.steps,
        "violations": [_violation_json(v) for v in run.execution.violations],
        "replay_token": run.token,
        "no_token": run.no_token,
    }


def _explore(
    scenario: str,
    target: Any,
    config: Any,
    progress_every: float,
    executor: Any = None,
    resume: str | None = None,
) -> Any:
    """Explore `target` (resolved from `scenario`) with a progress display on stderr, on
    `executor` (None: this machine), recording chunks in `resume` (a file) if given."""
    from .explore.runner import explore as run_explore
    from .progress import ExploreProgress

    stderr = sys.stderr
    with ExploreProgress(
        target.label, stderr, live=stderr.isatty(), every=progress_every, budget=config.time
    ) as progress:
        return run_explore(
            scenario,
            target.protocol,
            config,
            options=dict(target.options),
            progress=progress,
            executor=executor,
            resume=resume,
        )


def _count(n: int, noun: str) -> str:
    from .explore.claims import count  # the explorer loads only when a command needs it

    return count(n, noun)


def _explore_line(result: Any) -> str:
    verdict = _shown_verdict(result)
    ran = _count(result.schedules, "schedule")
    if result.stalled is not None and result.failure is None:  # what ran: not only those
        ran = f"{ran} ended, {result.stalled_run} stalled"
    return (
        f"{result.label}: {verdict} - {ran} "
        f"({_count(result.steps, 'step')}, {result.elapsed:.2f}s"
        + (f", {result.pruned} pruned" if result.pruned else "")
        + (", complete" if result.complete else "")
        + (f" for bound {result.bound}" if result.complete and result.bound is not None else "")
        + (", out of time" if result.out_of_time else "")
        # the runs a budget also paid for, which no schedule count shows
        + (
            f", after {_count(result.probes, 'probe run')}"
            if result.out_of_time and result.probes
            else ""
        )
        + ")"
        + f"\n{result.claim}"
    )


def _shown_verdict(result: Any) -> str:
    """An `ExploreResult`'s verdict as the CLI shows it: `ExploreResult.verdict` (so
    ``inconclusive``, never ``clean``, for runs unfinished at the bound), except that a
    search that ran no schedule says ``nothing explored`` (it establishes nothing)."""
    if (
        result.schedules == 0
        and result.failure is None
        and not result.complete
        and result.stalled is None
    ):
        return "nothing explored"
    return str(result.verdict)


def _interrupted(partial: Any, as_json: bool) -> NoReturn:
    """Ctrl-C during an exploration: say what was explored so far, exit 130."""
    if partial is None:
        _err("odp-async: interrupted")
    elif as_json:
        _echo_json({**_explore_json(partial), "interrupted": True})
    else:
        click.echo(f"interrupted: {_explore_line(partial)}")
        if partial.failure is not None:
            click.echo(partial.failure.describe())
    raise _Exit(ExitCode.INTERRUPTED)


def _explore_file(
    path: str, config: Any, progress_every: float, as_json: bool, note: str | None = None
) -> None:
    """``explore FILE`` without a protocol: every protocol the file names, vs [expected]."""
    from rich.console import Console
    from rich.table import Table

    from .scenarios.files import read_scenario

    file = read_scenario(path)
    if note:
        _err(note)
    rows: list[tuple[str, Any, Any]] = []  # (protocol, expected, result)
    interrupted: Any = None
    # every protocol built once before any runs (a constructor that raises: one line)
    targets = [
        _target(path, p, where=f"{path}: scenario.protocols[{i}]: ")
        for i, p in enumerate(file.protocols)
    ]
    for protocol, target in zip(file.protocols, targets, strict=True):
        ran = _count(config.schedules, "schedule")
        _err(f"exploring {target.label} with {config.chooser} ({ran})...")
        try:
            result = _explore(path, target, config, progress_every)
        except KeyboardInterrupt as e:
            interrupted = e
            break
        rows.append((protocol, file.scenario.expected_for(protocol), result))
    misses = [p for p, expected, result in rows if result.verdict is not expected]
    unsure = [p for p, _, result in rows if result.inconclusive]
    if as_json:
        data: dict[str, Any] = {
            "scenario": file.scenario.name,
            "file": path,
            "matches": not misses,
            "rows": [
                {
                    **_explore_json(result),
                    "protocol": protocol,
                    "expected": str(expected),
                    "matches": result.verdict is expected,
                }
                for protocol, expected, result in rows
            ],
        }
        if interrupted is not None:
            data["interrupted"] = True
        _echo_json(data)
    else:
        table = Table(title=f"{file.scenario.name} ({path}): {config.schedules} schedules each")
        for column in ("protocol", "expected", "found"):
            table.add_column(column, no_wrap=column != "protocol")
        table.add_column("schedules", justify="right")
        table.add_column("claim", no_wrap=True)
        table.add_column("time", justify="right")
        for protocol, expected, result in rows:
            ok = result.verdict is expected
            found = str(result.verdict)
            table.add_row(
                protocol,
                str(expected),
                found if ok else f"{found} (expected {expected})",
                str(result.schedules),
                result.claim,
                f"{result.elapsed:.2f}s",
                style=None if ok else "bold red",
            )
        # wide enough for the claims (what each row established: `complete`, or a budget)
        claims = max((len(result.claim) for _, _, result in rows), default=0)
        Console(width=max(100, Console().width, claims + 80)).print(table)
        for protocol, _, result in rows:
            if result.failure is not None:
                click.echo(f"{protocol}: {result.failure.describe()}")
            if result.failures:  # --all-failures
                click.echo(f"{protocol}: {_failing_list(result.failing)}")
                for run in result.failures:
                    click.echo(_failing_run_line(run))
        if interrupted is not None:
            partial = getattr(interrupted, "result", None)
            click.echo(
                "interrupted" + (f": {_explore_line(partial)}" if partial is not None else "")
            )
        else:
            click.echo(f"{len(rows) - len(misses)}/{len(rows)} protocols as expected")
    if interrupted is not None:
        raise _Exit(ExitCode.INTERRUPTED)
    if misses:
        # only inconclusive rows: no verdict (exit 5), not a miss
        raise _Exit(ExitCode.INCONCLUSIVE if misses == unsure else ExitCode.VIOLATION)


def _cluster(where: str | None) -> Any:
    """The executor of ``--cluster`` (None: none), announced on stderr."""
    if where is None:
        return None
    from .explore.executors import cluster_executor

    kind, sep, rest = where.partition(":")
    if kind == "local" and sep and rest.isascii() and rest.isdigit():
        # local workers are processes of this machine: capped to its CPUs as --jobs is
        cpus = _cpus()
        if len(rest.lstrip("0")) > 6 or int(rest) > cpus:
            _err(f"odp-async: note: --cluster {where} capped to local:{cpus} (the CPUs: {cpus})")
            where = f"local:{cpus}"
    executor = cluster_executor(where)
    link = getattr(executor, "dashboard_link", None)
    _err(f"cluster: {executor.description}" + (f", dashboard {link}" if link else ""))
    return executor


def _explore_json(result: Any) -> dict[str, Any]:
    failure = result.failure
    data: dict[str, Any] = {
        "target": result.label,
        "chooser": result.config.chooser,
        "verdict": _shown_verdict(result),
        "unfinished": result.unfinished,
        "stalled": result.stalled,
        "stalled_run": result.stalled_run,
        "carried": result.carried,
        "schedules": result.schedules,
        "pruned": result.pruned,
        "steps": result.steps,
        "complete": result.complete,
        "traces": result.traces,
        "bound": result.bound,
        "found_by": result.found_by,
        "found_bound": result.found_bound,
        "out_of_time": result.out_of_time,
        "probes": result.probes,
        "serial": result.serial,
        "claim": result.claim,
        "elapsed": round(result.elapsed, 4),
        "start": result.config.start,
        "executor": result.executor,
        "per_worker": dict(result.per_worker),
        "failing": list(result.failing),
        # with --all-failures: the first of `failing`, each replayable as found
        "failures": [
            {
                "schedule_index": run.index,
                "kind": run.kind,
                "found_by": run.found_by,
                "token": run.token,
                "no_token": run.no_token,
            }
            for run in result.failures
        ],
        "failure": None,
    }
    if failure is not None:
        v = failure.violation
        data["failure"] = {
            "schedule_index": failure.index,
            "kind": v.kind,
            "step": v.step,
            "tasks": list(v.tasks),
            "addresses": list(v.addresses),
            "detail": v.detail,
            # the run the fields above describe (the shrunk one if shrunk)
            "run_steps": failure.shown.sim.steps,
            "shrunk": failure.shrunk is not None,
            # replays the run described here (= shrunk_token if shrunk, else found_token)
            "replay_token": failure.replay_token,
            # the run as found, before shrinking (`token`: the same, its old name)
            "found_token": failure.token,
            "found_step": failure.found_violation.step,
            "token": failure.token,
            "shrunk_token": failure.shrunk_token,
            # [as found, shrunk]; [as found, null] when not shrunk (null as found: its
            # replay was another run)
            "preemptions": [
                failure.found_preemptions(),
                failure.shrunk.preemptions_after if failure.shrunk else None,
            ],
        }
    return data


# --- replay / shrink ------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  odp-async replay 'odp2.eNo....1a2b3c4d'
  odp-async replay 'odp2....' --text
  odp-async replay 'odp2....' --trace race.json --png race.png
  odp-async replay 'odp2....' --svg race.svg --html race.html --width 1600
  odp-async replay 'odp2....' --text --width 120 --svg race.svg --picture-width 1600
  odp-async replay 'odp2....' --scenario-file mine.toml   # refused if the file changed
"""
)
@click.argument("token")
@click.option("--text", "as_text", is_flag=True, help="print the text timeline")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), help="Chrome trace JSON")
@click.option(
    "--png",
    "png_path",
    type=click.Path(dir_okay=False),
    help="timeline picture (PNG; an .svg name writes SVG)",
)
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False), help="timeline as SVG")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="step-through HTML report"
)
@click.option(
    "--width",
    type=int,
    help="text: columns, 40..20000 (default: the terminal's); also the pixels of a "
    "picture when 400..20000 and --picture-width is not given",
)
@click.option(
    "--picture-width",
    "picture_width",
    type=int,
    help="pixels of --png/--svg, 400..20000 (default: --width if it is one, else 1400)",
)
@click.option(
    "--scenario-file",
    "scenario_file",
    type=click.Path(dir_okay=False),
    help="replay on this file, refused (exit 4) if it changed since the token was made",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def replay(
    token: str,
    as_text: bool,
    trace_path: str | None,
    png_path: str | None,
    svg_path: str | None,
    html_path: str | None,
    width: int | None,
    as_json: bool,
    scenario_file: str | None = None,
    picture_width: int | None = None,
) -> None:
    """Re-run the exact schedule of TOKEN and show what happened.

    A scenario-file token replays the file text it carries; with --scenario-file it
    replays that file instead, which must hold the same content (else exit 4)."""
    from .explore.tokens import decode_token, replay_token
    from .scenarios import Verdict

    for option, path in (
        ("--trace", trace_path),
        ("--png", png_path),
        ("--svg", svg_path),
        ("--html", html_path),
    ):
        _check_path(option, path)
    _check_path("--scenario-file", scenario_file, output=False)
    _refuse_same_paths(
        (
            ("--scenario-file", scenario_file),
            ("--trace", trace_path),
            ("--png", png_path),
            ("--svg", svg_path),
            ("--html", html_path),
        )
    )
    for option, path in (
        ("--trace", trace_path),
        ("--png", png_path),
        ("--svg", svg_path),
        ("--html", html_path),
    ):
        _check_suffix(option, path)
    if width is not None and not 40 <= width <= 20000:
        _fail(f"--width must be in 40..20000, got {width}")
    if picture_width is not None and not 400 <= picture_width <= 20000:
        _fail(f"--picture-width must be in 400..20000 pixels, got {picture_width}")
    _refuse_unshaped(as_text, bool(png_path or svg_path), as_json, width, picture_width)
    pixels = _picture_pixels(width, picture_width, bool(png_path or svg_path), as_text)
    decoded = decode_token(token)
    from . import __version__

    if decoded.version != __version__:  # a record, not a requirement (README)
        _err(
            f"odp-async: note: the token was made by odp_async {decoded.version}; this is "
            f"{__version__}"
        )
    if scenario_file is not None and decoded.spec.file is None:
        _fail("--scenario-file applies only to a token of a scenario file")
    execution = replay_token(decoded, trace=True, scenario_file=scenario_file)
    failure = execution.failure
    timeline = None
    if as_text or trace_path or png_path or svg_path:
        from .report import Timeline

        timeline = Timeline.from_execution(execution, title=decoded.target().label)
    if trace_path:
        from .report import write_trace

        write_trace(timeline, trace_path)  # type: ignore[arg-type]
        _err(f"wrote {trace_path}")
    for path, fmt in ((png_path, None), (svg_path, "svg")):
        if path:
            from .report import write_picture

            assert timeline is not None
            write_picture(timeline, path, width_px=pixels, fmt=fmt)
            _err(f"wrote {path}")
    if html_path:
        from .report import write_html

        write_html(execution, html_path, target=decoded.target(scenario_file=scenario_file))
        _err(f"wrote {html_path}")
    verdict = decoded.target().verdict_of(execution)
    if as_json:
        _echo_json(
            {
                "target": decoded.target().label,
                "verdict": str(verdict),
                "unfinished": execution.unfinished,
                "outcome": execution.sim.outcome,
                "steps": execution.sim.steps,
                "violations": [
                    {
                        "kind": v.kind,
                        "step": v.step,
                        "tasks": list(v.tasks),
                        "addresses": list(v.addresses),
                        "detail": v.detail,
                    }
                    for v in execution.violations
                ],
            }
        )
    else:
        if as_text and timeline is not None:
            from .report import render_text

            click.echo(render_text(timeline, width=width))
        label = decoded.target().label
        if failure is not None:
            shown = failure.describe()
        elif verdict is Verdict.INCONCLUSIVE:  # never "no violation": it has no verdict
            shown = (
                f"inconclusive: the run reached the step bound of {decoded.max_steps} steps "
                "unfinished (a livelock, or a run longer than the bound)"
            )
        else:
            shown = "no violation"
        click.echo(f"{label}: {shown} ({execution.sim.steps} steps)")
    if failure is not None:
        raise _Exit(ExitCode.VIOLATION)
    if verdict is Verdict.INCONCLUSIVE:
        raise _Exit(ExitCode.INCONCLUSIVE)


def _refuse_unshaped(
    as_text: bool, picture: bool, as_json: bool, width: int | None, picture_width: int | None
) -> None:
    """Refuse a replay option that shapes an output not asked for (it would be silently
    ignored, as `explore` refuses a setting its chooser ignores)."""
    if picture_width is not None and not picture:
        _fail(
            f"--picture-width {picture_width} sets the pixels of --png or --svg, and neither "
            "is given: drop it, or add one"
        )
    if width is not None and not (as_text or picture):
        _fail(
            f"--width {width} sets the columns of --text or the pixels of --png or --svg, "
            "and none is given: drop it, or add one"
        )
    if as_text and as_json:
        _fail("--text prints the timeline, and --json prints the result in its place: give one")


def _picture_pixels(
    width: int | None, picture_width: int | None, picture: bool, as_text: bool
) -> int:
    """The pixels of replay's pictures: --picture-width; else --width when it is a picture
    width (400..20000); else 1400.  A --width below 400 with a picture and no --text (so
    it can only be meant for the picture) is refused."""
    if picture_width is not None:
        return picture_width
    if width is not None and 400 <= width <= 20000:
        return width
    if width is not None and picture and not as_text:
        _fail(f"--width for a picture is 400..20000 pixels, got {width} (or --picture-width)")
    return 1400


@cli.command(
    epilog="\b\nExamples:\n  odp-async shrink 'odp2....'\n  odp-async shrink 'odp2....' --json"
)
@click.argument("token")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def shrink(token: str, as_json: bool) -> None:
    """Shrink TOKEN's schedule (fewer preemptions, then fewer steps); print the new token."""
    from .explore.shrink import shrink as do_shrink
    from .explore.tokens import decode_token, encode_token, replay_token

    decoded = decode_token(token)
    execution = replay_token(decoded)
    failure = execution.failure
    if failure is None:
        _fail("this token's schedule shows no violation: nothing to shrink", ExitCode.USAGE)
    target = decoded.target()
    result = do_shrink(target, decoded.schedule, failure.kind, max_steps=decoded.max_steps)
    shrunk_target = target.with_params(**result.params)
    new_token = encode_token(shrunk_target, result.schedule, result.execution, decoded.max_steps)
    if as_json:
        _echo_json(
            {
                "token": new_token,
                "kind": failure.kind,
                "preemptions": [result.preemptions_before, result.preemptions_after],
                "failure_step": [result.steps_before, result.steps_after],
                "replays": result.attempts,
            }
        )
    else:
        click.echo(
            f"shrunk, still {failure.kind}: preemptions {result.preemptions_before} -> "
            f"{result.preemptions_after}, failure at step {result.steps_before} -> "
            f"{result.steps_after} ({result.attempts} replays)"
        )
        click.echo(new_token)


# --- run (live) -----------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  odp-async run registration-race --backend trio --protocol odp2014
  odp-async run classic:lock-order --backend asyncio --timeout 2
  odp-async run my.toml            # each protocol the file names, one run each
"""
)
@click.argument("scenario", callback=_example_argument)
@click.option("--backend", default="trio", show_default=True, help="trio | asyncio")
@click.option("--protocol", "-p", help="protocol: a name or module:Class (ODP scenarios only)")
@click.option("--option", "-o", "options", multiple=True, help="protocol option KEY=VALUE")
@click.option("--timeout", default=10.0, show_default=True, type=float, help="seconds")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def run(
    scenario: str,
    backend: str,
    protocol: str | None,
    options: Sequence[str],
    timeout: float,
    as_json: bool,
) -> None:
    """Run SCENARIO once on a real event loop (no verdict promised; the checker reports).

    A scenario file given without -p runs once under each protocol it names
    (scenario.protocols), one after another, a line each (exit 1 if any run errs, times
    out or shows a violation); [expected] is not compared (one live run proves nothing)."""
    if backend not in ("trio", "asyncio"):
        _fail(f"unknown backend {backend!r}; expected trio or asyncio")
    if not 0 < timeout <= MAX_SECONDS:  # also refuses nan and inf
        _fail(
            f"--timeout must be a positive number of seconds (at most {MAX_SECONDS:g}), "
            f"got {timeout}"
        )
    if protocol is None and _is_file(scenario):
        from .scenarios.files import read_scenario

        file = read_scenario(scenario)
        if options and len(file.protocols) > 1:
            _fail(
                "-o/--option needs -p/--protocol (the options belong to one protocol; the "
                f"file names {', '.join(file.protocols)})"
            )
        # each checked before any runs; a file naming one protocol takes its options
        targets = [
            _target(scenario, p, options, where=f"{scenario}: scenario.protocols[{i}]: ")
            for i, p in enumerate(file.protocols)
        ]
        runs = [_run_live(target, backend, timeout) for target in targets]
        records = [record for record, _ in runs]
        if as_json and len(runs) == 1:
            _echo_json(records[0])
        elif as_json:
            _echo_json({"scenario": file.scenario.name, "file": scenario, "runs": records})
        else:
            for _, lines in runs:
                click.echo("\n".join(lines))
    else:
        runs = [_run_live(_target(scenario, protocol, options), backend, timeout)]
        record, lines = runs[0]
        if as_json:
            _echo_json(record)
        else:
            click.echo("\n".join(lines))
    if any(record["status"] != "finished" or record["violations"] for record, _ in runs):
        raise _Exit(ExitCode.VIOLATION)


def _run_live(target: Any, backend: str, timeout: float) -> tuple[dict[str, Any], list[str]]:
    """One live run of `target` (`run`): its JSON record, and its text lines (the
    outcome, then each violation described)."""
    from ._runtime import run_live
    from .world import World, world_main

    async def main() -> list[Any]:
        if target.scenario.needs_world:
            assert target.protocol is not None
            world = World.build(target.protocol, options=dict(target.options))
            if target.scenario.setup is not None:  # live too, before the scenario
                await world_main(world, target.scenario.setup)()
            # as the sim runs it: the world's workqueue served around the scenario
            await world_main(world, target.scenario.body)()
            return list(world.violations)
        await target.scenario.body()
        return []

    # The event loop runs in a daemon thread: a real deadlock inside the model's shielded
    # (uninterruptible) kernel sections cannot be cancelled, only abandoned.
    outcome: dict[str, Any] = {}

    def loop() -> None:
        try:
            outcome["violations"] = run_live(main, backend=backend, timeout=timeout)
        except BaseException as e:
            outcome["error"] = e

    start = time.perf_counter()
    thread = threading.Thread(target=loop, name="odp-async run", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    took = time.perf_counter() - start
    error = outcome.get("error")
    if isinstance(error, InternalError):
        raise error
    usage = _usage_error_in(error)
    if usage is not None:  # the scenario's or the protocol's own mistake, not a finding
        _fail(str(usage))
    violations: list[Any] = outcome.get("violations", [])
    # The run's own wall limit (or a loop that could not even be cancelled), not a
    # TimeoutError the program raised: that one is the program's error, reported below.
    blocked = _blocked_at(thread) if thread.is_alive() else None
    if blocked is not None:
        # The loop never got control back to cancel the run: a step did not return.
        status = "timeout"
        line = (
            f"{target.label} on {backend}: did not finish within {timeout}s; its event loop "
            f"is blocked at {blocked}: a step that does not return (a loop with no await, "
            "a blocking call such as time.sleep, a lock or a queue), which no scheduler "
            "preempts; explore stops at such a step after --stall seconds, inconclusive"
        )
    elif thread.is_alive() or isinstance(error, RunTimeout):
        status = "timeout"
        line = (
            f"{target.label} on {backend}: did not finish within {timeout}s "
            "(a deadlock, a livelock, or a run longer than that: explore it in the sim, "
            "which names the cycle or reports the step bound)"
        )
    elif error is not None:  # the program under test failed: that is a finding
        status = "error"
        line = f"{target.label} on {backend}: {_error_text(error, where=True)}"
    else:
        status = "finished"
        line = (
            f"{target.label} on {backend}: finished in {took:.3f}s, {len(violations)} violations"
        )
    return {
        "target": target.label,
        "backend": backend,
        "status": status,
        "elapsed": round(took, 4),
        "error": None if error is None else _error_text(error),
        "violations": [_violation_json(v) for v in violations],
    }, [line, *(f"  {v.describe()}" for v in violations)]


#: Where an event loop waits for I/O or timers (asyncio's selector, trio's epoll): a
#: loop thread stopped there is idle, not blocked by the program.
_LOOP_WAITS = ("selectors.py", "_io_epoll.py", "_io_kqueue.py", "_io_windows.py")


def _blocked_at(thread: threading.Thread) -> str | None:
    """``file:line in function`` where the program blocks the event loop running in
    `thread` (its innermost frame outside the standard library), or None when the loop
    is idle in its wait for events (tasks waiting on each other) or the thread is gone."""
    from ._runtime.stall import where

    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    if frame is None or os.path.basename(frame.f_code.co_filename) in _LOOP_WAITS:
        return None
    return where(frame)


def _error_text(error: BaseException, *, where: bool = False) -> str:
    """``Type: message`` of each innermost exception of `error` (an exception group's
    leaves, never the bare group), joined by ``; ``.  With `where`, each is followed by
    `` (at file.py:LINE)``, the program's line that raised it (`_raised_at`)."""
    from ._raised import exception_text, leaves

    texts = []
    for e in leaves(error):
        message = exception_text(e)
        text = f"{type(e).__name__}: {message}" if message else type(e).__name__
        at = _raised_at(e) if where else None
        texts.append(text if at is None else f"{text} (at {at})")
    return "; ".join(texts)


#: Modules whose frames are machinery, not the program's: the line shown for an error is
#: the innermost frame outside them (a live `fail_after`'s TimeoutError is raised in
#: anyio, on the line of the program's ``with``).
_MACHINERY_MODULES: Final = frozenset(
    {"odp_async", "anyio", "trio", "asyncio", "sniffio", "outcome", "contextlib", "threading"}
)


def _raised_at(error: BaseException) -> str | None:
    """``file.py:LINE`` of the innermost frame of `error`'s traceback outside the
    machinery (`_MACHINERY_MODULES`), relative to the working directory when below it."""
    found: tuple[str, int] | None = None
    tb = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__")
        top = module.partition(".")[0] if isinstance(module, str) else ""
        if top not in _MACHINERY_MODULES:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return None
    filename, line = found
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        rel = filename
    return f"{filename if rel.startswith(os.pardir) else rel}:{line}"


def _violation_json(v: Any) -> dict[str, Any]:
    return {
        "kind": v.kind,
        "step": v.step,
        "tasks": list(v.tasks),
        "addresses": list(v.addresses),
        "detail": v.detail,
    }


# --- matrix -----------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  odp-async matrix
  odp-async matrix --budget 3000 --jobs 2
  odp-async matrix --scenario registration-race --protocol odp2014 --json
  odp-async matrix --scenario a.toml --scenario b.toml   # your files, vs [expected]
  odp-async matrix --protocol mymod:MyProtocol           # your protocol, every scenario
  odp-async matrix --budget 10000 --cluster local:2
"""
)
@click.option(
    "--budget",
    "--schedules",
    "budget",
    default=1000,
    show_default=True,
    type=int,
    help="schedules per cell (--schedules, as explore calls it, is the same option)",
)
@click.option("--jobs", default=2, show_default=True, type=int, help="worker processes")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    callback=_example_argument,
    help="only these: names or scenario files (repeatable)",
)
@click.option(
    "--protocol", "-p", "protocols", multiple=True, help="only these: names or module:Class"
)
@click.option(
    "--cluster",
    metavar="WHERE",
    help="cells on Dask: local:N (a local cluster of N workers) or tcp://HOST:PORT",
)
@click.option(
    "--chooser",
    type=click.Choice(["portfolio", "random"]),
    default="portfolio",
    show_default=True,
    help="per cell: the explorer's default portfolio (its dpor member can prove a cell "
    "clean: 'complete: N traces'), or random",
)
@click.option(
    "--stall",
    metavar="SECONDS",
    type=float,
    default=DEFAULT_STALL,
    show_default=True,
    help="stop a cell, inconclusive, when one step of a run has not returned after SECONDS",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def matrix(
    budget: int = 1000,
    jobs: int = 2,
    seed: int = 0,
    scenarios: Sequence[str] = (),
    protocols: Sequence[str] = (),
    cluster: str | None = None,
    chooser: str = "portfolio",
    stall: float = DEFAULT_STALL,
    as_json: bool = False,
) -> None:
    """Every built-in scenario x every protocol, explored, against the expected verdicts.

    A scenario file given with --scenario brings its own protocols (scenario.protocols)
    and expectations ([expected]); --protocol replaces every scenario's protocols.

    Your own protocol (-p module:Class) has no expectation in a built-in scenario: its
    cells show what was found "(no expectation)" and never count as a mismatch (an
    ``error``, your protocol raising, does).  A
    scenario file that names it (scenario.protocols, [expected]) gives it one.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from .explore.config import MAX_SCHEDULES, SEED_BITS
    from .explore.matrix import verdict_matrix
    from .scenarios import BUILTIN

    if budget < 1:
        _fail(f"{_as_typed('budget')} must be a positive int, got {budget}")
    if budget > MAX_SCHEDULES:
        _fail(f"{_as_typed('budget')} must be at most {MAX_SCHEDULES}, got {budget}")
    if seed.bit_length() > SEED_BITS:
        _fail(f"--seed must be an int of at most {SEED_BITS} bits, got {seed}")
    _check_stall(stall)
    names = list(dict.fromkeys(scenarios)) or list(BUILTIN)  # one cell per repeat
    for name in names:
        if not _is_file(name):
            _check_scenario_name(name, classic=False)
    protos = list(dict.fromkeys(_protocol(p) for p in protocols)) or None
    files = {n: _read_file(n) for n in names if _is_file(n)}
    listed = dict.fromkeys(p for file in files.values() for p in file.protocols)
    titles = {n: file.scenario.name for n, file in files.items()}  # a file: its name
    shown = _scenario_labels(names, titles)
    where = {
        p: f"{n}: scenario.protocols[{i}]: "
        for n, file in reversed(files.items())
        for i, p in enumerate(file.protocols)
    }
    for ref in protos or listed:
        # a constructor that raises: one line, before any cell (where a file lists it)
        _probe_protocol(ref, where=where.get(ref, "") if protos is None else "")
    total = _matrix_size(names, protos)
    jobs, note = _cap_jobs(jobs, total, "cells")
    if note:
        _err(note)
    stderr = Console(stderr=True)
    executor = _cluster(cluster)
    start = time.perf_counter()
    with (
        _closing(executor),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
            disable=as_json or not stderr.is_terminal,
        ) as progress,
    ):
        bar = progress.add_task("verdict matrix", total=total)

        seen: list[Any] = []

        def advance(cell: Any) -> None:
            seen.append(cell)
            mark = "ok" if cell.matches else "MISMATCH"
            where = f"{shown.get(cell.scenario, cell.scenario)}/{cell.protocol}"
            progress.update(bar, advance=1, description=f"{where} {mark}")
            if not as_json and not stderr.is_terminal:
                _err(f"cell {len(seen)}/{total} {where}: {_found(cell)}")

        try:
            cells = verdict_matrix(
                budget=budget,
                scenarios=names,
                protocols=protos,
                seed=seed,
                jobs=jobs,
                on_cell=advance,
                executor=executor,
                chooser=chooser,
                stall=stall,
            )
        except KeyboardInterrupt:
            cells, interrupted = list(seen), True
        else:
            interrupted = False
    took = time.perf_counter() - start
    mismatches = [c for c in cells if not c.matches]
    if interrupted and not cells:
        pass  # nothing to show
    elif as_json:
        _echo_json(
            {
                "budget": budget,
                "seed": seed,
                "chooser": chooser,
                "elapsed": round(took, 3),
                "matches": not mismatches,
                "interrupted": interrupted,
                "cells": [
                    {
                        "scenario": titles.get(c.scenario, c.scenario),
                        "file": c.scenario if c.scenario in files else None,
                        "protocol": c.protocol,
                        "expected": None if c.expected is None else str(c.expected),
                        "found": str(c.verdict),
                        "matches": c.matches,
                        "unfinished": c.unfinished,
                        "stalled": c.stalled,
                        "carried": c.carried,
                        "schedules": c.schedules,
                        "schedules_to_first": c.first_hit,
                        "found_by": c.found_by,
                        "claim": c.claim,
                        "token": c.token,
                        "detail": c.detail,
                        "elapsed": round(c.elapsed, 4),
                    }
                    for c in cells
                ],
            }
        )
    else:
        table = Table(
            title=f"verdict matrix ({budget} schedules per cell, {chooser}, seed {seed})"
        )
        # never cut (files must be told apart): folded past 60 columns
        longest = max((len(label) for label in shown.values()), default=8)
        table.add_column("scenario", overflow="fold", min_width=min(60, longest))
        for column in ("protocol", "expected", "found"):
            table.add_column(column)
        table.add_column("to first bug", justify="right")
        table.add_column("claim", no_wrap=True)
        table.add_column("time", justify="right")
        table.add_column("token")
        tokens: list[str] = []
        for c in cells:
            ref = ""
            if c.token:
                label = shown.get(c.scenario, c.scenario)
                tokens.append(f"[{len(tokens) + 1}] {label}/{c.protocol}: {c.token}")
                ref = f"[{len(tokens)}]"
            table.add_row(
                shown.get(c.scenario, c.scenario),
                c.protocol,
                "-" if c.expected is None else str(c.expected),
                f"{_found(c)} (no expectation)"
                if c.expected is None
                else _found(c)
                if c.matches
                else f"{_found(c)} (expected {c.expected})",
                "-" if c.first_hit is None else str(c.first_hit or "probe"),
                _short_claim(c),
                f"{c.elapsed:.2f}s",
                ref,
                style=None if c.matches else "bold red",
            )
        # wide enough for the other columns beside the scenario's and the claim's
        claims = max((len(_short_claim(c)) for c in cells), default=0)
        found = max((len(str(c.verdict)) + 30 for c in cells), default=0)
        width = max(120, Console().width, min(60, longest) + 80 + claims + found)
        Console(width=width).print(table)
        if tokens:
            click.echo("replay tokens (odp-async replay TOKEN --text):")
            for line in tokens:
                click.echo(f"  {line}")
        unexpected = _no_expectation(cells)
        if interrupted:  # never "N/N as expected" for a matrix cut short
            click.echo(
                f"{len(cells)} of {total} cells explored (interrupted), "
                f"{len(cells) - len(mismatches)} as expected{unexpected}, in {took:.1f}s"
            )
        else:
            click.echo(
                f"{len(cells) - len(mismatches)}/{len(cells)} cells as expected{unexpected} "
                f"in {took:.1f}s"
            )
        for c in mismatches:
            label = shown.get(c.scenario, c.scenario)
            if str(c.verdict) == "error" and c.detail:  # what raised, without a replay
                _err(f"odp-async: note: {label}/{c.protocol}: {c.detail}")
            if _missed_within_budget(c):
                _err(
                    f"odp-async: note: {label}/{c.protocol}: expected {c.expected}, none "
                    f"seen in {c.schedules} schedules and the search is not complete: a "
                    "larger --budget may show it"
                )
    if interrupted:
        _err(f"odp-async: {len(cells)}/{total} cells explored")
        _err("odp-async: interrupted")
        raise _Exit(ExitCode.INTERRUPTED)
    if mismatches:
        # only inconclusive cells: no verdict (exit 5), not a miss
        only_unsure = all(c.inconclusive for c in mismatches)
        raise _Exit(ExitCode.INCONCLUSIVE if only_unsure else ExitCode.VIOLATION)
    unsure = [c for c in cells if c.inconclusive]
    if unsure:
        # a cell with no expectation matches, but an inconclusive one is no pass (exit 5)
        if not as_json:
            labels = ", ".join(f"{shown.get(c.scenario, c.scenario)}/{c.protocol}" for c in unsure)
            _err(f"odp-async: inconclusive, no verdict: {labels} (see the claim)")
        raise _Exit(ExitCode.INCONCLUSIVE)


def _missed_within_budget(cell: Any) -> bool:
    """A cell expected to fail that ran clean without completing: the budget ran out
    before its bug showed, which a larger budget may change (a ``complete`` claim would
    not: every trace ran)."""
    from .scenarios import Verdict

    return (
        cell.expected is not None
        and cell.expected is not Verdict.CLEAN
        and cell.verdict is Verdict.CLEAN
        and not cell.claim.startswith("complete")
    )


def _no_expectation(cells: list[Any]) -> str:
    """`` (N with no expectation: 3 found, 1 clean)`` for the cells whose scenario names no
    expectation for their protocol (they count as expected unless an error or
    inconclusive), or ``""``."""
    counts: dict[str, int] = {}
    for c in cells:
        if c.expected is None:
            counts[_found(c)] = counts.get(_found(c), 0) + 1
    if not counts:
        return ""
    each = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    return f" ({sum(counts.values())} with no expectation: {each})"


def _found(cell: Any) -> str:
    """A matrix cell's found verdict: `Cell.verdict` (``inconclusive`` for runs unfinished
    at the bound, never ``clean``)."""
    return str(cell.verdict)


def _short_claim(cell: Any) -> str:
    """A matrix cell's claim for its table: `Cell.claim` (the explorer's wording,
    `odp_async.explore.claims`), and for a failure the portfolio member that showed it
    (``violation at schedule 3: stale-translation (by pct-d4)``)."""
    claim: str = cell.claim
    if cell.first_hit is not None and cell.found_by:
        return f"{claim} (by {cell.found_by})"
    return claim


def _scenario_labels(names: Sequence[str], titles: Mapping[str, str]) -> dict[str, str]:
    """What the matrix calls each scenario: a built-in by its name, a file by the name of
    its scenario (`titles`: file -> name), followed, when another scenario of the run has
    that name too, by the shortest suffix of its path that no other file of the run shares
    (``name (stem.toml)``, else ``name (dir/stem.toml)``...)."""
    files = [n for n in dict.fromkeys(names) if _is_file(n)]
    parts = {n: os.path.normpath(n).split(os.sep) for n in files}
    labels = {n: n for n in names if not _is_file(n)}
    for n in files:
        title = titles[n]
        if not any(m != n and titles.get(m, m) == title for m in dict.fromkeys(names)):
            labels[n] = title
            continue
        for k in range(1, len(parts[n]) + 1):
            suffix = "/".join(parts[n][-k:])
            if not any(m != n and parts[m][-k:] == parts[n][-k:] for m in files):
                break
        labels[n] = f"{title} ({suffix})"
    return labels


# --- plumbing ------------------------------------------------------------------------------

#: The longest --timeout and --progress-every (a day, in seconds).
MAX_SECONDS = 86_400.0
#: The longest --time (`odp_async.explore.config.MAX_SECONDS`: 30 days).
MAX_TIME_BUDGET = 30 * 86_400.0


@contextlib.contextmanager
def _closing(executor: Any) -> Iterator[None]:
    """Close `executor` (if any) on the way out."""
    try:
        yield
    finally:
        if executor is not None:
            executor.close()


def _cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cap_jobs(jobs: int, work: int, unit: str) -> tuple[int, str | None]:
    """``--jobs`` capped to the CPUs and to `work` (in `unit`s), with the note saying so;
    fewer than one is an error."""
    if jobs < 1:
        _fail(f"--jobs must be at least 1, got {jobs}")
    cpus = _cpus()
    cap = max(1, min(cpus, work))
    if jobs <= cap:
        return jobs, None
    why = f"the CPUs: {cpus}" if cap == cpus else f"the work: {work} {unit}"
    return cap, f"odp-async: note: --jobs {jobs} capped to {cap} ({why})"


def _drop_quietly(error: BaseException) -> None:
    """Free what a refused foreign call left on `error`'s chain (the frames of the
    program's refused ``asyncio.create_task(coro)`` hold `coro`) with the "coroutine
    was never awaited" warning silenced: the one-line error already said why."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        error.__cause__ = error.__context__ = error.__traceback__ = None
        gc.collect()


def _one_line(message: str) -> str:
    """`message` on one line: each non-printable character (a newline, a null byte, an
    ESC) written as its escape.  A TOML syntax error keeps its second line, the quoted
    source line (already escaped), as the README says."""
    first, sep, second = message.partition("\n    ")
    return _printable(first) + (
        sep + _printable(second) if sep and "TOML syntax" in first else _printable(sep + second)
    )


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _matrix_size(names: Sequence[str], protocols: Sequence[Any] | None) -> int:
    from .odp.protocols import PROTOCOLS

    if protocols:
        return len(names) * len(protocols)
    return sum(len(_file_protocols(n)) if _is_file(n) else len(PROTOCOLS) for n in names)


def _is_file(scenario: str) -> bool:
    return scenario.endswith(".toml")


def _file_protocols(path: str) -> tuple[str, ...]:
    return _read_file(path).protocols


def _read_file(path: str) -> ScenarioFile:
    """The checked scenario file at `path` (`read_scenario`)."""
    from .scenarios.files import read_scenario

    return read_scenario(path)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _is_a_module(name: str) -> bool:
    """Whether `name` names a module that a ``module:function`` reference could import
    (found on ``sys.path``, not imported; a package's parents are)."""
    import importlib.util

    if not all(part.isidentifier() for part in name.split(".")):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _check_scenario_name(name: str, *, classic: bool = True) -> None:
    """Refuse an unknown scenario name with one line and a "did you mean"."""
    from .scenarios import BUILTIN, CLASSIC

    known = list(BUILTIN) + ([f"classic:{n}" for n in CLASSIC] if classic else [])
    if name in known or (classic and name in CLASSIC):
        return
    if name.startswith(("odp1.", "odp2.")):
        shown = name if len(name) <= 24 else f"{name[:20]}..."
        _fail(
            f"{_printable(shown)} is a replay token, not a scenario: use "
            "odp-async replay TOKEN instead"
        )
    if not classic and ":" in name and not _is_file(name):
        from .explore.matrix import world_scenario_ref
        from .explore.refs import is_ref

        if is_ref(name) and not name.startswith("classic:"):
            try:
                if world_scenario_ref(name):
                    return  # a Scenario of your own that runs the model: its cells
            except InvalidArgument as e:
                _fail(_printable(str(e)))
        # a general program (classic:NAME, module:function): it has no protocols
        _fail(
            f"the matrix runs ODP scenarios under protocols; {name!r} is a program with no "
            f"protocol (explore it: odp-async explore {name}); expected one of "
            f"{', '.join(known)} or a scenario file (.toml)"
        )
    from ._user_files import not_a_scenario_file

    path_problem = not_a_scenario_file(name)
    if path_problem is not None:
        _fail(_printable(path_problem))
    if classic and _is_a_module(name):
        _fail(
            f"{name!r} is a module, not a scenario: name the async function in it, as "
            f"'{name}:<function>'"
        )
    _fail(
        f"unknown scenario {name!r}{_did_you_mean(name, known)}; expected one of "
        f"{', '.join(known)} or a scenario file (.toml)"
    )


def _protocol(text: str) -> Any:
    """A built-in protocol name as given, or the class a ``module:Class`` reference names."""
    from .odp.protocols import PROTOCOLS

    if text in PROTOCOLS:
        return text
    if ":" not in text:
        module, _, cls_name = text.rpartition(".")
        close = (  # ``mymod.MyProtocol``: a class is named after a colon
            f" (did you mean '{module}:{cls_name}'?)"
            if all(part.isidentifier() for part in module.split("."))
            and cls_name.isidentifier()
            and cls_name[0].isupper()
            else _did_you_mean(text, list(PROTOCOLS))
        )
        _fail(
            f"unknown protocol {text!r}{close}; expected one "
            f"of {', '.join(PROTOCOLS)} or module:Class (your own OdpProtocol subclass)"
        )
    from .odp.protocols import resolve_protocol
    from .scenarios.user_protocols import check_protocol_class

    try:
        cls = resolve_protocol(text)
        check_protocol_class(cls, text)  # a name, no abstract hook, not a built-in's name
    except InvalidArgument as e:
        _fail(str(e))
    return cls


def _probe_protocol(protocol: Any, options: Any = None, *, where: str = "") -> None:
    """Build a world with `protocol` (and its `options`) once, before anything is explored:
    a protocol whose constructor raises is one line (exit 2), not a traceback; `where`
    (``"FILE: scenario.protocols[N]: "``) starts it when a scenario file lists it."""
    from .odp.protocols import resolve_protocol
    from .world import World

    cls = resolve_protocol(protocol)
    shown = protocol if isinstance(protocol, str) else f"{cls.__module__}:{cls.__qualname__}"
    try:
        World.build(cls, options=dict(options or {}))
    except InvalidArgument as e:
        _fail(f"{where}{e}")
    except Exception as e:
        _fail(
            f"{where}protocol {shown!r} cannot be built: {cls.__qualname__}(ctx, **options) "
            f"raised {type(e).__name__}: {e}"
        )


#: The largest magnitude of an integer ``-o`` option (a pool size, a count: the model
#: allocates by it) and of a number (finite: a token carries only finite numbers).
MAX_OPTION_INT = 1 << 20
MAX_OPTION_FLOAT = 1e9
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _refused_by(cls: Any, key: str, value: object) -> None:
    """Fail with the protocol's own message when its ``check_options`` refuses `value`
    for `key` (an option with a narrower range than ``-o`` takes: hmm-pool's pool_size
    is 1 to 2**20); return when it takes it, or its check raises anything else."""
    try:
        cls.check_options({key: value})
    except InvalidArgument as e:
        _fail(str(e))
    except Exception:  # a protocol's own check failing otherwise: the generic range says it
        return


def _show_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _options(protocol: Any, pairs: Sequence[str], named: str | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs checked against the protocol's ``OPTIONS`` and typed like the
    defaults there; `named`: the protocol as the user gave it, for the messages."""
    from .odp.protocols import resolve_protocol

    if not pairs:
        return {}
    cls = resolve_protocol(protocol)
    # as the user named it (mymod:Class, never the class's `name`, which no -p takes)
    named = named or (protocol if isinstance(protocol, str) else cls.name)
    allowed: dict[str, Any] = dict(cls.OPTIONS)
    result: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key:
            _fail(f"option {pair!r} is not of the form KEY=VALUE")
        if key not in allowed:
            expected = (
                f"expected one of {', '.join(allowed)}{_did_you_mean(key, list(allowed))}"
                if allowed
                else "it takes no options"
            )
            _fail(f"unknown option {key!r} for protocol {named!r}; {expected}")
        default = allowed[key]
        value: Any
        if isinstance(default, bool):
            if text.lower() not in _TRUE + _FALSE:
                _fail(f"option {key!r} of protocol {named!r} takes true or false, got {text!r}")
            value = text.lower() in _TRUE
        elif isinstance(default, int):
            try:
                value = int(text)
            except ValueError:
                _fail(f"option {key!r} of protocol {named!r} takes an integer, got {text!r}")
            if abs(value) > MAX_OPTION_INT:
                _refused_by(cls, key, value)  # the protocol's own range, if it has one
                _fail(
                    f"option {key!r} of protocol {named!r} takes an integer from "
                    f"{-MAX_OPTION_INT} to {MAX_OPTION_INT}, got {text!r}"
                )
        elif isinstance(default, float):
            try:
                value = float(text)
            except ValueError:
                _fail(f"option {key!r} of protocol {named!r} takes a number, got {text!r}")
            if not abs(value) <= MAX_OPTION_FLOAT:  # also nan and inf
                _fail(
                    f"option {key!r} of protocol {named!r} takes a finite number from "
                    f"{-MAX_OPTION_FLOAT:g} to {MAX_OPTION_FLOAT:g}, got {text!r}"
                )
        elif isinstance(default, str):
            value = text
        else:
            _fail(
                f"option {key!r} of protocol {named!r} is a {type(default).__name__}, "
                "which the command line cannot set"
            )
        if key in result:
            _fail(f"option {key!r} given twice")
        result[key] = value
    try:
        cls.check_options(result)  # a value out of its range, before anything runs
    except InvalidArgument as e:
        _fail(str(e))
    return result


def _target(
    scenario: str,
    protocol: str | None,
    options: Sequence[str] = (),
    *,
    probe: bool = False,
    where: str = "",
) -> Any:
    from .explore.target import Target
    from .scenarios import BUILTIN

    if not _is_file(scenario) and (":" not in scenario or scenario.startswith("classic:")):
        # other ``prefix:name`` forms (an explored test, a ``module:qualname`` reference)
        # are the resolver's to judge and explain
        _check_scenario_name(scenario)
    if probe:
        return Target.resolve(scenario, "naive" if _needs_world(scenario) else None)
    if protocol is None:
        if scenario in BUILTIN:
            _fail(f"scenario {scenario!r} runs the ODP model: give --protocol")
        if options:
            _fail("-o/--option needs -p/--protocol (the options belong to one protocol)")
        return Target.resolve(scenario, None)
    resolved = _protocol(protocol)
    chosen = _options(resolved, options, protocol)
    _probe_protocol(resolved, chosen, where=where)
    return Target.resolve(scenario, resolved, chosen)


def _needs_world(scenario: str) -> bool:
    from .scenarios import BUILTIN

    return scenario in BUILTIN or _is_file(scenario)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args):
        # no shell passes one; a caller of main() can, and no path or name may hold one
        if not isinstance(arg, str) or "\0" in arg:
            what = "holds a null byte" if isinstance(arg, str) else "is not a str"
            _err(f"odp-async: error: argument {i + 1} ({_printable(repr(arg))}) {what}")
            return int(ExitCode.USAGE)
    try:
        with marking_ctrl_c():  # Ctrl-C, told apart from a program's KeyboardInterrupt
            cli.main(args=args, prog_name="odp-async", standalone_mode=False)
    except _Exit as e:
        return int(e.code)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.Abort as e:
        # click turns Ctrl-C (outside an exploration, which reports it itself) into Abort
        if isinstance(e.__cause__, KeyboardInterrupt):
            _err("odp-async: interrupted")
            return int(ExitCode.INTERRUPTED)
        _err("odp-async: aborted")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        _err("odp-async: interrupted")
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as e:
        _err(f"odp-async: error: {_one_line(e.format_message())}")
        return int(ExitCode.USAGE)
    except ReplayMismatch as e:
        _err(f"odp-async: replay mismatch: {_one_line(str(e))}")
        return int(ExitCode.REPLAY_MISMATCH)
    except InternalError:
        traceback.print_exc()
        return int(ExitCode.INTERNAL)
    except (InvalidArgument, OdpError) as e:
        _err(f"odp-async: error: {_one_line(_cli_words(e))}")
        if isinstance(e, ForeignAwait):
            _drop_quietly(e)
        return int(ExitCode.USAGE)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        _err(f"odp-async: error: {_one_line(f'{where}{e.strerror or e}')}")
        return int(ExitCode.USAGE)
    except Exception:
        traceback.print_exc()
        _err("odp-async: internal error (a bug in odp_async; please report it)")
        return int(ExitCode.INTERNAL)
    return int(ExitCode.OK)


def entry_point() -> NoReturn:
    """The ``odp-async`` console script.  Like ``python -m``, it finds ``module:qualname``
    references (``-p mymod:MyProtocol``, a token naming your function) in the current
    directory too: the directory goes last on ``sys.path``, so it shadows nothing."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    stdout = sys.stdout
    try:
        code = main()
        sys.stdout.flush()  # what is still buffered: its EPIPE is this command's too
    except SystemExit:
        # click (standalone_mode=False) exits only on an EPIPE while the command writes,
        # after swapping sys.stdout for a wrapper that hides the exit-time flush error
        if sys.stdout is stdout:
            raise
        code = _closed_output()
    except BrokenPipeError:
        code = _closed_output()
    sys.exit(code)


def _cli_words(error: Exception) -> str:
    """`error`'s message, naming the CLI's flag where the library names its option."""
    from .explore.shrink import CLI_NO_SHRINK_HINT, NO_SHRINK_HINT

    return str(error).replace(NO_SHRINK_HINT, CLI_NO_SHRINK_HINT)


def _closed_output() -> int:
    """The reader of standard output went away (``| head``): the Python docs' "Note on
    SIGPIPE" recipe (stdout to devnull, so the exit-time flush cannot fail), and exit 141,
    128 + SIGPIPE, whatever the run found: its output was cut short."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return int(ExitCode.CLOSED_OUTPUT)


if __name__ == "__main__":
    entry_point()
