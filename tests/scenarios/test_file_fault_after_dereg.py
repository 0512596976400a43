"""A scenario file's ``fault`` on an MR that was deregistered (trial 19b, finding f1).

The file's ``fault`` op is the device's page fault on the MR's key: the driver looks the
key up first (mlx5 odp.c, under srcu) and drops a fault on a key that deregistration
revoked, so nothing is touched: the op ends ``failed`` and no protocol is charged.  This
holds whether another actor deregistered the MR (racing, or ordered with ``after``) or
the same actor did, earlier in its ops.  A direct `UContext.fault` call on a released
region (code keeping a stale pointer) is still a ``use-after-release``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from odp_async import _runtime as rt
from odp_async._runtime.choosers import RandomChooser
from odp_async.addr import PAGE_SIZE as P
from odp_async.cli import ExitCode
from odp_async.device import FaultOutcome
from odp_async.explore.target import Target
from odp_async.scenarios.files import load_scenario
from odp_async.world import World, run_world

HEAD = """
[scenario]
name = "{name}"
protocols = ["interval-seq", "kvm-seq", "odp2014-ctx", "range-list"]

[setup]
ops = [
    {{ op = "mmap", start = 0x0, pages = 4 }},
    {{ op = "register", mr = "C", start = 0x0, pages = 4 }},
]
"""

RACE = """
[[actor]]
name = "fault"
ops = [{ op = "fault", mr = "C", address = 0x1000 }]

[[actor]]
name = "dereg"
ops = [{ op = "deregister", mr = "C" }]
"""

ORDERED = """
[[actor]]
name = "fault"
after = ["dereg"]
ops = [{ op = "fault", mr = "C", address = 0x1000 }]

[[actor]]
name = "dereg"
ops = [{ op = "deregister", mr = "C" }]
"""

SAME_ACTOR = """
[[actor]]
name = "a"
ops = [{ op = "deregister", mr = "C" }, { op = "fault", mr = "C", address = 0x1000 }]
"""

PROTOCOLS = ("interval-seq", "kvm-seq", "odp2014-ctx", "range-list")
FILES = {"race": RACE, "ordered": ORDERED, "same-actor": SAME_ACTOR}
FAULT_OP = {"race": "fault.0", "ordered": "fault.0", "same-actor": "a.1"}


def write(tmp_path: Path, shape: str) -> Path:
    path = tmp_path / f"{shape}.toml"
    path.write_text(HEAD.format(name=f"fault-after-dereg-{shape}") + FILES[shape])
    return path


@pytest.mark.parametrize("shape", list(FILES))
def test_a_fault_on_a_deregistered_mr_is_dropped_for_every_protocol(
    tmp_path: Path, shape: str
) -> None:
    path = write(tmp_path, shape)
    scenario = load_scenario(path)
    outcomes: set[str] = set()
    for protocol in PROTOCOLS:
        for seed in range(20):
            run = Target(scenario, protocol, {}, str(path)).run(
                RandomChooser(seed), max_steps=20_000
            )
            assert run.violations == (), (protocol, seed, run.violations)
            value: dict[str, Any] = run.sim.value
            outcomes.add(value[FAULT_OP[shape]])
    if shape == "race":  # before the deregistration it resolves, after it is dropped
        assert outcomes == {"resolved", "failed"}
    else:
        assert outcomes == {"failed"}


@pytest.mark.parametrize("shape", list(FILES))
def test_the_cli_reports_the_files_clean_in_a_fresh_process(tmp_path: Path, shape: str) -> None:
    path = write(tmp_path, shape)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", path.name, "--schedules", "200"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    assert "4/4 protocols as expected" in proc.stdout, proc.stdout


def test_a_direct_fault_through_a_stale_pointer_is_still_a_use_after_release() -> None:
    """`UContext.fault` is called with the region: after its deregistration the caller
    holds a pointer to freed memory.  `UContext.device_fault` looks the key up first."""
    seen: list[str] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 4 * P)
        c = await w.ctx.register_mr(0, 4 * P, name="C")
        await w.ctx.deregister_mr(c)
        seen.append((await w.ctx.device_fault(c, P)).value)
        await rt.checkpoint()
        assert w.checker.violations == []
        seen.append((await w.ctx.fault(c, P)).value)

    run = run_world(body, protocol="interval-seq")
    run.sim.unwrap()
    assert seen == [FaultOutcome.FAILED.value, FaultOutcome.FAILED.value]
    assert run.kinds == ("use-after-release",)
    assert run.violations[0].detail == "a fault touched C after its deregistration"
