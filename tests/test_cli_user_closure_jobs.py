"""A target no other process can rebuild explores under every chooser whatever ``jobs``
says (trial21a f7).

``check(closure, jobs=2)`` ran under dpor (its subtrees in this process) but was refused
under random, pct and the default portfolio ("jobs=2 needs a target other processes can
rebuild").  Now every chooser runs such a target (a closure, a function of a
``__main__`` script) in this process, with the results of ``jobs=1`` and no token; a
run log or an executor of other processes, which need the target's name, are still
refused in one line.  The user's script runs as ``__main__`` in a fresh process, its
closure made by a user module outside the package.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests._usermod import module_name, pythonpath_env

USER = """
from odp_async import checkpoint, task_group


def factory():
    async def inner():
        state = {"x": 0}

        async def w():
            v = state["x"]
            await checkpoint()
            state["x"] = v + 1

        async with task_group() as tg:
            tg.start_soon(w)
            tg.start_soon(w)
        assert state["x"] == 2, "lost update"

    return inner
"""

SCRIPT = """
import sys

from odp_async.errors import InvalidArgument
from odp_async.explore import ProcessExecutor, check

from {module} import factory


async def in_main():
    await factory()()


for name, fn in (("closure", factory()), ("main", in_main)):
    for chooser in ("random", "pct", "dpor", "portfolio"):
        seen = []
        for jobs in (1, 2):
            r = check(fn, chooser=chooser, jobs=jobs, schedules=600, stop_on_first=False,
                      shrink=False)
            seen.append((str(r.verdict), r.schedules, r.failing[:3], r.failure.token))
        print(name, chooser, seen[0] == seen[1], seen[1][0], seen[1][3])
try:
    check(factory(), chooser="random", jobs=2, resume="run.log")
except InvalidArgument as e:
    print("resume:", str(e).splitlines()[0][:53], len(str(e).splitlines()))
with ProcessExecutor(2) as pool:
    try:
        check(factory(), chooser="random", executor=pool)
    except InvalidArgument as e:
        print("executor:", str(e).splitlines()[0][:44])
"""


def test_every_chooser_explores_a_closure_with_jobs_2(tmp_path: Path) -> None:
    name = module_name("userclosurejobs", tmp_path)
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER))
    (tmp_path / "script.py").write_text(SCRIPT.format(module=name))
    proc = subprocess.run(
        [sys.executable, "script.py"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:8] == [
        f"{fn} {chooser} True found None"
        for fn in ("closure", "main")
        for chooser in ("random", "pct", "dpor", "portfolio")
    ], proc.stdout
    assert lines[8:] == [
        "resume: a resume file needs a target other processes can rebu 1",
        "executor: an executor needs a target other processes c",
    ], proc.stdout
