"""Exploration on a Dask LocalCluster of worker processes: the same results as one
process for random, pct, a scenario file and a user module the workers cannot import
(the client uploads it); and Ctrl-C on ``odp-async explore --cluster local:2``."""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests._usermod import lost_update_source
from tests.conftest import UserModule
from tests.explore._same import same

distributed = pytest.importorskip("distributed")

from odp_async.explore import check, explore  # noqa: E402
from odp_async.explore.dask_executor import DaskExecutor  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

USER_MODULE = lost_update_source("a", "b")


@pytest.fixture(scope="module")
def dask() -> Iterator[DaskExecutor]:
    with DaskExecutor.local(2, processes=True, dashboard=False) as executor:
        yield executor  # type: ignore[misc]


@pytest.fixture
def user(dask: DaskExecutor, user_module: UserModule) -> ModuleType:
    """A module in a directory the worker processes (started before it) do not have on
    their path."""
    return user_module(USER_MODULE, "user_dask_procs")


@pytest.mark.parametrize("chooser", ["random", "pct"])
def test_worker_processes_find_what_one_process_finds(dask: DaskExecutor, chooser: str) -> None:
    kw = {"chooser": chooser, "schedules": 300, "seed": 4, "stop_on_first": False}
    kw["shrink"] = False
    one = explore("registration-race", "odp2014", **kw)
    on_dask = explore("registration-race", "odp2014", executor=dask, **kw)
    same(one, on_dask)
    assert set(on_dask.per_worker) <= set(dask.client.nthreads())


def test_a_scenario_file_travels_by_content(dask: DaskExecutor, tmp_path: Path) -> None:
    path = tmp_path / "race.toml"
    shutil.copy(EXAMPLES / "registration-race.toml", path)
    kw = {"schedules": 300, "seed": 4, "stop_on_first": False, "shrink": False}
    same(explore(str(path), "odp2014", **kw), explore(str(path), "odp2014", executor=dask, **kw))


def test_a_user_module_the_workers_cannot_import_is_uploaded(
    dask: DaskExecutor, user: ModuleType
) -> None:
    def can_import(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    assert not any(dask.client.run(can_import, user.__name__).values())
    ref = f"{user.__name__}:lost_update"
    one = check(ref, schedules=300, seed=2, stop_on_first=False, shrink=False)
    on_dask = check(ref, schedules=300, seed=2, stop_on_first=False, shrink=False, executor=dask)
    same(one, on_dask)
    assert all(dask.client.run(can_import, user.__name__).values())


def test_dpor_subtrees_on_worker_processes_that_cannot_import_the_user_module(
    dask: DaskExecutor, user: ModuleType
) -> None:
    # (the dpor split: tests/explore/test_dpor_distributed.py)
    from odp_async.explore import InlineExecutor

    ref = f"{user.__name__}:lost_update"
    kw = {"chooser": "dpor", "schedules": 3000, "stop_on_first": False}
    here = check(ref, executor=InlineExecutor(), **kw)
    there = check(ref, executor=dask, **kw)
    assert here.complete
    assert there.complete
    assert (here.schedules, here.failing, here.steps) == (
        there.schedules,
        there.failing,
        there.steps,
    )
    assert here.failure is not None
    assert there.failure is not None
    assert here.failure.shrunk_token == there.failure.shrunk_token
    assert sum(there.per_worker.values()) == there.schedules


def test_ctrl_c_on_the_cli_cancels_the_cluster_and_exits_130(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    command = [sys.executable, "-m", "odp_async.cli", "explore", "classic:lost-update"]
    command += ["--cluster", "local:2", "--schedules", "100000000", "--all-failures"]
    command += ["--resume", str(log)]
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("cluster: Dask cluster at ")
        assert proc.stderr.readline().startswith("exploring lost-update")
        # wait (polling, no fixed delay) until chunks are completing on the cluster
        while not log.exists() or len(log.read_text().splitlines()) < 3:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: to every process of the group
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err  # the workers ignore SIGINT; the parent cancels
    assert err.strip().splitlines()[-1].startswith("odp-async: interrupted after ")
    assert f"continue it with --resume {log}" in err
    assert took < 15.0  # generous: a chunk is at most ~1 s, the cluster closes in ~1 s


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_cluster_snippet_runs_as_a_script(tmp_path: Path) -> None:
    section = README.read_text().split("\n## Beyond one machine\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    script = tmp_path / "on_a_cluster.py"
    script.write_text(block)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=100, check=False
    )
    assert proc.returncode == 0, proc.stderr
    expected = explore("registration-race", "odp2014", schedules=2000)
    assert expected.failure is not None
    lines = proc.stdout.splitlines()
    assert lines[0] == expected.failure.describe().splitlines()[0]
    assert f"replay: odp-async replay {expected.failure.shrunk_token}" in lines
    counts = ast.literal_eval(lines[-1])
    # "main": the portfolio's dpor share, run by the parent
    assert all(worker.startswith("tcp://") or worker == "main" for worker in counts)
    assert sum(counts.values()) >= expected.failure.index
