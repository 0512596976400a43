"""`odp-async matrix --jobs 2`: the worker processes die with their parent, and Ctrl-C
exits 130 promptly with the partial table (issue 9 trial, defect 1)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from odp_async.cli import ExitCode


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found.update(int(c) for c in task.read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _start_matrix() -> tuple[subprocess.Popen[bytes], bytes, set[int]]:
    """A long matrix over two workers, once its first cell line is out (an event)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "odp_async.cli", "matrix", "--budget", "100000", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    seen = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while b"cell 1/" not in seen:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                pytest.fail(f"no cell line within 60 s: {seen!r}")
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                pytest.fail(f"exited ({proc.wait()}) before a cell line: {seen!r}")
            seen += chunk
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    return proc, seen, workers


def _wait_gone(pids: set[int], within: float) -> set[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = {p for p in pids if _alive(p)}
        if not left:
            return left
        time.sleep(0.1)  # polling for an exit; no result depends on the timing
    return {p for p in pids if _alive(p)}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_on_the_main_pid_exits_130_with_the_partial_table_and_no_worker_left() -> None:
    proc, seen, workers = _start_matrix()
    try:
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)  # the main pid only, not the group
        out, err = proc.communicate(timeout=40)
        took = time.monotonic() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == ExitCode.INTERRUPTED, (out, seen + err)
    assert b"Traceback" not in err
    assert b"verdict matrix" in out  # the partial table
    assert err.rstrip().endswith(b"odp-async: interrupted")
    assert b" cells explored" in err
    assert took < 20, took  # generous under load
    assert not _wait_gone(workers, 10)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_die_when_the_main_process_is_killed() -> None:
    proc, _, workers = _start_matrix()
    try:
        os.kill(proc.pid, signal.SIGKILL)  # as a timeout would
        proc.wait(timeout=40)
        assert not _wait_gone(workers, 20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
