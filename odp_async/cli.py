"""The ``odp-async`` command: the verdict matrix, exploring, replaying, shrinking, live runs.

Contract
    `main(argv) -> int` runs one command and returns an `ExitCode`; `entry_point` is the
    thin console-script wrapper.  Results go to stdout (``--json`` for machine-readable
    output on ``explore``, ``replay``, ``shrink`` and ``matrix``); progress and diagnostics
    go to stderr.  A user mistake (an unknown name, a malformed token or scenario file, a
    bad number, an unwritable path) prints one line and exits 2, never a traceback; a bug
    of odp_async prints the traceback and exits 3.

See also
    `odp_async.explore` (what the commands drive), `odp_async.report` (timelines).
"""

from __future__ import annotations

import contextlib
import enum
import json
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click

from .errors import InternalError, InvalidArgument, OdpError, ReplayMismatch

__all__ = ["ExitCode", "entry_point", "main"]


class ExitCode(enum.IntEnum):
    #: Nothing wrong: every matrix cell met its expectation; no violation was found.
    OK = 0
    #: A violation was found (explore, replay, run), or a matrix cell missed its expectation.
    VIOLATION = 1
    #: A usage error or bad input: unknown scenario/protocol/chooser, malformed token or
    #: scenario file, a bad number, an unwritable output path.
    USAGE = 2
    #: A bug in odp_async (the traceback is printed; please report it).
    INTERNAL = 3
    #: A replay token no longer reproduces its failure: the code changed since.
    REPLAY_MISMATCH = 4
    #: Ctrl-C stopped it (128 + SIGINT, as a shell reports it).
    INTERRUPTED = 130


class _Exit(Exception):
    def __init__(self, code: ExitCode) -> None:
        self.code = code


def _err(message: str) -> None:
    click.echo(message, err=True)


def _fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    _err(f"odp-async: error: {message}")
    raise _Exit(code)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


EPILOG_MAIN = """\b
Examples:
  odp-async                      # the verdict matrix at its default budget
  odp-async list                 # scenarios and protocols
  odp-async explore registration-race --protocol odp2014 --chooser pct
  odp-async replay 'odp2....' --text --png race.png
  odp-async run fault-vs-munmap --backend trio --protocol naive

\b
Exit codes: 0 ok, 1 violation (or a matrix cell off its expectation),
2 usage or bad input, 3 internal error, 4 replay mismatch, 130 Ctrl-C.
"""


@click.group(invoke_without_command=True, epilog=EPILOG_MAIN)
@click.version_option(package_name="odp_async")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Model RDMA On-Demand Paging and explore its races deterministically.

    With no command, runs the verdict matrix: every built-in scenario under every
    protocol, compared with its expected verdict.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(matrix)


# --- list / show ------------------------------------------------------------------------


@cli.command("list", epilog="\b\nExamples:\n  odp-async list")
def list_() -> None:
    """List the scenarios and the protocols, one line each."""
    from .odp.protocols import PROTOCOLS
    from .scenarios import BUILTIN, CLASSIC

    click.echo("ODP scenarios (take --protocol):")
    for name, scenario in BUILTIN.items():
        click.echo(f"  {name:30} {scenario.summary}")
    click.echo("general programs (no protocol):")
    for name, scenario in CLASSIC.items():
        click.echo(f"  classic:{name:22} {scenario.summary}")
    click.echo("protocols:")
    for name, cls in PROTOCOLS.items():
        click.echo(f"  {name:30} {cls.summary}")


@cli.command(epilog="\b\nExamples:\n  odp-async show registration-race\n  odp-async show my.toml")
@click.argument("scenario")
def show(scenario: str) -> None:
    """Show a scenario: what it does, its actors, its expected verdicts, its script."""
    from .odp.protocols import PROTOCOLS

    target = _target(scenario, None, probe=True)
    s = target.scenario
    click.echo(f"{s.name}: {s.summary}")
    if s.description:
        click.echo(s.description.rstrip())
    click.echo(f"actors: {', '.join(s.actors) or '-'}")
    if s.needs_world:
        click.echo("expected verdicts:")
        for protocol in PROTOCOLS:
            click.echo(f"  {protocol:14} {s.expected_for(protocol)}")
    else:
        click.echo(f"expected: {s.expected_for('-')}")
    if s.script:
        click.echo("script (the interleaving that shows the bug):")
        for task, until in s.script:
            click.echo(f"  run {task}" + (f" until it reaches {until!r}" if until else ""))


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
  odp-async explore registration-race -p odp2014 --chooser dfs --preemptions 3
  odp-async explore classic:lost-update --chooser pct --depth 2 --json
  odp-async explore stray-end-corruption -p odp2014 --schedules 5000 --jobs 2
  odp-async explore stray-end-corruption -p odp2014 --schedules 100000 --cluster local:2
  odp-async explore classic:lost-update --cluster tcp://scheduler:8786 --resume run.log
  odp-async explore classic:lost-update --start 5000 --schedules 5000 --all-failures
