"""The executor seam without Dask: worker processes, in-process chunks, sharding by index,
resuming from a run log, chunk sizing, and the refusals (dfs, a missing extra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from odp_async.cli import main
from odp_async.errors import ExploreInterrupted, InvalidArgument
from odp_async.explore import ProgressUpdate, check, explore, runner
from odp_async.explore.executors import (
    CLUSTER_EXTRA_HINT,
    InlineExecutor,
    ProcessExecutor,
    cluster_executor,
    user_modules,
)
from odp_async.explore.target import Target
from tests._usermod import lost_update_source
from tests.conftest import UserModule
from tests.explore._same import same

USER_MODULE = lost_update_source("a", "b", "c")


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_executors")


@pytest.mark.parametrize("chooser", ["random", "pct"])
def test_worker_processes_and_inline_chunks_find_what_one_process_finds(
    user: ModuleType, chooser: str
) -> None:
    kw = {"chooser": chooser, "schedules": 600, "seed": 7, "stop_on_first": False}
    one = check(f"{user.__name__}:lost_update", shrink=False, **kw)
    assert one.per_worker == {"main": 600}
    with ProcessExecutor(2) as pool:
        two = check(f"{user.__name__}:lost_update", shrink=False, executor=pool, **kw)
    same(one, two)
    assert set(two.per_worker) <= {"process-1", "process-2"}
    inline = check(f"{user.__name__}:lost_update", shrink=False, executor=InlineExecutor(), **kw)
    same(one, inline)


def test_the_first_failure_stops_the_pool_with_the_lowest_index() -> None:
    kw = {"chooser": "random", "schedules": 5000, "seed": 1, "shrink": False}
    one = explore("registration-race", "odp2014", **kw)
    assert one.failure is not None
    with ProcessExecutor(2) as pool:
        two = explore("registration-race", "odp2014", executor=pool, **kw)
    assert two.failure is not None
    assert (two.failure.index, two.failure.token) == (one.failure.index, one.failure.token)
    assert two.schedules < 5000  # the rest was never run


def test_shards_by_start_give_the_union_of_one_run(user: ModuleType) -> None:
    ref = f"{user.__name__}:lost_update"
    kw = {"seed": 3, "stop_on_first": False, "shrink": False}
    whole = check(ref, schedules=900, **kw)
    parts = [check(ref, schedules=300, start=start, **kw) for start in (0, 300, 600)]
    with ProcessExecutor(2) as pool:  # a shard may run anywhere
        parts[1] = check(ref, schedules=300, start=300, executor=pool, **kw)
    assert sum(p.schedules for p in parts) == whole.schedules
    assert tuple(i for p in parts for i in p.failing) == whole.failing
    assert sum(p.steps for p in parts) == whole.steps
    # each shard's first failure is the whole run's first failure in its range
    for p, start in zip(parts, (0, 300, 600), strict=True):
        assert p.failure is not None
        assert p.failure.index == min(i for i in whole.failing if i > start)
        assert all(start < i <= start + 300 for i in p.failing)


def stop_after(n: int) -> object:
    def progress(update: ProgressUpdate) -> None:
        if update.done >= n and update.done < update.total:
            raise KeyboardInterrupt  # as Ctrl-C does, between two chunks

    return progress


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_interrupted_run_resumes_from_its_log(
    user: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)
    ref = f"{user.__name__}:lost_update"
    kw = {"chooser": "pct", "seed": 2, "schedules": 700, "stop_on_first": False}
    whole = check(ref, shrink=False, **kw)
    log = tmp_path / "run.log"
    with pytest.raises(ExploreInterrupted) as info:
        check(ref, jobs=jobs, resume=log, progress=stop_after(100), **kw)  # type: ignore[arg-type]
    first = info.value.result
    assert 0 < first.schedules < 700
    recorded = log.read_text().splitlines()
    assert json.loads(recorded[0])["seed"] == 2
    assert len(recorded) > 1
    resumed = check(ref, jobs=jobs, resume=log, shrink=False, **kw)
    same(whole, resumed)
    assert 0 < resumed.per_worker["resumed"] < 700  # what the first run did is not redone
    again = check(ref, jobs=jobs, resume=log, shrink=False, **kw)
    same(whole, again)
    assert again.per_worker == {"resumed": 700}  # nothing left to run


def test_a_resumed_run_finds_the_first_failure_it_recorded(
    user: ModuleType, tmp_path: Path
) -> None:
    ref = f"{user.__name__}:lost_update"
    log = tmp_path / "run.log"
    one = check(ref, schedules=600, resume=log)
    assert one.failure is not None
    again = check(ref, schedules=600, resume=log)
    assert again.failure is not None
    assert again.per_worker == {"resumed": one.failure.index}
    assert (again.failure.index, again.failure.token, again.failure.shrunk_token) == (
        one.failure.index,
        one.failure.token,
        one.failure.shrunk_token,
    )


def test_a_log_of_another_run_or_a_malformed_log_is_refused(
    user: ModuleType, tmp_path: Path
) -> None:
    ref = f"{user.__name__}:lost_update"
    log = tmp_path / "run.log"
    check(ref, schedules=50, seed=1, resume=log, stop_on_first=False)
    with pytest.raises(
        InvalidArgument, match=r"log of another run: its seed is 1, this run's is 2"
    ):
        check(ref, schedules=50, seed=2, resume=log)
    log.write_text(log.read_text() + "not json\n")
    with pytest.raises(InvalidArgument, match=r"line .* is not a run log line"):
        check(ref, schedules=50, seed=1, resume=log)


def test_a_torn_last_line_is_run_again(user: ModuleType, tmp_path: Path) -> None:
    ref = f"{user.__name__}:lost_update"
    log = tmp_path / "run.log"
    whole = check(ref, schedules=80, resume=log, stop_on_first=False, shrink=False)
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:5])  # killed mid-line
    again = check(ref, schedules=80, resume=log, stop_on_first=False, shrink=False)
    same(whole, again)
    assert again.per_worker["resumed"] < 80
    assert all(json.loads(line) for line in log.read_text().splitlines())


def test_dfs_runs_here_and_systematic_searches_neither_resume_nor_start(
    user: ModuleType, tmp_path: Path
) -> None:
    ref = f"{user.__name__}:lost_update"
    with pytest.raises(InvalidArgument, match="dfs runs in this process: use --chooser dpor"):
        check(ref, chooser="dfs", executor=InlineExecutor())
    for chooser in ("dfs", "dpor"):
        with pytest.raises(InvalidArgument, match=f"{chooser} cannot start=10: a run log"):
            check(ref, chooser=chooser, start=10)
        with pytest.raises(InvalidArgument, match=f"{chooser} cannot resume: a run log"):
            check(ref, chooser=chooser, resume=tmp_path / "run.log")
    assert not (tmp_path / "run.log").exists()
    # dpor itself distributes (tests/explore/test_dpor_distributed.py).
    assert check(ref, chooser="dpor", executor=InlineExecutor()).failure is not None


def test_the_cli_says_dfs_does_not_distribute_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["explore", "classic:lost-update", "--chooser", "dfs", "--cluster", "local:2"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "odp-async: error: dfs runs in this process: use --chooser dpor (split into "
        "subtrees), portfolio, random or pct on an executor"
    )
    code = main(["explore", "classic:lost-update", "--chooser", "dpor", "--resume", "x.log"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("odp-async: error: dpor cannot resume: a run log")
    assert "\n" not in err


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("local:0", "local:N needs a positive number of workers, got 'local:0'"),
        ("local:x", "local:N needs a positive number of workers"),
        ("somewhere", "unknown cluster 'somewhere'; expected local:N"),
        ("tcp:", "unknown cluster 'tcp:'"),
        ("tcp://host:99999", "'tcp://host:99999': port '99999' is not a number from 1 to 65535"),
        ("tcp://host:0", "port '0' is not a number from 1"),
        ("tcp://host:0065536", "port '0065536' is not"),
        ("tcp://host:8786/x", "port '8786/x' is not"),
        ("tls://[::1]:70000", "port '70000' is not"),
        ("tcp://host", "'tcp://host' names no port"),
        ("tcp://[::1]", "names no port"),
        ("tcp://:8786", "'tcp://:8786' names no host"),
        ("tcp://a b:1", "'a b' is not a host name or IP address"),
        ("tcp://[zz]:1", "'zz' is not an IPv6 address"),
        ("tcp://::1:8786", r"an IPv6 host goes in brackets \(tcp://\[::1\]:8786\)"),
    ],
)
def test_a_bad_cluster_is_one_line(where: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        cluster_executor(where)


@pytest.mark.parametrize(
    "where",
    ["tcp://127.0.0.1:8786", "tcp://[::1]:1", "tls://sched-1.example.org:65535", "ws://h_2:80"],
)
def test_a_well_formed_scheduler_address_passes_the_check(where: str) -> None:
    from odp_async.explore.executors import _check_address

    _check_address(where, where.partition("://")[2])  # no error: Dask is asked


def test_user_modules_are_those_of_references_only() -> None:
    assert user_modules(Target.resolve("registration-race", "odp2014").spec()) == []
    assert user_modules(Target.resolve("classic:lost-update").spec()) == []
    assert user_modules(Target.resolve("odp_async.scenarios.classic:lost_update").spec()) == [
        "odp_async.scenarios.classic"
    ]


def test_chunks_are_sized_from_the_measured_cost() -> None:
    sizer = runner._Sizer(overhead=0.005, window=4)
    assert sizer.size(remaining=10_000) == 1  # no cost known yet: one schedule
    sizer.observe(ran=1, elapsed=0.001)
    # overhead at most 2% of a chunk: 0.25 s of 1 ms schedules
    assert sizer.size(remaining=100_000) == 250
    assert sizer.size(remaining=800) == 100  # the tail is shared among the workers
    sizer.observe(ran=10, elapsed=10.0)  # slow schedules: a chunk is at most ~1 s
    assert sizer.size(remaining=100_000) == 1


MISSING_DASK = """
import sys
sys.modules["distributed"] = None  # as if the extra were not installed
from odp_async.cli import main
sys.exit(main(["explore", "classic:lost-update", "--cluster", "local:2"]))
"""


def test_a_missing_extra_is_one_line_naming_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", MISSING_DASK], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"odp-async: error: {CLUSTER_EXTRA_HINT}"
    assert "pip install 'odp_async[cluster]'" in proc.stderr


def test_systematic_choosers_run_here_whatever_jobs_says() -> None:
    """jobs=2 needs no re-importable target for dpor (its subtrees then run in this
    process); dfs, whose tree is always walked here, refuses jobs=2 rather than ignore it
    (trial 19a f3)."""

    async def local() -> None:  # a closure: no other process could rebuild it
        pass

    result = check(local, chooser="dpor", jobs=2, schedules=5)
    assert result.failure is None
    assert result.complete
    with pytest.raises(InvalidArgument, match=r"jobs=2 is for chooser .*'dfs' ignores it"):
        check(local, chooser="dfs", jobs=2, schedules=5)
