"""A single-valued option given twice is refused, naming both values: click alone keeps
the last silently, so ``explore X -p A -p B`` explored B and said nothing of A."""

from __future__ import annotations

import click
import pytest

from odp_async.cli import ExitCode, cli, main


def _value_options() -> list[tuple[str, str]]:
    assert isinstance(cli, click.Group)
    found = []
    for name, command in sorted(cli.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option) and not (
                param.multiple or param.count or param.is_flag
            ):
                found.append((name, param.opts[0]))
    return found


VALUE_OPTIONS = _value_options()


def test_every_command_has_value_options() -> None:
    assert {"explore", "run", "matrix", "replay"} <= {name for name, _ in VALUE_OPTIONS}
    assert ("explore", "--protocol") in VALUE_OPTIONS


@pytest.mark.parametrize(("command", "option"), VALUE_OPTIONS)
def test_a_value_option_given_twice_is_refused(
    capsys: pytest.CaptureFixture[str], command: str, option: str
) -> None:
    code = main([command, option, "first", "x", f"{option}=second"])
    _out, err = capsys.readouterr()
    assert code == ExitCode.USAGE, err
    assert err.count("\n") == 1, err
    assert "given 2 times (first, second)" in err, err


def test_the_short_form_counts_with_the_long_one(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "registration-race", "-pnaive", "--protocol", "odp2014"])
    _out, err = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert "given 2 times (naive, odp2014)" in err, err


def test_a_repeatable_option_and_a_repeated_switch_stay_accepted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["explore", "classic:lost-update", "--chooser", "random", "--schedules", "3"]
    code = main([*argv, "--no-shrink", "--no-shrink", "--seed", "1"])
    out, err = capsys.readouterr()
    assert code in (ExitCode.OK, ExitCode.VIOLATION), err
    assert "lost-update" in out