"""
)
@click.argument("scenario")
@click.option("--protocol", "-p", help="protocol (ODP scenarios only)")
@click.option("--chooser", default="random", show_default=True, help="random | pct | dfs")
@click.option("--schedules", default=1000, show_default=True, type=int, help="budget")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--jobs", default=1, show_default=True, type=int, help="worker processes")
@click.option("--preemptions", type=int, help="dfs: a fixed preemption bound")
@click.option("--max-preemptions", default=3, show_default=True, type=int, help="dfs")
@click.option("--depth", default=3, show_default=True, type=int, help="pct depth")
@click.option("--max-steps", default=50_000, show_default=True, type=int)
@click.option("--no-reduction", is_flag=True, help="dfs: no sleep sets, no symmetry")
@click.option("--no-shrink", is_flag=True, help="keep the failing schedule as found")
@click.option(
    "--cluster",
    metavar="WHERE",
    help="random/pct on Dask: local:N (a local cluster of N workers) or tcp://HOST:PORT",
)
@click.option("--start", default=0, show_default=True, type=int, help="first schedule index")
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
    chooser: str,
    schedules: int,
    seed: int,
    jobs: int,
    preemptions: int | None,
    max_preemptions: int,
    depth: int,
    max_steps: int,
    no_reduction: bool,
    no_shrink: bool,
    cluster: str | None,
    start: int,
    resume: str | None,
    all_failures: bool,
    as_json: bool,
) -> None:
    """Explore SCENARIO under many schedules; print the first failure and its token."""
    from .errors import ExploreInterrupted
    from .explore.config import ExploreConfig
    from .explore.runner import explore_target

    config = ExploreConfig(
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
    target = _target(scenario, protocol)
    if cluster is not None and chooser == "dfs":
        _fail("dfs does not distribute yet: only --chooser random or pct run on a --cluster")
    executor = _cluster(cluster)
    _err(f"exploring {target.label} with {chooser} ({schedules} schedules)...")
    try:
        result = explore_target(target, config, executor=executor, resume=resume)
    except ExploreInterrupted as e:
        more = f"; continue it with --resume {resume}" if resume else ""
        _err(f"odp-async: interrupted after {e.result.schedules} schedules{more}")
        raise _Exit(ExitCode.INTERRUPTED) from None
    finally:
        if executor is not None:
            executor.close()
    failure = result.failure
    if as_json:
        _echo_json(_explore_json(result))
    else:
        click.echo(
            f"{result.label}: {result.verdict} - {result.schedules} schedules "
            f"({result.steps} steps, {result.elapsed:.2f}s"
            + (f", {result.pruned} pruned" if result.pruned else "")
            + (f", complete for bound {result.bound}" if result.complete else "")
            + ")"
        )
        if all_failures and result.failing:
            shown = ", ".join(map(str, result.failing[:20]))
            more = ", ..." if len(result.failing) > 20 else ""
            click.echo(f"{len(result.failing)} failing schedules: {shown}{more}")
        if executor is not None or len(result.per_worker) > 1:
            counts = ", ".join(f"{w}: {n}" for w, n in result.per_worker.items())
            click.echo(f"schedules per worker: {counts}")
        if failure is not None:
            click.echo(failure.describe())
    if failure is not None:
        raise _Exit(ExitCode.VIOLATION)


def _cluster(where: str | None) -> Any:
    """The executor of ``--cluster`` (None: none), announced on stderr."""
    if where is None:
        return None
    from .explore.executors import cluster_executor

    executor = cluster_executor(where)
    link = getattr(executor, "dashboard_link", None)
    _err(f"cluster: {executor.description}" + (f", dashboard {link}" if link else ""))
    return executor


def _explore_json(result: Any) -> dict[str, Any]:
    failure = result.failure
    data: dict[str, Any] = {
        "target": result.label,
        "chooser": result.config.chooser,
        "verdict": str(result.verdict),
        "schedules": result.schedules,
        "pruned": result.pruned,
        "steps": result.steps,
        "complete": result.complete,
        "bound": result.bound,
        "elapsed": round(result.elapsed, 4),
        "start": result.config.start,
        "executor": result.executor,
        "per_worker": dict(result.per_worker),
        "failing": list(result.failing),
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
            "token": failure.token,
            "shrunk_token": failure.shrunk_token,
            "preemptions": [failure.shrunk.preemptions_before, failure.shrunk.preemptions_after]
            if failure.shrunk
            else None,
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
    help="text: columns (default: the terminal's); pictures: pixels (default 1400)",
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
) -> None:
    """Re-run the exact schedule of TOKEN and show what happened."""
    from .explore.tokens import decode_token, replay_token

    if width is not None and width < 40:
        _fail(f"--width must be at least 40, got {width}")
    if width is not None and (png_path or svg_path) and not 400 <= width <= 20000:
        _fail(f"--width for a picture is 400..20000 pixels, got {width}")
    decoded = decode_token(token)
    execution = replay_token(decoded, trace=True)
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
            write_picture(timeline, path, width_px=width or 1400, fmt=fmt)
            _err(f"wrote {path}")
    if html_path:
        from .report import write_html

        write_html(execution, html_path, target=decoded.target())
        _err(f"wrote {html_path}")
    if as_json:
        _echo_json(
            {
                "target": decoded.target().label,
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
        click.echo(
            f"{label}: {failure.describe() if failure else 'no violation'} "
            f"({execution.sim.steps} steps)"
        )
    if failure is not None:
        raise _Exit(ExitCode.VIOLATION)


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
            f"{failure.kind}: preemptions {result.preemptions_before} -> "
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
"""
)
@click.argument("scenario")
@click.option("--backend", default="trio", show_default=True, help="trio | asyncio")
@click.option("--protocol", "-p", help="protocol (ODP scenarios only)")
@click.option("--timeout", default=10.0, show_default=True, type=float, help="seconds")
def run(scenario: str, backend: str, protocol: str | None, timeout: float) -> None:
    """Run SCENARIO once on a real event loop (no verdict promised; the checker reports)."""
    from ._runtime import run_live
    from .world import World

    if backend not in ("trio", "asyncio"):
        _fail(f"unknown backend {backend!r}; expected trio or asyncio")
    if not timeout > 0:  # also refuses nan
        _fail(f"--timeout must be a positive number of seconds, got {timeout}")
    target = _target(scenario, protocol)

    async def main() -> list[Any]:
        if target.scenario.needs_world:
            assert target.protocol is not None
            world = World.build(target.protocol, options=dict(target.options))
            await target.scenario.body(world)
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
    if thread.is_alive() or isinstance(error, TimeoutError):
        click.echo(
            f"{target.label} on {backend}: did not finish within {timeout}s "
            "(a deadlock? explore it in the sim to see the cycle)"
        )
        raise _Exit(ExitCode.VIOLATION)
    if isinstance(error, InternalError):
        raise error
    if error is not None:  # the program under test failed: that is a finding
        click.echo(f"{target.label} on {backend}: {type(error).__name__}: {error}")
        raise _Exit(ExitCode.VIOLATION)
    violations = outcome["violations"]
    click.echo(
        f"{target.label} on {backend}: finished in {took:.3f}s, {len(violations)} violations"
    )
    for v in violations:
        click.echo(f"  {v.describe()}")
    if violations:
        raise _Exit(ExitCode.VIOLATION)


