"""A ``module:qualname`` that cannot be one (a module file named ``1x.py``, a name with a
``-``) is refused with one line saying which part is wrong, not as an unknown scenario
name (the list of built-in names said "expected ... or 'module:qualname'", which had been
given)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from tests.test_cli_user import cli_cmd, fresh_env, one_line_usage_error

PROGRAM = """
from odp_async import checkpoint


async def scenario():
    await checkpoint("one")
"""


def test_a_module_named_with_a_leading_digit(tmp_path: Path) -> None:
    (tmp_path / "1x.py").write_text(PROGRAM)
    done = subprocess.run(
        cli_cmd("explore", "1x:scenario", "--schedules", "2"),
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    one_line_usage_error(
        done.returncode,
        done.stdout,
        done.stderr,
        "the module name '1x' is not a dotted Python identifier",
    )
    assert "unknown scenario" not in done.stderr


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("my-mod:main", "the module name 'my-mod' is not a dotted Python identifier"),
        ("mod:1main", "the qualified name '1main' is not a dotted Python identifier"),
        ("a:b:c", "'a:b:c' has 2 colons; a reference is 'module:qualname'"),
    ],
)
def test_bad_references(ref: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", ref])
    out, err = capsys.readouterr()
    one_line_usage_error(code, out, err, needle)
    assert code == ExitCode.USAGE
    with pytest.raises(InvalidArgument, match=needle.replace("'", ".")):
        explore(ref, schedules=1)


def test_an_unknown_name_without_a_colon_still_lists_the_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["explore", "no-such-scenario"])
    out, err = capsys.readouterr()
    one_line_usage_error(code, out, err, "unknown scenario 'no-such-scenario'")
