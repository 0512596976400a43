"""A step that never returns stops the search inconclusive, never a silent hang.

New-user trial 20c, f5: ``odp-async explore mod:fn --time 3`` on a function that never
reaches a checkpoint (``while True: pass``) or blocks in a synchronous call
(``time.sleep(10**6)``, a queue, an event) hung forever with no output; ``--time`` did not
stop it.  The sim cannot preempt code between checkpoints, so a watchdog
(`odp_async._runtime.stall`) interrupts a step that has not returned after ``--stall``
seconds: the search ends inconclusive (exit 5) with one line naming the task, the step
and where it is stuck; never a violation, never a pass.  ``run --timeout`` no longer
sends such a program to the explorer as "a deadlock".

User modules in tmp_path, each CLI and API use in a fresh process.  A tiny stall limit
(0.5 s); nothing asserts on durations, only that the watchdog fires at all.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import InvalidArgument
from odp_async.explore import ExploreConfig
from odp_async.explore.config import STALL_GRACE
from tests._usermod import pythonpath_env

MODULE = "s18_stalls"

PROGRAMS = """\
import multiprocessing
import queue
import sys
import threading
import time

import odp_async as oa
from odp_async.explore import SharedCell


async def spins():
    while True:
        pass  # stall: spins


async def sleeps():
    time.sleep(10**6)  # stall: sleeps


async def queue_get():
    queue.SimpleQueue().get()  # stall: queue_get


async def event_wait():
    threading.Event().wait()  # stall: event_wait


async def _child(box):
    await oa.checkpoint()
    box.append(1)


async def stalls_after_steps():
    box = []
    async with oa.task_group() as tg:
        tg.start_soon(_child, box)
        tg.start_soon(_child, box)
    time.sleep(10**6)  # stall: stalls_after_steps


async def stalls_in_workers():
    box = []
    async with oa.task_group() as tg:
        tg.start_soon(_child, box)
        tg.start_soon(_child, box)
    if multiprocessing.parent_process() is not None:  # not in the parent's probes
        sys.stderr.write("stalling in a worker process\\n")
        time.sleep(10**6)  # stall: stalls_in_workers


async def wraps_the_interrupt():
    try:
        time.sleep(10**6)  # stall: wraps_the_interrupt
    except BaseException as e:
        raise RuntimeError("wrapped") from e


async def spins_on_a_flag():
    flag = SharedCell(False, "flag")

    async def waiter():
        while not flag.get():
            pass  # stall: spins_on_a_flag

    async def setter():
        await oa.checkpoint()
        flag.set(True)

    async with oa.task_group() as tg:
        tg.start_soon(waiter)
        tg.start_soon(setter)


async def spins_unless_set_first():
    flag = SharedCell(False, "flag")

    async def waiter():
        while not flag.get():
            pass  # stall: spins_unless_set_first

    async def setter():
        flag.set(True)

    async with oa.task_group() as tg:
        tg.start_soon(setter)
        tg.start_soon(waiter)


async def fine():
    box = []
    async with oa.task_group() as tg:
        tg.start_soon(_child, box)
        tg.start_soon(_child, box)
    assert len(box) == 2
