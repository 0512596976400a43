"""A scenario file's ``lock`` on an MR that was deregistered (verification of trial 19b).

The file's ``lock`` is a driver path that looked the MR up and holds it while it holds
its ``umem_mutex``, as the device's fault does (`Umem.fault_enter`, which deregistration
drains): on an MR deregistered or being deregistered it is dropped with its task's
``unlock``, so no protocol is charged a use-after-release the file made.  A task that
deregisters an MR it holds locked is refused when the file is read (it would wait for
itself).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from odp_async._runtime.choosers import RandomChooser
from odp_async.cli import ExitCode
from odp_async.explore.target import Target
from odp_async.scenarios.files import ScenarioFileError, load_scenario

HEAD = """
[scenario]
name = "{name}"
protocols = ["interval-seq", "kvm-seq", "odp2014-ctx", "range-list"]

[setup]
ops = [
    {{ op = "mmap", start = 0x0, pages = 4 }},
    {{ op = "populate", start = 0x0, pages = 4 }},
    {{ op = "register", mr = "C", start = 0x0, pages = 4 }},
{setup}]
"""

LOCKER = (
    '[[actor]]\nname = "a"\n{after}'
    'ops = [{{ op = "lock", mr = "C" }}, {{ op = "unlock", mr = "C" }}]\n'
)
DEREG = '[[actor]]\nname = "d"\nops = [{ op = "deregister", mr = "C" }]\n'

FILES = {
    "race": ("", LOCKER.format(after="") + DEREG),
    "ordered": ("", LOCKER.format(after='after = ["d"]\n') + DEREG),
    "same-actor": (
        "",
        '[[actor]]\nname = "a"\nops = [{ op = "deregister", mr = "C" }, '
        '{ op = "lock", mr = "C" }, { op = "unlock", mr = "C" }]\n',
    ),
    "setup": ('    { op = "deregister", mr = "C" },\n', LOCKER.format(after="")),
}
PROTOCOLS = ("interval-seq", "kvm-seq", "odp2014-ctx", "range-list")


def write(tmp_path: Path, shape: str) -> Path:
    setup, actors = FILES[shape]
    path = tmp_path / f"{shape}.toml"
    path.write_text(HEAD.format(name=f"lock-after-dereg-{shape}", setup=setup) + actors)
    return path


@pytest.mark.parametrize("shape", list(FILES))
def test_a_lock_of_a_deregistered_mr_is_dropped_for_every_protocol(
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
            lock = "a.1" if shape == "same-actor" else "a.0"
            outcomes.add(value[lock])
    if shape == "race":  # taken before the deregistration (which waits), dropped after
        assert outcomes == {"ok", "dropped"}, outcomes
    else:
        assert outcomes == {"dropped"}, outcomes


def test_the_cli_reports_the_files_clean_in_a_fresh_process(tmp_path: Path) -> None:
    path = write(tmp_path, "race")
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


def test_deregistering_an_mr_the_task_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "held.toml"
    path.write_text(
        HEAD.format(name="dereg-while-held", setup="")
        + '[[actor]]\nname = "a"\nops = [{ op = "lock", mr = "C" }, '
        '{ op = "deregister", mr = "C" }, { op = "unlock", mr = "C" }]\n'
    )
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "actor[0].ops[1].op" in message
    assert "deregisters MR C while it holds" in message
    assert "\n" not in message
