"""Defects a new-user trial (trial 14) found: dfs's symmetry reduction claiming a clean,
complete search over real bugs of identical workers; a replay token for a big int
argument that replay refused; README claims about the matrix and ``--json``; long reprs in
one-line errors; `RWLock` context managers read as predicates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import odp_async as oa
from odp_async._runtime import sim
from odp_async.explore import explore
from odp_async.explore.dfs import DfsChooser

from .._usermod import pythonpath_env, write_user_module
from ..conftest import UserModule

# --- 1. dfs symmetry merges only tasks that have not started ----------------------------

# Identical workers (same function, same arguments) whose locals come from shared state:
# each program has a real bug that needs the two workers told apart.
SYMMETRY_PROGRAMS = """
from odp_async import Mutex, checkpoint, task_group
from odp_async.explore import SharedCell
from odp_async.scenarios import Scenario


async def identical_workers_queue():
    jobs = [0, 1]
    results = []

    async def worker():
        while jobs:
            job = jobs.pop(0)
            await checkpoint("process")
            results.append(job)

    async with task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
    assert results == [0, 1], results


async def ticket_order():
    st = {"next": 0, "order": []}

    async def w():
        me = st["next"]
        st["next"] += 1
        await checkpoint()
        st["order"].append(me)

    async with task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    assert st["order"] != [1, 0], st["order"]


async def identical_workers_locked_ticket():
    m = Mutex("m")
    st = {"next": 0}
    out = []

    async def worker():
        async with m:
            me = st["next"]
            st["next"] += 1
        await checkpoint()
        out.append(me)

    async with task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
    assert out == sorted(out), out


async def ticket_order_sharedcell():
    nxt = SharedCell(0, "next")
    order = SharedCell((), "order")

    async def w():
        me = nxt.get()
        nxt.set(me + 1)
        await checkpoint()
        order.set(order.get() + (me,))

    async with task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    assert order.get() != (1, 0), order.get()


ticket_order_noted = Scenario(
    name="ticket_order_noted",
    summary="identical ticket takers, shared state in cells",
    body=ticket_order_sharedcell,
    actors=("w", "w"),
    needs_world=False,
    noted_only=True,
)


async def locked_counter():
    m = Mutex("m")
    st = {"n": 0}

    async def worker():
        async with m:
            st["n"] += 1

    async with task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
    assert st["n"] == 4
"""

BUGGY = [
    "identical_workers_queue",
    "ticket_order",
    "identical_workers_locked_ticket",
    "ticket_order_sharedcell",
    "ticket_order_noted",
]


@pytest.mark.parametrize("name", BUGGY)
def test_dfs_finds_the_bugs_of_identical_workers(user_module: UserModule, name: str) -> None:
    mod = user_module(SYMMETRY_PROGRAMS, "sym")
    result = explore(getattr(mod, name), chooser="dfs", schedules=1000)
    assert result.failure is not None, result.claim
    assert "no violation" not in result.claim
    # The reduced search finds what the unreduced one finds.
    full = explore(getattr(mod, name), chooser="dfs", schedules=1000, reduction=False)
    assert full.failure is not None


def test_symmetry_still_prunes_unstarted_identical_tasks(user_module: UserModule) -> None:
    mod = user_module(SYMMETRY_PROGRAMS, "sym")
    with_symmetry = explore(mod.locked_counter, chooser="dfs", schedules=5000)
    without = explore(mod.locked_counter, chooser="dfs", schedules=5000, symmetry=False)
    assert with_symmetry.complete
    assert without.complete
    assert with_symmetry.failure is None
    assert without.failure is None
    assert with_symmetry.schedules < without.schedules


def test_symmetry_does_not_merge_tasks_the_program_can_tell_apart_by_name() -> None:
    seen: list[str] = []

    async def program() -> None:
        async def w(tag: object) -> None:
            seen.append(oa.task_name(oa.current_task()))

        async with oa.task_group() as tg:
            tg.start_soon(w, None, name="a")
            tg.start_soon(w, None, name="b")

    ex = explore_outcomes(program, seen)
    assert ex == {("a", "b"), ("b", "a")}


def explore_outcomes(program: object, seen: list[str]) -> set[tuple[str, ...]]:
    chooser = DfsChooser()
    outcomes = set()
    while chooser.has_more:
        seen.clear()
        sim.run(program, chooser=chooser)  # type: ignore[arg-type]
        outcomes.add(tuple(seen))
    return outcomes


@pytest.mark.parametrize("name", BUGGY)
def test_cli_dfs_finds_the_bugs_of_identical_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    mod = write_user_module(tmp_path, SYMMETRY_PROGRAMS, "symcli", monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{mod}:{name}", "--chooser", "dfs"],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "found" in proc.stdout
    assert "no violation" not in proc.stdout


PYTEST_USER_TEST = """
from odp_async import checkpoint, task_group
from odp_async.explore.testing import explore_test