"""

#: The lines of each stalling statement in PROGRAMS, by function (a loop's jump back may
#: be told as its ``while`` line, the one before).
LINES = {
    line.rpartition("# stall: ")[2]: (n - 1, n) if "pass" in line else (n,)
    for n, line in enumerate(PROGRAMS.splitlines(), 1)
    if "# stall: " in line
}


def _write(tmp_path: Path) -> None:
    (tmp_path / f"{MODULE}.py").write_text(PROGRAMS)


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    _write(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
    )


def python(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    _write(tmp_path)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
    )


def assert_stalled_line(text: str, fn: str) -> None:
    assert "step 1 of task 'main' has not returned after" in text
    found = re.search(rf"{MODULE}\.py:(\d+) in {fn}\)", text)
    assert found is not None, text
    assert int(found[1]) in LINES[fn]
    assert "cannot preempt code between checkpoints" in text


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fn", ["spins", "sleeps", "queue_get", "event_wait"])
def test_explore_stops_a_step_that_never_returns(tmp_path: Path, fn: str) -> None:
    done = cli(
        tmp_path, "explore", f"{MODULE}:{fn}", "--schedules", "5", "--time", "3", "--stall", "0.5"
    )
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stderr
    assert f"{fn}: inconclusive - 0 schedules" in done.stdout
    assert_stalled_line(done.stdout, fn)
    assert "violation" not in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(300)
def test_explore_json_says_inconclusive_and_stalled(tmp_path: Path) -> None:
    done = cli(tmp_path, "explore", f"{MODULE}:spins", "--stall", "0.5", "--json")
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"] == "inconclusive"
    assert data["failure"] is None
    assert_stalled_line(data["stalled"], "spins")
    assert data["stalled_run"] == PROBE
    assert data["claim"].startswith(
        f"inconclusive: {PROBE} stalled (0 schedules ended before it): step 1 of task 'main'"
    )


#: The run a stall names when pct or the portfolio sizes its search, before any schedule.
PROBE = "a probe run before the first schedule"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("program", "chooser", "run", "ended"),
    [
        # the FIFO schedule runs the waiter first: the run before the search stalls
        ("spins_on_a_flag", "random", PROBE, 0),
        ("spins_on_a_flag", "dfs", PROBE, 0),
        ("spins_on_a_flag", "dpor", PROBE, 0),
        ("spins_on_a_flag", "portfolio", PROBE, 0),
        # the FIFO schedule runs the setter first: a schedule of the search stalls
        ("spins_unless_set_first", "random", "schedule 1", 0),  # (seed 0: waiter first)
        ("spins_unless_set_first", "dfs", "schedule 2", 1),
        ("spins_unless_set_first", "dpor", "schedule 2", 1),
    ],
)
def test_a_stall_names_the_run_that_stalled(
    tmp_path: Path, program: str, chooser: str, run: str, ended: int
) -> None:
    # New-user report: a stalled search said "0 schedules (0 steps)", as if nothing ran.
    # It says which run stalled (the step is in the stall line) and what ended before.
    argv = ("explore", f"{MODULE}:{program}", "--stall", "0.5", "--chooser", chooser)
    done = cli(tmp_path, *argv)
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    head, claim = done.stdout.splitlines()[:2]
    ran = f"{ended} schedule{'' if ended == 1 else 's'}"
    assert head.startswith(f"{program}: inconclusive - {ran} ended, {run} stalled ("), head
    data = json.loads(cli(tmp_path, *argv, "--json").stdout)
    assert (data["stalled_run"], data["schedules"]) == (run, ended)
    assert re.match(r"step \d+ of task '[^']*waiter' has not returned", data["stalled"])
    # the same run and step as --json says (the seconds are the watchdog's, not compared)
    step = data["stalled"].split(" has not returned")[0]
    assert claim.startswith(f"inconclusive: {run} stalled ({ran} ended before it): {step} "), claim


@pytest.mark.timeout(300)
@pytest.mark.parametrize("chooser", ["portfolio", "random", "dfs"])
def test_a_wrapped_interrupt_is_never_the_programs_error(tmp_path: Path, chooser: str) -> None:
    # The program turns the watchdog's interrupt into its own RuntimeError: still the
    # watchdog's stop, never an "error" violation; and the run that stalled is named, the
    # FIFO run before the search (random and dfs named "schedule 1", which never ran).
    argv = ("explore", f"{MODULE}:wraps_the_interrupt", "--stall", "0.5", "--chooser", chooser)
    done = cli(tmp_path, *argv)
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    assert "has not returned after" in done.stdout
    assert "violation" not in done.stdout
    assert "a probe run before the first schedule stalled (0 schedules" in done.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("chooser", ["portfolio", "dfs", "dpor", "random", "pct"])
def test_a_stall_after_some_steps_under_every_chooser(tmp_path: Path, chooser: str) -> None:
    done = cli(
        tmp_path, "explore", f"{MODULE}:stalls_after_steps", "--stall", "0.5", "--chooser", chooser
    )
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    assert re.search(r"step [2-9] of task 'main' has not returned after", done.stdout)
    assert f"{MODULE}.py:{LINES['stalls_after_steps'][0]} in stalls_after_steps" in done.stdout
    assert "violation" not in done.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("chooser", ["random", "dpor"])
def test_a_worker_process_stops_its_stalled_step_too(tmp_path: Path, chooser: str) -> None:
    done = cli(
        tmp_path,
        "explore",
        f"{MODULE}:stalls_in_workers",
        "--stall",
        "0.5",
        "--chooser",
        chooser,
        "--jobs",
        "2",
        "--schedules",
        "500",  # at least SERIAL_BELOW: worker processes
    )
    assert "stalling in a worker process" in done.stderr
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    assert "of task 'main' has not returned after" in done.stdout
    assert "in stalls_in_workers)" in done.stdout
    assert "violation" not in done.stdout


SCRIPT = f"""
import signal

