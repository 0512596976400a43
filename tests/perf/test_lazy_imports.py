"""`import odp_async` and the sim do not load the live backends (trio, anyio, asyncio).

Each check runs in a fresh interpreter, where nothing else has imported them yet.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LIVE = ("trio", "anyio", "asyncio")

PROBE = """
import sys
{imports}
print(",".join(m for m in {live!r} if m in sys.modules))
"""


def _loaded_after(imports: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports, live=LIVE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    return out.split(",") if out else []


@pytest.mark.parametrize(
    "imports",
    [
        "import odp_async",
        "import odp_async.sim",
        "import odp_async.explore",
        "import odp_async.world",
    ],
)
def test_import_does_not_load_live_backends(imports: str) -> None:
    assert _loaded_after(imports) == []


def test_a_sim_run_does_not_load_live_backends() -> None:
    code = """
import odp_async
from odp_async import sim

async def main():
    async with odp_async.task_group() as tg:
        m = odp_async.Mutex()
        async def w():
            async with m:
                await odp_async.checkpoint("x")
        tg.start_soon(w)
        tg.start_soon(w)

assert sim.run(main, seed=3).is_ok
"""
    assert _loaded_after(code) == []


def test_live_use_loads_them_on_demand() -> None:
    # The lazy path still finds the live runtime: a Mutex on asyncio.
    code = """
import asyncio
import odp_async

async def main():
    m = odp_async.Mutex()
    async with m:
        await odp_async.checkpoint()
    return odp_async.task_name(odp_async.current_task())

asyncio.run(main())
"""
    assert "anyio" in _loaded_after(code)