@explore_test(schedules=500)
async def test_identical_workers_keep_order():
    jobs = [0, 1]
    results = []

    async def worker():
        while jobs:
            job = jobs.pop(0)
            await checkpoint("process")
            results.append(job)

    async with task_group() as tg:
        tg.start_soon(worker)
        tg.start_soon(worker)
    assert results == [0, 1], results
"""


def test_pytest_plugin_with_dfs_fails_the_buggy_test(tmp_path: Path) -> None:
    (tmp_path / "test_sym_user.py").write_text(PYTEST_USER_TEST)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--odp-chooser=dfs"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout


# --- 2. a token the encoder issues, the decoder reads -----------------------------------

BIG_ARGS = """
from odp_async import checkpoint, task_group


async def two_deposits(amount, who=("alice", "bob")):
    account = {"balance": 0}

    async def deposit():
        seen = account["balance"]
        await checkpoint("read balance")
        account["balance"] = seen + amount

    async with task_group() as tg:
        for w in who:
            tg.start_soon(deposit, name=w)
    assert account["balance"] == len(who) * amount, f"lost deposit: {account['balance']}"


async def fails_with(value):
    await checkpoint()
    assert value is None, "always fails"
"""


def test_the_token_of_a_big_int_argument_replays_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from odp_async.explore import check, decode_token

    name = write_user_module(tmp_path, BIG_ARGS, "bigarg", monkeypatch)
    result = check(f"{name}:two_deposits", 10**30, schedules=200)
    assert result.failure is not None
    token = result.failure.token
    assert token is not None
    assert decode_token(token).args == (10**30,)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "replay", token],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # the violation, reproduced
    assert "malformed" not in proc.stderr
    assert "lost deposit" in proc.stdout


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (2**5000, "an int of 5001 bits, and a token carries ints of at most 4096 bits"),
        (float("inf"), "not plain JSON values"),
    ],
)
def test_arguments_a_token_cannot_carry_get_no_token_and_say_why(
    user_module: UserModule, value: object, why: str
) -> None:
    from odp_async.explore import check

    mod = user_module(BIG_ARGS, "bigarg")
    result = check(mod.fails_with, value, schedules=5)
    assert result.failure is not None
    assert result.failure.token is None
    assert why in (result.failure.no_token or "")


def test_the_largest_int_a_token_carries_round_trips(user_module: UserModule) -> None:
    from odp_async.explore import check, decode_token, replay
    from odp_async.explore.target import MAX_ARG_INT_BITS

    mod = user_module(BIG_ARGS, "bigarg")
    big = -(2**MAX_ARG_INT_BITS - 1)
    result = check(mod.fails_with, [big], schedules=5)
    assert result.failure is not None
    assert result.failure.token is not None
    assert decode_token(result.failure.token).args == ([big],)
    assert replay(result.failure.token).failure is not None


# --- 3a. matrix --chooser random runs explore --chooser random's schedules ---------------


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("protocol", ["naive", "odp2014"])
def test_a_random_matrix_cell_finds_what_explore_finds_with_the_same_seed(
    protocol: str, seed: int
) -> None:
    from odp_async.explore.matrix import explore_cell

    cell = explore_cell("registration-race", protocol, 300, seed, chooser="random")
    ran = explore("registration-race", protocol, chooser="random", seed=seed, schedules=300)
    assert ran.failure is not None
    assert cell.first_hit == ran.failing[0]
    assert f"violation at schedule {ran.failing[0]}:" in cell.claim


def test_cli_random_matrix_and_explore_agree_in_fresh_processes(tmp_path: Path) -> None:
    import json

    def cli(*argv: str) -> dict[str, object]:
        proc = subprocess.run(
            [sys.executable, "-m", "odp_async.cli", *argv, "--json"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert proc.returncode in (0, 1), proc.stderr
        data: dict[str, object] = json.loads(proc.stdout)
        return data

    matrix = cli(
        "matrix", "--scenario", "registration-race", "-p", "naive", "--budget", "300",
        "--chooser", "random",
    )  # fmt: skip
    explored = cli(
        "explore", "registration-race", "-p", "naive", "--chooser", "random", "--seed", "0",
        "--schedules", "300",
    )  # fmt: skip
    cells = matrix["cells"]
    assert isinstance(cells, list)
    failing = explored["failing"]
    assert isinstance(failing, list)
    assert cells[0]["schedules_to_first"] == failing[0]
    assert cells[0]["claim"] == explored["claim"]


# --- 3b. --json and the API say which run each token replays ---------------------------

LOST_UPDATE = """
from odp_async import checkpoint, task_group


