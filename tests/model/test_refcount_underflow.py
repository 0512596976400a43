"""Trial 16b, item 2: an ``mmput`` without a matching get is a ``refcount-underflow``.

A task that took no reference and calls ``mmput`` drops the process's own ``mm_users``
reference: in the kernel exit_mmap runs under the live process and its exit takes
``mm_users`` to -1 (a use-after-free).  The model records it at the put, and does not
apply it.  References are matched by count, not per task: a reference taken by one task
and put by another (a driver handing its ``mmget`` to a worker) is legitimate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.world import World, run_world

USER_MODULE = """
from odp_async.world import run_world


async def body(w):
    await w.mm.mmap(0, 4096)
    await w.mm.mmput()  # this task never took a reference: drops the process's own
    after_put = (w.mm.mm_users, w.mm.is_dead)
    await w.mm.exit()
    return after_put, w.mm.mm_users


run = run_world(body, protocol="naive")
print("value:", run.sim.value)
for v in run.violations:
    print("violation:", v.kind, v.step, v.detail)
"""

SCENARIO_FILE = """
[scenario]
name = "mmput-without-ref"
summary = "a task that holds no reference puts one, then the process exits"

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "populate", start = 0x0, pages = 4 },
    { op = "register", mr = "B", start = 0x0, pages = 4 },
]

[[actor]]
name = "a"
ops = [{ op = "mmput" }]

[[actor]]
name = "b"
after = ["a"]
ops = [{ op = "exit" }]
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(cwd)),
    )


def test_a_put_by_a_task_holding_no_reference_is_found_at_the_put(tmp_path: Path) -> None:
    (tmp_path / "mmput_user.py").write_text(USER_MODULE)
    done = subprocess.run(
        [sys.executable, "-c", "import mmput_user"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # not applied: the process keeps its reference, the mm lives until its exit
    assert lines[0] == "value: ((1, False), 0)"
    assert lines[1:] == [
        "violation: refcount-underflow 2 mm: mmput() without a matching mmget: it would "
        "drop the process's own mm_users reference while the process runs (exit_mmap "
        "under it, mm_users -1 at its exit)"
    ]


def test_the_scenario_file_is_found_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "mmput-without-ref.toml"
    path.write_text(SCENARIO_FILE)
    done = _cli("explore", str(path), "-p", "naive", "--schedules", "20", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    first = done.stdout.splitlines()[:2]
    assert first[0].startswith("mmput-without-ref/naive: found"), first
    assert first[1] == "violation at schedule 1: refcount-underflow", first


def test_a_put_after_the_last_put_is_an_underflow_not_applied() -> None:
    async def body(w: World) -> list[int]:
        w.mm.mmget()
        await w.mm.exit()
        await w.mm.mmput()  # the last: the teardown runs here
        await w.mm.mmput()  # one more: mm_users would go to -1
        return [w.mm.mm_users, w.mm.mm_count]

    run = run_world(body)
    assert run.sim.unwrap() == [0, 1]  # the world's mmgrab keeps the struct
    assert [(v.kind, v.detail) for v in run.violations] == [
        (
            "refcount-underflow",
            "mm: mmput() after its last mm_users reference was put: mm_users would go to -1",
        )
    ]


def test_a_reference_handed_to_another_task_is_put_there_cleanly() -> None:
    async def body(w: World) -> list[object]:
        await w.mm.mmap(0, 4 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        w.mm.mmget()  # the driver's reference, handed to its worker
        out: list[object] = []

        async def worker() -> None:
            await w.mm.mmput()
            out.append(w.mm.mm_users)

        async with rt.task_group() as tg:
            tg.start_soon(worker, name="worker")
        await w.mm.exit()
        out.append(w.mm.is_dead)
        return out

    run = run_world(body)
    assert run.sim.unwrap() == [1, True]
    assert run.violations == ()


def test_two_gets_allow_two_puts_and_the_third_is_found() -> None:
    async def body(w: World) -> int:
        w.mm.mmget()
        w.mm.mmget()

        async def putter() -> None:
            for _ in range(3):
                await w.mm.mmput()

        async with rt.task_group() as tg:
            tg.start_soon(putter, name="putter")
        return w.mm.mm_users

    run = run_world(body)
    assert run.sim.unwrap() == 1  # the process's own reference is left
    assert [(v.kind, v.tasks) for v in run.violations] == [("refcount-underflow", ("putter",))]


def test_an_mmdrop_freeing_the_mm_under_its_users_is_an_underflow() -> None:
    async def body(w: World) -> Any:
        w.mm.mmdrop()  # the world's mmgrab
        w.mm.mmdrop()  # the one the users hold together: freed under the process

    run = run_world(body)
    assert [v.kind for v in run.violations] == ["refcount-underflow"]
    assert run.violations[0].detail == (
        "mm: mmdrop() freed it while mm_users is 1: a drop without a matching mmgrab"
    )


def test_the_exit_of_a_freed_mm_is_a_use_after_free() -> None:
    async def body(w: World) -> None:
        w.mm.mmdrop()
        w.mm.mmdrop()
        await w.mm.exit()

    run = run_world(body)
    assert "exit touched mm after it was freed by the last mmdrop" in [
        v.detail for v in run.violations if v.kind == "use-after-free"
    ]


def test_the_built_in_lifetime_cells_stay_as_expected() -> None:
    from odp_async.explore import explore

    assert explore("mmput-async-under-lock", "odp2014", schedules=30).failure is None
    found = explore("mmput-under-lock", "odp2014", schedules=30).failure
    assert found is not None
    assert found.violation.kind == "deadlock"
