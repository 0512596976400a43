"""A token of an ``error`` failure records the exception types the run raised, and a replay
that raises others at the same step is a mismatch, not a reproduction (new-user trial: a
user's ``assert`` edited into ``raise KeyError(...)`` replayed as the recorded failure,
exit 1).  A token pasted across lines replays as the one-line token does.  The user's
module is written to tmp_path; the CLI runs in a fresh process from there."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import ReplayMismatch
from odp_async.explore import check
from odp_async.explore import tokens as tokens_module
from odp_async.explore.tokens import decode_token, replay_token
from tests._usermod import module_name, pythonpath_env

PROGRAM = """
from odp_async import checkpoint, task_group


async def two_deposits() -> None:
    account = {"balance": 0}

    async def deposit() -> None:
        seen = account["balance"]
        await checkpoint("read balance")
        account["balance"] = seen + 10

    async with task_group() as tg:
        tg.start_soon(deposit, name="alice")
        tg.start_soon(deposit, name="bob")
    if account["balance"] != 20:
        FAIL
"""

ASSERT = 'raise AssertionError(f"lost deposit: {account}")'
KEYERROR = 'raise KeyError("another failure at the same step")'


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _write(tmp_path: Path, name: str, failure: str) -> None:
    (tmp_path / f"{name}.py").write_text(PROGRAM.replace("FAIL", failure))
    for cached in tmp_path.glob("__pycache__/*"):
        cached.unlink()


def test_a_replay_raising_another_exception_is_a_mismatch(tmp_path: Path) -> None:
    name = module_name("tokexc", tmp_path)
    _write(tmp_path, name, ASSERT)
    found = _cli(tmp_path, "explore", f"{name}:two_deposits", "--chooser", "dpor")
    assert found.returncode == ExitCode.VIOLATION, found.stdout + found.stderr
    token = re.search(r"odp2\.[A-Za-z0-9_-]+\.[0-9a-f]{8}", found.stdout)
    assert token is not None, found.stdout
    same = _cli(tmp_path, "replay", token.group(0), "--text")
    assert same.returncode == ExitCode.VIOLATION, same.stdout + same.stderr
    assert "AssertionError" in same.stdout

    _write(tmp_path, name, KEYERROR)
    other = _cli(tmp_path, "replay", token.group(0), "--text")
    assert other.returncode == ExitCode.REPLAY_MISMATCH, other.stdout + other.stderr
    assert "raising AssertionError, the replay raised KeyError" in other.stderr
    assert "Traceback" not in other.stderr


def test_a_token_pasted_across_lines_replays(tmp_path: Path) -> None:
    name = module_name("tokwrap", tmp_path)
    _write(tmp_path, name, ASSERT)
    found = _cli(tmp_path, "explore", f"{name}:two_deposits", "--chooser", "dpor")
    token = re.search(r"odp2\.[A-Za-z0-9_-]+\.[0-9a-f]{8}", found.stdout)
    assert token is not None, found.stdout
    text = token.group(0)
    wrapped = "\n  ".join(text[i : i + 30] for i in range(0, len(text), 30))
    assert "\n" in wrapped
    done = _cli(tmp_path, "replay", wrapped, "--text")
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    assert "lost deposit" in done.stdout


def _failing(module: ModuleType) -> str:
    result = check(module.two_deposits, chooser="dpor", schedules=50)
    assert result.failure is not None
    assert result.failure.token is not None
    return result.failure.token


@pytest.fixture
def deposits(user_module: Callable[[str, str], ModuleType]) -> ModuleType:
    return user_module(PROGRAM.replace("FAIL", ASSERT), "tokexc_api")


def test_the_token_records_the_exception_types(deposits: ModuleType) -> None:
    token = _failing(deposits)
    decoded = decode_token(token)
    assert decoded.kind == "error"
    assert decoded.exceptions == ("AssertionError",)
    assert replay_token(token).failure is not None


def test_a_token_without_the_types_still_replays(
    deposits: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tokens made before the types were recorded carry no "x": nothing to compare.
    with monkeypatch.context() as m:
        m.setattr(tokens_module, "_raised_types", lambda execution: None)
        token = _failing(deposits)
    assert decode_token(token).exceptions is None
    assert replay_token(token).failure is not None


def test_a_replay_with_other_types_raises_replay_mismatch(
    deposits: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _failing(deposits)
    monkeypatch.setattr(tokens_module, "_raised_types", lambda execution: ("KeyError",))
    with pytest.raises(ReplayMismatch, match="raising AssertionError, the replay raised KeyError"):
        replay_token(token)


@pytest.mark.parametrize(
    ("raised", "needle"),
    [
        ([], "expected a list of 1 to 64 type names"),
        (["ok", 3], "expected a type name"),
        (["bad\nname"], "expected a type name"),
        ("AssertionError", "expected a list"),
    ],
)
def test_a_malformed_type_list_is_refused(raised: object, needle: str) -> None:
    header = {"s": "classic:lost-update", "p": None, "o": {}, "m": 100, "k": "error"}
    header |= {"t": 3, "v": "0", "x": raised}
    with pytest.raises(ValueError, match=re.escape(needle)):
        tokens_module._type_names(header)