import odp_async.explore as ox
from odp_async.errors import ExplorationInconclusive
import {MODULE} as m

result = ox.check(m.sleeps, schedules=5, stall=0.5)
print("inconclusive", result.inconclusive, "failure", result.failure)
print("stalled", result.stalled)
print("claim", result.claim)
try:
    ox.check(m.spins, schedules=5, stall=0.5, raise_on_failure=True)
except ExplorationInconclusive as e:
    print("raised", type(e).__name__, e)
# nothing left behind: the handler is back, a later search is unaffected
print("handler", signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL)
after = ox.check(m.fine, schedules=20, stall=0.5)
print("after", after.verdict, after.inconclusive, after.stalled, after.schedules)
"""


@pytest.mark.timeout(300)
def test_the_api_result_is_inconclusive_and_leaves_nothing_behind(tmp_path: Path) -> None:
    done = python(tmp_path, SCRIPT)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "inconclusive True failure None" in out
    assert_stalled_line(out.split("stalled ", 1)[1].split("\n", 1)[0], "sleeps")
    assert f"claim inconclusive: {PROBE} stalled (0 schedules ended before it): step 1" in out
    assert f"raised ExplorationInconclusive spins: inconclusive: {PROBE} stalled" in out
    assert "handler True" in out
    assert "after clean False None 20" in out


THREAD_SCRIPT = f"""
import sys
import threading

import odp_async.explore as ox
import {MODULE} as m

release = threading.Event()


async def waits():
    release.wait()  # blocks the step until the watchdog has spoken
    release.clear()  # as it was: each run starts from the same state


class Err:
    def write(self, text):
        sys.__stderr__.write(text)
        if "stalled:" in text:
            release.set()

    def flush(self):
        pass