# --- matrix -----------------------------------------------------------------------------------


@cli.command(
    epilog="""\b
Examples:
  odp-async matrix
  odp-async matrix --budget 3000 --jobs 2
  odp-async matrix --scenario registration-race --protocol odp2014 --json
  odp-async matrix --budget 10000 --cluster local:2
"""
)
@click.option("--budget", default=1000, show_default=True, type=int, help="schedules per cell")
@click.option("--jobs", default=2, show_default=True, type=int, help="worker processes")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--scenario", "scenarios", multiple=True, help="only these (repeatable)")
@click.option("--protocol", "protocols", multiple=True, help="only these (repeatable)")
@click.option(
    "--cluster",
    metavar="WHERE",
    help="cells on Dask: local:N (a local cluster of N workers) or tcp://HOST:PORT",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable result")
def matrix(
    budget: int = 1000,
    jobs: int = 2,
    seed: int = 0,
    scenarios: Sequence[str] = (),
    protocols: Sequence[str] = (),
    cluster: str | None = None,
    as_json: bool = False,
) -> None:
    """Every built-in scenario x every protocol, explored, against the expected verdicts."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from .explore.matrix import verdict_matrix
    from .odp.protocols import PROTOCOLS
    from .scenarios import BUILTIN

    names = list(scenarios) or list(BUILTIN)
    protos = list(protocols) or list(PROTOCOLS)
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
        bar = progress.add_task("verdict matrix", total=len(names) * len(protos))

        def advance(cell: Any) -> None:
            mark = "ok" if cell.matches else "MISMATCH"
            progress.update(bar, advance=1, description=f"{cell.scenario}/{cell.protocol} {mark}")

        cells = verdict_matrix(
            budget=budget,
            scenarios=names,
            protocols=protos,
            seed=seed,
            jobs=jobs,
            on_cell=advance,
            executor=executor,
        )
    took = time.perf_counter() - start
    mismatches = [c for c in cells if not c.matches]
    if as_json:
        _echo_json(
            {
                "budget": budget,
                "seed": seed,
                "elapsed": round(took, 3),
                "matches": not mismatches,
                "cells": [
                    {
                        "scenario": c.scenario,
                        "protocol": c.protocol,
                        "expected": str(c.expected),
                        "found": str(c.verdict),
                        "matches": c.matches,
                        "schedules": c.schedules,
                        "schedules_to_first": c.first_hit,
                        "token": c.token,
                        "detail": c.detail,
                        "elapsed": round(c.elapsed, 4),
                    }
                    for c in cells
                ],
            }
        )
    else:
        table = Table(title=f"verdict matrix ({budget} schedules per cell, seed {seed})")
        for column in ("scenario", "protocol", "expected", "found"):
            table.add_column(column)
        table.add_column("to first bug", justify="right")
        table.add_column("time", justify="right")
        table.add_column("token")
        tokens: list[str] = []
        for c in cells:
            ref = ""
            if c.token:
                tokens.append(f"[{len(tokens) + 1}] {c.scenario}/{c.protocol}: {c.token}")
                ref = f"[{len(tokens)}]"
            table.add_row(
                c.scenario,
                c.protocol,
                str(c.expected),
                str(c.verdict) if c.matches else f"{c.verdict} (expected {c.expected})",
                str(c.first_hit or "-"),
                f"{c.elapsed:.2f}s",
                ref,
                style=None if c.matches else "bold red",
            )
        Console(width=max(100, Console().width)).print(table)
        if tokens:
            click.echo("replay tokens (odp-async replay TOKEN --text):")
            for line in tokens:
                click.echo(f"  {line}")
        click.echo(f"{len(cells) - len(mismatches)}/{len(cells)} cells as expected in {took:.1f}s")
    if mismatches:
        raise _Exit(ExitCode.VIOLATION)


# --- plumbing ------------------------------------------------------------------------------


@contextlib.contextmanager
def _closing(executor: Any) -> Iterator[None]:
    """Close `executor` (if any) on the way out."""
    try:
        yield
    finally:
        if executor is not None:
            executor.close()


def _target(scenario: str, protocol: str | None, *, probe: bool = False) -> Any:
    from .explore.target import Target
    from .scenarios import BUILTIN

    if probe:
        target = Target.resolve(scenario, "naive" if _needs_world(scenario) else None)
        return target
    if protocol is None and scenario in BUILTIN:
        _fail(f"scenario {scenario!r} runs the ODP model: give --protocol")
    return Target.resolve(scenario, protocol)


def _needs_world(scenario: str) -> bool:
    from .scenarios import BUILTIN

    return scenario in BUILTIN or scenario.endswith(".toml")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: ``sys.argv[1:]``); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="odp-async", standalone_mode=False)
    except _Exit as e:
        return int(e.code)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):  # Ctrl-C
            _err("odp-async: interrupted")
            return int(ExitCode.INTERRUPTED)
        _err("odp-async: aborted")
        return int(ExitCode.USAGE)
    except click.ClickException as e:
        _err(f"odp-async: error: {e.format_message()}")
        return int(ExitCode.USAGE)
    except ReplayMismatch as e:
        _err(f"odp-async: replay mismatch: {e}")
        return int(ExitCode.REPLAY_MISMATCH)
    except InternalError:
        traceback.print_exc()
        return int(ExitCode.INTERNAL)
    except (InvalidArgument, OdpError) as e:
        _err(f"odp-async: error: {e}")
        return int(ExitCode.USAGE)
    except OSError as e:
        _err(f"odp-async: error: {e.filename or ''}: {e.strerror or e}")
        return int(ExitCode.USAGE)
    except Exception:
        traceback.print_exc()
        _err("odp-async: internal error (a bug in odp_async; please report it)")
        return int(ExitCode.INTERNAL)
    return int(ExitCode.OK)


def entry_point() -> NoReturn:
    """The ``odp-async`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
