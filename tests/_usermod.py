"""User code written outside the package: a module written to a directory (pytest's
tmp_path) and imported by its own name, as a user's module would be (COMMON: user code is
first-class).  The `user_module` fixture in conftest.py wraps `import_user_module`."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest


def module_name(prefix: str, directory: Path) -> str:
    """A module name unique to `directory`, so no two tests (nor worker processes that
    cache imports by name) see each other's module."""
    return f"{prefix}_{abs(hash(str(directory))) % 10**8}"


def write_user_module(
    directory: Path, source: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Write `source` (dedented) to ``directory/<name>.py`` and put `directory` on
    sys.path (`monkeypatch` takes it back at the end of the test); return the name, for
    code under test (the CLI, say) to import."""
    name = module_name(prefix, directory)
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(directory))
    return name


def import_user_module(
    directory: Path, source: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """`write_user_module`, then import it.  The caller drops the module from
    sys.modules (the fixture does, with `forget`)."""
    return importlib.import_module(write_user_module(directory, source, prefix, monkeypatch))


def cli_in(directory: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``odp-async ARGV`` in a fresh process run in `directory`, which is first on its
    PYTHONPATH (a user's module there imports as the user's own)."""
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(directory),
        cwd=directory,
    )


def pythonpath_env(directory: Path) -> dict[str, str]:
    """This process's environment with `directory` first on PYTHONPATH, for a fresh
    process that imports the user module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(directory), env.get("PYTHONPATH", "")])
    return env


def forget(name: str) -> None:
    """Drop the module `name` from sys.modules (a later test's import finds it afresh)."""
    sys.modules.pop(name, None)


def lost_update_source(*names: str) -> str:
    """A user module (source text) whose ``lost_update()`` runs one unguarded
    read-checkpoint-write increment per task in `names` and asserts none was lost."""
    starts = "".join(f'        tg.start_soon(increment, name="{name}")\n' for name in names)
    return (
        "from odp_async import checkpoint, task_group\n\n\n"
        "async def lost_update():\n"
        '    state = {"x": 0}\n\n'
        "    async def increment():\n"
        '        seen = state["x"]\n'
        '        await checkpoint("read x")\n'
        '        state["x"] = seen + 1\n\n'
        "    async with task_group() as tg:\n"
        f"{starts}"
        f'    assert state["x"] == {len(names)}, f"lost update: x == {{state[\'x\']}}"\n'
    )
