"""Messages a new user misread (trial of 2026-12-04): a matrix asked for a general
program called it an unknown scenario though `odp-async list` lists it; `shrink` of a
general program's token printed ``error: preemptions ...``, which reads as the command's
own error; `-o` on a user protocol named the class's ``name`` (which no ``-p`` takes).
"""

from __future__ import annotations

import pytest

from odp_async.cli import ExitCode
from tests.test_cli import run_cli
from tests.test_cli_user import one_line_usage_error


@pytest.mark.parametrize("name", ["classic:lost-update"])
def test_the_matrix_says_a_program_has_no_protocol(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # (a module:function of yours: tests/test_matrix_python_scenario.py)
    code, out, err = run_cli(capsys, "matrix", "--scenario", name)
    one_line_usage_error(
        code,
        out,
        err,
        f"the matrix runs ODP scenarios under protocols; {name!r} is a program with no "
        f"protocol (explore it: odp-async explore {name}); expected one of registration-race",
    )
    assert "unknown scenario" not in err


def test_shrink_says_what_it_did_before_the_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "explore", "classic:lost-update", "--no-shrink", "--chooser", "random"
    )
    assert code == ExitCode.VIOLATION
    token = next(line.split()[-1] for line in out.splitlines() if line.startswith("replay: "))
    code, out, err = run_cli(capsys, "shrink", token)
    assert code == ExitCode.OK, err
    head, new_token = out.splitlines()
    assert head.startswith("shrunk, still error: preemptions "), head
    assert new_token.startswith("odp2.")


def test_the_matrix_names_a_reference_it_cannot_import(capsys: pytest.CaptureFixture[str]) -> None:
    # a module:name may be a Scenario of yours that runs the model (a matrix scenario):
    # one that cannot be imported is named as such, not called a program
    code, out, err = run_cli(capsys, "matrix", "--scenario", "mymod:fn")
    one_line_usage_error(
        code, out, err, "cannot import module 'mymod' of scenario 'mymod:fn': No module named"
    )
