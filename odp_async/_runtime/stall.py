"""A watchdog for a sim step that does not return.

The sim switches tasks only at checkpoints: a step that loops with no await (``while
True: pass``) or blocks in a synchronous call (``time.sleep``, a lock, a queue) never gives
control back, and no schedule, bound or budget can stop it.  This module watches the
steps a thread drives and says so, instead of a silent hang.

Contract
    `watching_steps(limit)` is a context manager: while it is open, a daemon thread
    samples every ``limit / 4`` seconds (at most 1 s) which sim run the calling thread
    drives and at which step (`driving`).  When one step has not returned for ``limit``
    seconds it describes the stall in one line: the task, the step, the seconds, and where
    the task is (``file:line`` of its innermost frame outside the standard library, from
    `sys._current_frames`), adding that the explorer cannot preempt code between
    checkpoints.  Then:

    - in the main thread of the process, if SIGUSR1 or SIGUSR2 still has its default
      handler: it sends that signal to the main thread, whose handler (installed for the
      ``with`` only, the previous one put back on exit) raises `StepInterrupt`, a private
      `BaseException` that the sim re-raises and never takes for a task's error;
      the ``with`` then raises `StepStalled` (an `Exception` carrying the line, picklable
      for a worker process's pipe), even if the program caught the interrupt;
    - otherwise (another thread: a Dask worker, a test runner's thread; both signals
      taken): it writes the line to stderr, once per stalled step, and the step goes on.
      So does a step that caught the interrupt and still has not returned after another
      ``limit`` (it is interrupted again every ``limit``).

    Once a step was interrupted, every later sim run in the thread raises `StepInterrupt`
    before its first step until the ``with`` closes (the program may have caught the
    interrupt, or made it its own error: that run's outcome is never used).  A signal
    sent for a step that has returned meanwhile is ignored, and the ``with``
    does not close before a signal it sent has been handled, so the interrupt never
    reaches a later step, schedule or the caller.  A forked child (a worker process)
    starts with none of its parent's watches, runs or handlers.  Nested uses in one
    thread are no-ops.  ``limit=None`` watches nothing.

    `where(frame)` is that ``file:line in function`` of a thread's innermost frame.

    `halted()` says whether this thread's watch interrupted a step: the run it belonged
    to may have returned (the program caught the interrupt, or made it its own error),
    and its outcome is not to be used (the explorer's probe runs ask); `halted_line()`
    is the line of that stall (None if none).

    `drive_begins(runtime)` and `drive_ends` are the sim driver's side: the calling
    thread drives `runtime` in between.  The registry it keeps (thread id -> run) is
    read only by the watchdog; no result depends on it.

Concurrency
    Signal handlers are process-wide: installed and restored from the main thread only.
"""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from threading import get_ident
from types import FrameType
from typing import Any

__all__ = [
    "DEFAULT_STALL",
    "StepInterrupt",
    "StepStalled",
    "drive_begins",
    "drive_ends",
    "halted",
    "halted_line",
    "watching_steps",
    "where",
]

#: The default stall limit (`odp_async.explore.ExploreConfig.stall`), in seconds: far
#: beyond any step of a real program under the sim, short enough to be noticed.
DEFAULT_STALL = 60.0
#: The longest pause between two samples of the watched thread, in seconds.
MAX_POLL = 1.0
#: How long closing a watch waits for the handler of a signal it sent, in seconds.
SIGNAL_WAIT = 2.0


class StepInterrupt(BaseException):
    """Raised in a stalled step by the watchdog's signal handler: never the program's."""


class StepStalled(Exception):
    """A step did not return within the stall limit; the message is the one line."""


# thread id -> (run serial, the runtime it drives): the watchdog's only view of a run.
_DRIVING: dict[int, tuple[int, Any]] = {}
_SERIALS = count()
# Threads watched now (nested watches are no-ops).
_WATCHED: set[int] = set()
# Watched threads one of whose steps was interrupted: a program may catch the interrupt
# (or turn it into its own error) and the search go on, so every later run in the
# thread stops before its first step, until the watch closes (thread id -> the line).
_HALTED: dict[int, str] = {}


def _forget_after_fork() -> None:
    """In a forked child (a worker process): the parent's watches and runs are not its
    own (its watchdog threads are gone; the forking thread keeps its id)."""
    _DRIVING.clear()
    _WATCHED.clear()
    _HALTED.clear()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGUSR1, signal.SIGUSR2):
            handler = signal.getsignal(signum)
            if isinstance(getattr(handler, "__self__", None), _Watch):
                signal.signal(signum, signal.SIG_DFL)


def drive_begins(runtime: Any) -> tuple[int, Any] | None:
    """The calling thread starts driving `runtime` (a `SimRuntime`); returns what to
    give `drive_ends` when it stops (the run it drove before: runs may nest)."""
    tid = get_ident()
    if tid in _HALTED:  # a step was interrupted: no run starts until the watch closes
        raise StepInterrupt("a step of an earlier run stalled")
    previous = _DRIVING.get(tid)
    _DRIVING[tid] = (next(_SERIALS), runtime)
    return previous


def halted() -> bool:
    """Whether a step this thread drove was interrupted under its open watch (see the
    module docstring): no outcome of that run is the program's."""
    return get_ident() in _HALTED


def halted_line() -> str | None:
    """The line of the stall whose step this thread's watch interrupted, or None."""
    return _HALTED.get(get_ident())


def drive_ends(previous: tuple[int, Any] | None) -> None:
    """The calling thread stops driving the run `drive_begins` registered."""
    if previous is None:
        del _DRIVING[get_ident()]
    else:
        _DRIVING[get_ident()] = previous


