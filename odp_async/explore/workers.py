"""Worker processes that die with their parent: one pipe each, SIGINT left to the parent.

Contract
    `start_workers(jobs, serve, args)` starts `jobs` processes (fork where available, else
    spawn), each running ``serve(conn, *args)`` with its own end of a pipe; it returns
    ``(process, parent_end)`` pairs.  `stop_workers` terminates them at once, whatever they
    are doing, and reaps them (kill after 2 s), so it never blocks on a busy worker.

    `serve_requests(conn, handle)` is a worker's loop: it ignores SIGINT (Ctrl-C is the
    parent's), receives requests and sends back ``("ok", handle(request))`` or
    ``("error", exception)`` until told to stop (None) or the pipe reaches EOF.  While it
    computes, a watcher thread ends the process (``os._exit``) as soon as its parent is
    gone, so a worker never outlives a killed parent.

Concurrency
    Blocking; the parent polls the parent ends (`multiprocessing.connection.wait`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..errors import InternalError

__all__ = ["PARENT_POLL", "Worker", "serve_requests", "start_workers", "stop_workers"]

#: Seconds between two checks, in a worker, that its parent is still alive.
PARENT_POLL = 0.2

Worker = tuple[multiprocessing.process.BaseProcess, Connection]


def start_workers(jobs: int, serve: Callable[..., None], args: tuple[Any, ...]) -> list[Worker]:
    """`jobs` worker processes running ``serve(conn, *args)``, each with its own pipe."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    workers: list[Worker] = []
    for _ in range(jobs):
        parent, child = context.Pipe()
        process: multiprocessing.process.BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=serve, args=(child, *args), daemon=True
        )
        process.start()
        child.close()
        workers.append((process, parent))
    return workers


def stop_workers(workers: list[Worker]) -> None:
    """Terminate every worker now, whatever it is doing, and reap it."""
    for process, _ in workers:
        if process.is_alive():
            process.terminate()
    for process, conn in workers:
        process.join(timeout=2)
        if process.is_alive():
            process.kill()
            process.join()
        conn.close()


def serve_requests(conn: Connection, handle: Callable[[Any], Any]) -> None:
    """A worker's loop (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(os.getppid())
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        try:
            conn.send(("ok", handle(request)))
        except Exception as e:
            conn.send(("error", picklable(e)))


def picklable(error: Exception) -> Exception:
    """`error` if it can cross the pipe, else an `InternalError` describing it."""
    try:
        pickle.dumps(error)
    except Exception:
        return InternalError(f"a worker process failed: {type(error).__name__}: {error}")
    return error


def _watch_parent(parent: int) -> None:
    """End this process once `parent` is gone (this process is then re-parented)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=watch, name="odp-async-parent-watch", daemon=True).start()