async def lost_update():
    st = {"x": 0}

    async def w():
        v = st["x"]
        await checkpoint()
        st["x"] = v + 1

    async with task_group() as tg:
        tg.start_soon(w)
        tg.start_soon(w)
    assert st["x"] == 2, st
"""


def test_json_failure_names_the_shrunk_and_the_found_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from odp_async.explore import decode_token

    name = write_user_module(tmp_path, LOST_UPDATE, "jsontok", monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", f"{name}:lost_update", "--json"],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    failure = json.loads(proc.stdout)["failure"]
    assert failure["shrunk"]
    # the run the failure describes: replay_token (the shrunk one)
    assert failure["replay_token"] == failure["shrunk_token"]
    shown = decode_token(failure["replay_token"])
    assert (shown.kind, shown.step) == (failure["kind"], failure["step"])
    # the run as found: found_token (and `token`, its older name)
    assert failure["found_token"] == failure["token"] != failure["replay_token"]
    found = decode_token(failure["found_token"])
    assert found.step == failure["found_step"]
    assert found.schedule != shown.schedule
    before, after = failure["preemptions"]
    assert before > after  # [as found, shrunk]


def test_api_failure_replay_token_is_the_shown_run(user_module: UserModule) -> None:
    from odp_async.explore import check, decode_token

    mod = user_module(LOST_UPDATE, "apitok")
    result = check(mod.lost_update, schedules=50)
    failure = result.failure
    assert failure is not None
    assert failure.shrunk is not None
    assert failure.replay_token == failure.shrunk_token
    assert decode_token(failure.replay_token).schedule == failure.shrunk.schedule
    assert decode_token(failure.token).schedule == failure.schedule  # type: ignore[arg-type]
    assert f"replay: odp-async replay {failure.replay_token}" in failure.describe()
    unshrunk = check(mod.lost_update, schedules=50, shrink=False).failure
    assert unshrunk is not None
    assert unshrunk.replay_token == unshrunk.token


# --- 4a. a one-line error shows a long repr cut short ------------------------------------

TABLE_MODULE = """
async def lost_update():
    pass

PROGS = {f"program_{i}": (lost_update, i % 2 == 0) for i in range(60)}
"""


@pytest.mark.parametrize(
    "argv",
    [["explore", "{mod}:PROGS"], ["explore", "registration-race", "-p", "{mod}:PROGS"]],
)
def test_cli_error_naming_a_big_object_stays_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    name = write_user_module(tmp_path, TABLE_MODULE, "table", monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *(a.format(mod=name) for a in argv)],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{name}:PROGS" in proc.stderr
    assert "(a dict" in proc.stderr
    assert "program_59" not in proc.stderr
    assert len(proc.stderr) < 400, proc.stderr


# --- 4b. RWLock's context managers are not predicates -----------------------------------

RW_MODULE = """
from odp_async import RWLock, checkpoint, task_group


async def writes_if_locked():
    rw = RWLock("rw")
    if rw.write_locked():  # meant: is it write-held?
        await checkpoint()


async def reads_if_locked():
    rw = RWLock("rw")
    if rw.read_locked():
        await checkpoint()


async def holds_it_properly():
    rw = RWLock("rw")
    async with rw.write_locked():
        assert rw.writer is not None
    async with rw.read_locked():
        assert rw.readers
"""


@pytest.mark.parametrize(
    ("program", "use"),
    [
        ("writes_if_locked", "async with lock.write_locked():"),
        ("reads_if_locked", "async with lock.read_locked():"),
    ],
)
def test_rwlock_context_manager_taken_as_a_bool_raises(
    user_module: UserModule, program: str, use: str
) -> None:
    from odp_async.explore import check

    mod = user_module(RW_MODULE, "rwbool")
    result = check(getattr(mod, program), schedules=5)
    assert result.failure is not None
    text = result.failure.describe()
    assert "TypeError" in text
    assert use in text
    assert check(mod.holds_it_properly, schedules=5).failure is None


def test_rwlock_context_managers_refuse_bool_outside_any_run() -> None:
    rw = oa.RWLock("rw")
    with pytest.raises(TypeError, match="not a predicate"):
        bool(rw.write_locked())
    with pytest.raises(TypeError, match="not a predicate"):
        bool(rw.read_locked())