sys.stderr = Err()
out = []
t = threading.Thread(target=lambda: out.append(ox.check(waits, schedules=3, stall=0.5)))
t.start()
t.join()
print("result", out[0].verdict, out[0].stalled)
"""


@pytest.mark.timeout(300)
def test_off_the_main_thread_the_stall_is_told_on_stderr(tmp_path: Path) -> None:
    # No signal can reach another thread: the watchdog writes the line; the step, once
    # it returns, is a real run and its verdict stands.
    done = python(tmp_path, THREAD_SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "odp-async: stalled: step 1 of task 'main' has not returned after" in done.stderr
    assert "in waits" in done.stderr
    assert "result clean None" in done.stdout


@pytest.mark.timeout(300)
def test_a_normal_program_is_unaffected_by_the_default(tmp_path: Path) -> None:
    done = cli(tmp_path, "explore", f"{MODULE}:fine", "--schedules", "50", "--json")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"] == "clean"
    assert data["stalled"] is None
    assert ExploreConfig().stall == 60.0


@pytest.mark.parametrize("value", [0, -1, True, "5", float("nan"), float("inf")])
def test_a_bad_stall_is_refused(value: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^stall must be"):
        ExploreConfig(stall=value)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_bad_stall_option_is_one_line(tmp_path: Path, value: str) -> None:
    done = cli(tmp_path, "explore", f"{MODULE}:fine", "--stall", value)
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.strip().splitlines() == [
        f"odp-async: error: --stall must be a positive number of seconds (at most 2.592e+06), "
        f"got {float(value)}"
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fn", ["spins", "sleeps"])
def test_run_timeout_says_the_loop_is_blocked(tmp_path: Path, fn: str) -> None:
    done = cli(tmp_path, "run", f"{MODULE}:{fn}", "--timeout", "1")
    assert done.returncode == ExitCode.VIOLATION
    assert "its event loop is blocked at" in done.stdout
    found = re.search(rf"{MODULE}\.py:(\d+) in {fn}:", done.stdout)
    assert found is not None, done.stdout
    assert int(found[1]) in LINES[fn]
    assert "deadlock" not in done.stdout


STUCK_PROTOCOL = """\
import time
from typing import ClassVar

from odp_async.odp.protocols.interval_seq import IntervalSeq


class Stuck(IntervalSeq):
    name: ClassVar[str] = "stuck"
    summary: ClassVar[str] = "interval-seq whose invalidation blocks in time.sleep"

    async def invalidate_range_start(self, inv):
        time.sleep(10**6)  # stall: invalidate_range_start
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_matrix_cell_that_stalls_is_inconclusive(tmp_path: Path, jobs: str) -> None:
    (tmp_path / "s18_stuck.py").write_text(STUCK_PROTOCOL)
    scenarios = ["--scenario", "fault-vs-munmap"]
    if jobs == "2":  # two cells: worker processes
        scenarios += ["--scenario", "registration-race"]
    done = cli(
        tmp_path, "matrix", *scenarios, "-p", "s18_stuck:Stuck", "--stall", "0.5",
        "--budget", "20", "--jobs", jobs, "--json",
    )  # fmt: skip
    # no expectation to miss, but no verdict either: a matrix with an inconclusive cell
    # exits 5, never 0
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    cells = json.loads(done.stdout)["cells"]
    assert len(cells) == len(scenarios) // 2
    for cell in cells:
        assert cell["found"] == "inconclusive"
        assert cell["token"] is None
        assert "has not returned after" in cell["stalled"]
        assert "s18_stuck.py:12 in invalidate_range_start" in cell["stalled"]
        assert cell["claim"].startswith(f"inconclusive: {PROBE} stalled (0 schedules ended")


@pytest.mark.timeout(300)
def test_a_bad_matrix_stall_is_one_line(tmp_path: Path) -> None:
    done = cli(tmp_path, "matrix", "--scenario", "fault-vs-munmap", "--stall", "0")
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.strip().splitlines() == [
        "odp-async: error: --stall must be a positive number of seconds (at most 2.592e+06), "
        "got 0.0"
    ]


@pytest.mark.timeout(300)
def test_the_time_budget_bounds_the_stall_limit(tmp_path: Path) -> None:
    # No --stall: --time 0.5 alone ends the search at the stalled step (time + grace),
    # not after the default minute; the trial's own command line.
    done = cli(tmp_path, "explore", f"{MODULE}:sleeps", "--schedules", "5", "--time", "0.5")
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stdout + done.stderr
    assert_stalled_line(done.stdout, "sleeps")


def test_stall_limit() -> None:
    assert ExploreConfig().stall_limit == 60.0
    assert ExploreConfig(stall=None).stall_limit is None
    assert ExploreConfig(stall=None, time=3).stall_limit == 3 + STALL_GRACE
    assert ExploreConfig(time=3).stall_limit == 3 + STALL_GRACE
    assert ExploreConfig(stall=2, time=300).stall_limit == 2
