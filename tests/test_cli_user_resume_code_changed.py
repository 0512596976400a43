"""A ``--resume`` log of other code is refused, never trusted (trial21a f12).

The log's header named the target (``shop:main``) but not its code: after the program was
edited to add a lost update, the same command with the old log skipped every recorded
schedule and printed "clean - 200 schedules" (exit 0), while a fresh run found the bug at
schedule 2.  The header now records a fingerprint of the target's user code (its module
and the user modules it imports; a protocol class's module), and a log whose fingerprint
differs is refused in one line naming the module (exit 2); a log written before the
fingerprint is refused too, saying it cannot tell.  An unchanged program resumes as
before.  User modules in tmp_path, each CLI use in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests._usermod import module_name, pythonpath_env

HELPER = """
BUG = False
"""

SHOP = """
from odp_async import checkpoint, task_group
from odp_async.explore import SharedCell

import {helper} as helper


async def main():
    c = SharedCell(0, "c")

    async def w():
        v = c.get()
        if helper.BUG or BUG:
            await checkpoint()
        c.set(v + 1)

    async with task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    assert c.get() == 2


BUG = False
"""


@pytest.fixture
def shop(tmp_path: Path) -> tuple[str, str]:
    helper = module_name("userresumehelper", tmp_path)
    name = module_name("userresumeshop", tmp_path)
    (tmp_path / f"{helper}.py").write_text(textwrap.dedent(HELPER))
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SHOP.format(helper=helper)))
    return name, helper


def _explore(tmp_path: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "odp_async.cli",
            "explore",
            ref,
            "--chooser",
            "random",
            "--schedules",
            "200",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
    )


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    return lines[-1]


@pytest.mark.parametrize("edited", ["target", "helper"])
def test_a_log_of_edited_code_is_refused(
    shop: tuple[str, str], tmp_path: Path, edited: str
) -> None:
    name, helper = shop
    first = _explore(tmp_path, f"{name}:main", "--resume", "run.log")
    assert first.returncode == 0, first.stdout + first.stderr
    header = json.loads((tmp_path / "run.log").read_text().splitlines()[0])
    assert sorted(header["code"]) == sorted([name, helper])
    again = _explore(tmp_path, f"{name}:main", "--resume", "run.log")
    assert again.returncode == 0, again.stdout + again.stderr  # unchanged: resumes
    module = name if edited == "target" else helper
    path = tmp_path / f"{module}.py"
    path.write_text(path.read_text().replace("BUG = False", "BUG = True"))
    line = _error_line(_explore(tmp_path, f"{name}:main", "--resume", "run.log"))
    assert line == (
        f"odp-async: error: run.log is the log of other code: module {module!r} "
        f"({module}.py) changed since it was written (its recorded schedules may no "
        "longer pass); remove it to explore afresh"
    )
    fresh = _explore(tmp_path, f"{name}:main")
    assert fresh.returncode == 1, fresh.stdout  # the bug the log would have hidden


def test_a_log_without_a_fingerprint_is_refused(shop: tuple[str, str], tmp_path: Path) -> None:
    name, _ = shop
    assert _explore(tmp_path, f"{name}:main", "--resume", "run.log").returncode == 0
    log = tmp_path / "run.log"
    lines = log.read_text().splitlines()
    header = json.loads(lines[0])
    del header["code"]  # as odp_async wrote it before the fingerprint
    log.write_text("\n".join([json.dumps(header, sort_keys=True), *lines[1:]]) + "\n")
    line = _error_line(_explore(tmp_path, f"{name}:main", "--resume", "run.log"))
    assert line == (
        "odp-async: error: run.log records no fingerprint of the target's code (written by "
        "an older odp_async): it cannot tell whether the code changed since; remove it to "
        "explore afresh"
    )


PROTOCOL = """
from typing import ClassVar

from odp_async.odp.protocols.interval_seq import IntervalSeq


class Careful(IntervalSeq):
    name: ClassVar[str] = "careful"
    summary: ClassVar[str] = "interval-seq under another name"
"""


def test_a_protocol_class_edited_is_refused(tmp_path: Path) -> None:
    name = module_name("userresumeproto", tmp_path)
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(PROTOCOL))
    args = ("registration-race", "-p", f"{name}:Careful", "--max-steps", "3000")
    first = _explore(tmp_path, *args, "--resume", "run.log")
    assert first.returncode == 0, first.stdout + first.stderr
    path.write_text(path.read_text() + "\n# edited\n")
    line = _error_line(_explore(tmp_path, *args, "--resume", "run.log"))
    assert f"module {name!r} ({name}.py) changed since it was written" in line


INNER = """
from odp_async import checkpoint, task_group
from odp_async.explore import SharedCell


async def main():
    import {helper} as helper
    from {package} import {sub} as sub

    c = SharedCell(0, "c")

    async def w():
        v = c.get()
        if helper.BUG or sub.BUG:
            await checkpoint()
        c.set(v + 1)

    async with task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    assert c.get() == 2
"""


@pytest.mark.parametrize("edited", ["helper", "submodule"])
def test_a_module_imported_inside_the_target_is_fingerprinted(tmp_path: Path, edited: str) -> None:
    # verify21 v4: `import helper` in the target's body (not at module level) was not
    # fingerprinted, so after `BUG = True` in it the old log made the run clean, exit 0.
    helper = module_name("userresumeinner", tmp_path)
    package = module_name("userresumepkg", tmp_path)
    name = module_name("userresumeinnershop", tmp_path)
    (tmp_path / f"{helper}.py").write_text(textwrap.dedent(HELPER))
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "sub.py").write_text(textwrap.dedent(HELPER))
    source = INNER.format(helper=helper, package=package, sub="sub")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    first = _explore(tmp_path, f"{name}:main", "--resume", "run.log")
    assert first.returncode == 0, first.stdout + first.stderr
    header = json.loads((tmp_path / "run.log").read_text().splitlines()[0])
    assert sorted(header["code"]) == sorted([name, helper, package, f"{package}.sub"])
    again = _explore(tmp_path, f"{name}:main", "--resume", "run.log")
    assert again.returncode == 0, again.stdout + again.stderr  # unchanged: resumes
    module, path = (
        (helper, tmp_path / f"{helper}.py")
        if edited == "helper"
        else (f"{package}.sub", tmp_path / package / "sub.py")
    )
    path.write_text(path.read_text().replace("BUG = False", "BUG = True"))
    line = _error_line(_explore(tmp_path, f"{name}:main", "--resume", "run.log"))
    shown = path.relative_to(tmp_path)
    assert line == (
        f"odp-async: error: run.log is the log of other code: module {module!r} "
        f"({shown}) changed since it was written (its recorded schedules may no "
        "longer pass); remove it to explore afresh"
    )
    fresh = _explore(tmp_path, f"{name}:main")
    assert fresh.returncode == 1, fresh.stdout  # the bug the log would have hidden
