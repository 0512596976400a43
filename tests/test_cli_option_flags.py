"""A bad option value is one line naming the flag as typed, never the `ExploreConfig`
field behind it: ``--preemptions -1`` said ``preemption_bound must be None or a
non-negative int``, a name (and a None) the command line does not have.  The Python API
keeps naming its own keyword arguments."""

from __future__ import annotations

import re

import attrs
import click
import pytest

from odp_async import cli
from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore.config import ExploreConfig

SCENARIO = ["explore", "classic:lost-update"]


def _explore_command() -> click.Command:
    assert isinstance(cli.cli, click.Group)
    return cli.cli.commands["explore"]


def _usage_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    assert code == ExitCode.USAGE, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip().removeprefix("odp-async: error: ")


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (["--preemptions", "-1"], "--preemptions must be a non-negative int, got -1"),
        (
            ["--chooser", "dfs", "--preemptions", "1001"],
            "--preemptions must be at most 1000, got 1001",
        ),
        (["--max-steps", "0"], "--max-steps must be a positive int, got 0"),
        (["--max-steps=-5"], "--max-steps must be a positive int, got -5"),
        (["--chooser", "pct", "--depth", "0"], "--depth must be a positive int, got 0"),
        (
            ["--chooser", "dfs", "--max-preemptions", "-2"],
            "--max-preemptions must be a non-negative int, got -2",
        ),
        (["--schedules", "0"], "--schedules must be a positive int, got 0"),
        (
            ["--chooser", "bfs"],
            "--chooser: unknown chooser 'bfs'; expected one of portfolio, random, pct, dfs, dpor, "
            "script",
        ),
        (["--start", "-1"], "--start must be a non-negative int, got -1"),
        (
            ["--seed", str(2**64)],
            f"--seed must be an int of at most 64 bits (|seed| < 2**64), got {2**64}",
        ),
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (
            ["--chooser", "random", "--start", str(2**64 - 1), "--schedules", "2"],
            "--start + --schedules must be at most 2**64 (schedule indices stay below "
            f"2**64), got --start {2**64 - 1} + --schedules 2 = {2**64 + 1}",
        ),
        (
            ["--chooser", "dfs", "--start", "5"],
            "dfs cannot --start 5: a run log and --start index the schedules of a seeded "
            "search (random, pct), not the traces of a tree",
        ),
    ],
)
def test_explore_names_the_flag(
    capsys: pytest.CaptureFixture[str], options: list[str], line: str
) -> None:
    assert _usage_line(capsys, [*SCENARIO, *options]) == line


@pytest.mark.parametrize(
    ("typed", "line"),
    [
        (["--budget", "0"], "--budget must be a positive int, got 0"),
        (["--schedules", "0"], "--schedules must be a positive int, got 0"),
        (["--schedules=2000000000"], "--schedules must be at most 1000000000, got 2000000000"),
    ],
)
def test_matrix_names_the_spelling_typed(
    capsys: pytest.CaptureFixture[str], typed: list[str], line: str
) -> None:
    """``--budget`` and ``--schedules`` are one matrix option: the line names the one typed."""
    assert _usage_line(capsys, ["matrix", *typed]) == line


def test_no_error_line_names_a_config_field(capsys: pytest.CaptureFixture[str]) -> None:
    """Every explore option that sets a config field, given a value out of range: the line
    names the flag and no field (``max_steps``, ``preemption_bound``...)."""
    fields = {f for f in cli._CONFIG_OPTIONS if "_" in f}  # max_steps, preemption_bound...
    command = _explore_command()
    flags = {p.name: p.opts[0] for p in command.params if isinstance(p, click.Option)}
    for field, option in cli._CONFIG_OPTIONS.items():
        flag = flags[option]
        bad = {"seed": str(2**64), "time": "0", "stall": "0"}.get(field, "-1")
        line = _usage_line(capsys, [*SCENARIO, flag, bad])
        assert line.startswith(f"{flag} "), (flag, line)
        assert not re.search(rf"\b({'|'.join(fields)})\b", line), line
        assert "None" not in line, line


def test_every_numeric_explore_option_is_mapped() -> None:
    """An int or float option of explore sets a config field (and is in the CLI's map),
    or the CLI judges it itself before the config is built (--progress-every)."""
    command = _explore_command()
    numbers = (click.types.IntParamType, click.types.FloatParamType)
    numeric = {
        p.name
        for p in command.params
        if isinstance(p, click.Option) and isinstance(p.type, numbers)
    }
    assert numeric - set(cli._CONFIG_OPTIONS.values()) == {"progress_every"}
    assert set(cli._CONFIG_OPTIONS) <= set(attrs.fields_dict(ExploreConfig))


def test_the_api_keeps_naming_its_keywords() -> None:
    with pytest.raises(InvalidArgument, match=r"^preemption_bound must be None or a non-negative"):
        ExploreConfig(preemption_bound=-1)
    with pytest.raises(InvalidArgument, match=r"^max_steps must be a positive int, got 0$"):
        ExploreConfig(max_steps=0)
