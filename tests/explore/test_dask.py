"""Exploration on a Dask LocalCluster whose workers are threads of this process: the same
failures, tokens and counts as one process and as the process pool; a scenario file and
a user function; cancellation on the first failure; streamed progress; the matrix."""

from __future__ import annotations

import shutil
from collections.abc import Hashable, Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests._usermod import lost_update_source
from tests.conftest import UserModule
from tests.explore._same import same

distributed = pytest.importorskip("distributed")

from odp_async.errors import ExploreInterrupted  # noqa: E402
from odp_async.explore import ProgressUpdate, check, explore, runner  # noqa: E402
from odp_async.explore.dask_executor import DaskExecutor  # noqa: E402
from odp_async.explore.executors import ProcessExecutor  # noqa: E402
from odp_async.explore.matrix import verdict_matrix  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

USER_MODULE = lost_update_source("a", "b", "c")


@pytest.fixture(scope="module")
def dask() -> Iterator[DaskExecutor]:
    with DaskExecutor.local(2, processes=False, dashboard=False) as executor:
        yield executor  # type: ignore[misc]


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_dask")


@pytest.mark.parametrize("chooser", ["random", "pct"])
def test_dask_finds_what_one_process_and_the_pool_find(dask: DaskExecutor, chooser: str) -> None:
    kw = {"chooser": chooser, "schedules": 400, "seed": 4, "stop_on_first": False}
    kw["shrink"] = False
    one = explore("registration-race", "odp2014", **kw)
    with ProcessExecutor(2) as pool:
        two = explore("registration-race", "odp2014", executor=pool, **kw)
    on_dask = explore("registration-race", "odp2014", executor=dask, **kw)
    same(one, two)
    same(one, on_dask)
    workers = set(dask.client.nthreads())
    assert set(on_dask.per_worker) <= workers
    assert sum(on_dask.per_worker.values()) == 400
    assert on_dask.executor.startswith("Dask cluster at ")


def test_a_scenario_file_on_dask(dask: DaskExecutor, tmp_path: Path) -> None:
    path = tmp_path / "race.toml"
    shutil.copy(EXAMPLES / "registration-race.toml", path)
    kw = {"chooser": "pct", "schedules": 300, "seed": 1, "stop_on_first": False, "shrink": False}
    one = explore(str(path), "odp2014", **kw)
    on_dask = explore(str(path), "odp2014", executor=dask, **kw)
    same(one, on_dask)


def test_a_user_function_on_dask(dask: DaskExecutor, user: ModuleType) -> None:
    ref = f"{user.__name__}:lost_update"
    one = check(ref, schedules=400, seed=9, stop_on_first=False, shrink=False)
    on_dask = check(ref, schedules=400, seed=9, stop_on_first=False, shrink=False, executor=dask)
    same(one, on_dask)
    # the first failure, shrunk: the same token whatever ran it
    a = check(ref, schedules=400, seed=9)
    b = check(ref, schedules=400, seed=9, executor=dask)
    assert a.failure is not None
    assert b.failure is not None
    assert (a.failure.index, a.failure.shrunk_token) == (b.failure.index, b.failure.shrunk_token)


def test_the_first_failure_cancels_the_outstanding_futures(
    dask: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancelled: list[Hashable] = []
    cancel = dask.cancel

    def spy(keys: Iterable[Hashable]) -> None:
        keys = list(keys)
        cancelled.extend(keys)
        cancel(keys)

    monkeypatch.setattr(dask, "cancel", spy)
    kw = {"chooser": "random", "schedules": 100_000, "seed": 0, "shrink": False}
    one = explore("registration-race", "odp2014", **kw)
    on_dask = explore("registration-race", "odp2014", executor=dask, **kw)
    assert one.failure is not None
    assert on_dask.failure is not None
    assert (on_dask.failure.index, on_dask.failure.token) == (one.failure.index, one.failure.token)
    assert on_dask.schedules < 100_000
    assert cancelled  # chunks past the failure were in flight, and were cancelled
    assert not dask._futures  # nothing of the run is left outstanding


def test_progress_streams_from_the_futures(
    dask: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)
    seen: list[ProgressUpdate] = []
    # A cell whose dpor member does not complete within the budget (fault-vs-munmap's
    # 30 traces do: the chunks past that point are then taken out, and `done` drops).
    result = explore(
        "exit-during-faults",
        "kvm-seq",
        schedules=300,
        executor=dask,
        progress=seen.append,
    )
    assert result.failure is None
    done = [u.done for u in seen]
    assert done == sorted(done)
    assert len(set(done)) > 2  # several chunks reported as they finished
    assert done[-1] == 300
    assert {u.total for u in seen} == {300}


def test_the_matrix_on_dask_is_the_matrix(dask: DaskExecutor) -> None:
    kw = {"budget": 40, "scenarios": ["registration-race"], "protocols": ["odp2014", "kvm-seq"]}
    here = verdict_matrix(**kw)  # type: ignore[arg-type]
    seen: list[str] = []
    there = verdict_matrix(executor=dask, on_cell=lambda c: seen.append(c.protocol), **kw)  # type: ignore[arg-type]
    assert [(c.verdict, c.schedules, c.token) for c in here] == [
        (c.verdict, c.schedules, c.token) for c in there
    ]
    assert sorted(seen) == ["kvm-seq", "odp2014"]


def test_runs_on_one_executor_never_share_a_task(
    dask: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[distributed.Future] = []  # futures kept alive: the scheduler keeps their keys
    submit = dask.client.submit

    def keep(*args: object, **kwargs: object) -> distributed.Future:
        future = submit(*args, **kwargs)  # type: ignore[arg-type]
        held.append(future)
        return future

    monkeypatch.setattr(dask.client, "submit", keep)
    kw = {"schedules": 200, "stop_on_first": False, "shrink": False}
    for seed in (1, 2):
        one = explore("registration-race", "odp2014", seed=seed, **kw)
        on_dask = explore("registration-race", "odp2014", seed=seed, executor=dask, **kw)
        assert (on_dask.schedules, on_dask.failing) == (one.schedules, one.failing)
    assert len({f.key for f in held}) == len(held)


def test_an_interrupted_dask_run_resumes_from_its_log(
    dask: DaskExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)
    kw = {"chooser": "pct", "schedules": 400, "seed": 4, "stop_on_first": False, "shrink": False}
    whole = explore("registration-race", "odp2014", **kw)

    def ctrl_c(update: ProgressUpdate) -> None:
        if update.done >= 50:
            raise KeyboardInterrupt  # as Ctrl-C does, while futures are outstanding

    log = tmp_path / "run.log"
    with pytest.raises(ExploreInterrupted):
        explore("registration-race", "odp2014", executor=dask, resume=log, progress=ctrl_c, **kw)
    assert not dask._futures  # the outstanding futures were cancelled
    resumed = explore("registration-race", "odp2014", executor=dask, resume=log, **kw)
    same(whole, resumed)
    assert 50 <= resumed.per_worker["resumed"] < 400
