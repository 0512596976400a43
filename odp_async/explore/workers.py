"""Worker processes that die with their parent: one pipe each, SIGINT left to the parent.

Contract
    `serve_requests(conn, handle)` is a worker's loop: it ignores SIGINT (Ctrl-C is the
    parent's), receives requests and sends back ``("ok", handle(request))`` or
    ``("error", exception)`` until told to stop (None) or the pipe reaches EOF.  While it
    computes, a watcher thread ends the process (``os._exit``) as soon as its parent is
    gone, so a worker never outlives a killed parent.

Concurrency
    Blocking.  The processes themselves are started and stopped by
    `odp_async.explore.executors.ProcessExecutor`.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ..errors import InternalError

__all__ = ["PARENT_POLL", "picklable", "serve_requests"]

#: Seconds between two checks, in a worker, that its parent is still alive.
PARENT_POLL = 0.2


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
