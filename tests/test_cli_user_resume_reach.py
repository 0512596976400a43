"""A ``--resume`` log's fingerprint covers the parent packages of the target's module and
the modules its code imports by a literal ``importlib.import_module("name")`` or
``__import__("name")`` (trial 22b f2-f5): after an edit to either, the old log is refused
(exit 2) where it used to be trusted, making a buggy program "clean".  User modules in
tmp_path, each CLI use in a fresh process."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests._usermod import module_name
from tests.test_cli_user_resume_code_changed import HELPER, _error_line, _explore

#: A target whose lost update shows only when ``helper.BUG`` is true; `{load}` imports
#: the helper (its name in `{helper}`) as ``helper``.
BODY = """
import importlib
from importlib import import_module as load_module

from odp_async import checkpoint, task_group
from odp_async.explore import SharedCell


async def main():
    {load}
    c = SharedCell(0, "c")

    async def w():
        v = c.get()
        if helper.BUG:
            await checkpoint()
        c.set(v + 1)

    async with task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    assert c.get() == 2
"""

LOADS = {
    "import_module": 'helper = importlib.import_module("{helper}")',
    "__import__": 'helper = __import__("{helper}")',
    "an alias": 'helper = load_module("{helper}")',
    "a relative name": 'helper = importlib.import_module(".{leaf}", __package__)',
}


def _resumed_then_refused(tmp_path: Path, ref: str, edit: Path, module: str) -> None:
    first = _explore(tmp_path, ref, "--resume", "run.log")
    assert first.returncode == 0, first.stdout + first.stderr
    header = json.loads((tmp_path / "run.log").read_text().splitlines()[0])
    assert module in header["code"], header["code"]
    again = _explore(tmp_path, ref, "--resume", "run.log")
    assert again.returncode == 0, again.stdout + again.stderr  # unchanged: resumes
    edit.write_text(edit.read_text().replace("BUG = False", "BUG = True"))
    line = _error_line(_explore(tmp_path, ref, "--resume", "run.log"))
    assert f"is the log of other code: module {module!r}" in line, line
    assert _explore(tmp_path, ref).returncode == 1  # the bug the log would have hidden


@pytest.mark.parametrize("how", sorted(LOADS))
def test_a_module_imported_by_a_literal_name_is_fingerprinted(tmp_path: Path, how: str) -> None:
    package = module_name("userreachpkg", tmp_path)
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    leaf = "helper"
    if how == "a relative name":
        helper = f"{package}.{leaf}"
        (tmp_path / package / f"{leaf}.py").write_text(textwrap.dedent(HELPER))
    else:
        helper = module_name("userreachhelper", tmp_path)
        (tmp_path / f"{helper}.py").write_text(textwrap.dedent(HELPER))
    load = LOADS[how].format(helper=helper, leaf=leaf)
    (tmp_path / package / "shop.py").write_text(textwrap.dedent(BODY.format(load=load)))
    path = tmp_path / (f"{package}/{leaf}.py" if how == "a relative name" else f"{helper}.py")
    _resumed_then_refused(tmp_path, f"{package}.shop:main", path, helper)


def test_the_parent_package_of_the_target_is_fingerprinted(tmp_path: Path) -> None:
    # The package's __init__ sets the helper's flag; the target's module never names the
    # package, yet importing it runs that __init__ first.
    package = module_name("userreachparent", tmp_path)
    helper = module_name("userreachflag", tmp_path)
    (tmp_path / f"{helper}.py").write_text("BUG = None\n")
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(f"import {helper}\n\n{helper}.BUG = False\n")
    load = f"import {helper} as helper"
    (tmp_path / package / "shop.py").write_text(textwrap.dedent(BODY.format(load=load)))
    init = tmp_path / package / "__init__.py"
    _resumed_then_refused(tmp_path, f"{package}.shop:main", init, package)