def _progress(tid: int) -> tuple[int, int] | None:
    """(run serial, step) of the run thread `tid` drives now, or None."""
    entry = _DRIVING.get(tid)
    if entry is None:
        return None
    serial, runtime = entry
    return serial, runtime._steps


class _Watch:
    """One open `watching_steps`: its thread, and the signal state it shares."""

    def __init__(self, tid: int, limit: float, signum: int | None) -> None:
        self.tid = tid
        self.limit = limit
        self.signum = signum
        # Re-entrant: the handler may run while the main thread holds it (closing).
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.closed = False
        #: The progress key a signal was sent for, until the handler has seen it.
        self.sent: tuple[int, int] | None = None
        #: The line of every stall found, in order.
        self.stalls: list[str] = []
        #: Whether the handler raised `StepInterrupt` at least once.
        self.interrupted = False

    def run(self) -> None:
        poll = min(self.limit / 4, MAX_POLL)
        last: tuple[int, int] | None = None
        since = due = time.monotonic()
        fired: tuple[int, int] | None = None  # the step a signal interrupted last
        told: tuple[int, int] | None = None  # the step stderr was told of last
        while not self.stop.wait(poll):
            key = _progress(self.tid)
            now = time.monotonic()
            if key is None or key != last:
                last, since, due = key, now, now + self.limit
                continue
            if now < due:
                continue
            due = now + self.limit  # the program may catch the interrupt: again later
            line = self.describe(key, now - since)
            if self.signum is None or key == fired:
                # No signal to stop it with, or the program caught the interrupt and the
                # step goes on: at least the user is told, once.
                if told != key:
                    told = key
                    self.stalls.append(line)
                    caught = " (it caught the interrupt)" if key == fired else ""
                    sys.stderr.write(f"odp-async: stalled: {line}{caught}\n")
                    sys.stderr.flush()
                if self.signum is None:
                    continue
            with self.lock:
                if self.closed or self.sent is not None:
                    continue
                self.stalls.append(line)
                self.sent = fired = key
                signal.pthread_kill(self.tid, self.signum)

    def describe(self, key: tuple[int, int], seconds: float) -> str:
        entry = _DRIVING.get(self.tid)
        task = getattr(entry[1], "_current", None) if entry is not None else None
        who = f"task {task.name!r}" if task is not None else "the sim, between tasks,"
        frame = sys._current_frames().get(self.tid)
        at = f" (at {where(frame)})" if frame is not None else ""
        return (
            f"step {key[1]} of {who} has not returned after {seconds:.1f} s{at}; "
            "the explorer cannot preempt code between checkpoints (a loop with no await, "
            "or a blocking call such as time.sleep, a lock or a queue): no verdict"
        )

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        with self.lock:
            sent, self.sent = self.sent, None
        if sent is None or self.closed or _progress(self.tid) != sent:
            return  # the step returned meanwhile: nothing to interrupt
        self.interrupted = True
        _HALTED[self.tid] = self.stalls[-1]
        raise StepInterrupt(self.stalls[-1])


_STDLIB = tuple(
    os.path.normcase(os.path.realpath(p))
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_HERE = os.path.normcase(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def where(frame: FrameType) -> str:
    """``file:line in function`` of the innermost frame of `frame`'s stack outside the
    standard library, odp_async and attrs' generated methods (``<attrs generated
    ...>``; else the innermost frame)."""
    f: FrameType | None = frame
    while f is not None:
        name = f.f_code.co_filename
        if not name.startswith("<attrs generated"):
            path = os.path.normcase(os.path.realpath(name))
            library = path.startswith(_STDLIB) and "site-packages" not in path
            if not library and not path.startswith(_HERE):
                break
        f = f.f_back
    f = f or frame
    return f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}"


def _free_signal() -> int | None:
    """SIGUSR1 or SIGUSR2 if its handler is the default one, else None."""
    for signum in (signal.SIGUSR1, signal.SIGUSR2):
        if signal.getsignal(signum) is signal.SIG_DFL:
            return signum
    return None


@contextmanager
def watching_steps(limit: float | None) -> Iterator[None]:
    """Watch the steps this thread drives (see the module docstring)."""
    tid = threading.get_ident()
    if limit is None or tid in _WATCHED:
        yield
        return
    main = threading.current_thread() is threading.main_thread()
    signum = _free_signal() if main else None
    watch = _Watch(tid, limit, signum)
    if signum is not None:
        signal.signal(signum, watch.on_signal)
    _WATCHED.add(tid)
    thread = threading.Thread(target=watch.run, name="odp-async-stall-watch", daemon=True)
    thread.start()
    error: Exception | None = None
    try:
        yield
    except StepInterrupt:
        pass  # reported below
    except Exception as e:  # the program's wrapping of the interrupt, if it was one
        error = e
    finally:
        watch.stop.set()
        with watch.lock:
            watch.closed = True
        thread.join()
        _WATCHED.discard(tid)
        _HALTED.pop(tid, None)
        if signum is not None:
            deadline = time.monotonic() + SIGNAL_WAIT
            while watch.sent is not None and time.monotonic() < deadline:
                time.sleep(0.001)  # the signal's handler runs here (and does nothing)
            signal.signal(signum, signal.SIG_DFL)
    if watch.interrupted:
        raise StepStalled(watch.stalls[-1]) from None
    if error is not None:
        raise error


os.register_at_fork(after_in_child=_forget_after_fork)
