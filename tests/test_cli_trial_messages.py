"""Messages a new user misread (trial of 2026-12-04): a matrix asked for a general
program called it an unknown scenario though `odp-async list` lists it; `shrink` of a
general program's token printed ``error: preemptions ...``, which reads as the command's
own error; `-o` on a user protocol named the class's ``name`` (which no ``-p`` takes).
"""

from __future__ import annotations

import pytest

from odp_async.cli import ExitCode
from tests.conftest import UserModule
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


# --- the second new-user trial of 2026-12-06 ---------------------------------------------

WRAPPED = """
import functools

import odp_async as oa
from odp_async.explore.testing import explore_test


@explore_test(schedules=5)
async def test_explored():
    await oa.checkpoint()


def plain(fn):
    @functools.wraps(fn)
    def run():
        pass

    return run


@plain
async def decorated():
    await oa.checkpoint()
"""


def test_a_wrapped_async_function_is_named_as_such(
    capsys: pytest.CaptureFixture[str], user_module: UserModule
) -> None:
    """An @explore_test test given to explore was "neither a Scenario nor an async
    function" (it was written `async def`), with its memory address."""
    name = user_module(WRAPPED, "wrapped").__name__
    code, out, err = run_cli(capsys, "explore", f"{name}:test_explored")
    one_line_usage_error(
        code,
        out,
        err,
        f"{name}:test_explored: a plain function wrapping the async function "
        "'test_explored' (an @explore_test test: run it with pytest)",
    )
    assert " at 0x" not in err
    code, out, err = run_cli(capsys, "explore", f"{name}:decorated")
    one_line_usage_error(code, out, err, "'decorated' (a decorator made it)")


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("mine/bank:transfer", "'mine.bank:transfer', run from the folder that holds mine/"),
        ("./mine/bank.py:transfer", "'mine.bank:transfer', run from the folder that holds mine/"),
        ("/src/bank.py:transfer", "'bank:transfer', with /src on PYTHONPATH"),
    ],
)
def test_a_module_named_by_its_path_is_told_its_import_name(
    capsys: pytest.CaptureFixture[str], given: str, says: str
) -> None:
    """'rename it' was the advice for a module named by its file's path."""
    code, out, err = run_cli(capsys, "explore", given)
    one_line_usage_error(code, out, err, "names its module by a path", says)
    assert "rename it" not in err


def test_a_protocol_class_named_with_a_dot_gets_the_colon(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "explore", "registration-race", "-p", "mymod.MyProtocol")
    one_line_usage_error(code, out, err, "(did you mean 'mymod:MyProtocol'?)")
    code, out, err = run_cli(capsys, "explore", "registration-race", "-p", "kvm.seq")
    one_line_usage_error(code, out, err, "(did you mean 'kvm-seq'?)")
