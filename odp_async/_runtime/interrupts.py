"""Ctrl-C or the program's own `KeyboardInterrupt`: telling them apart.

A `KeyboardInterrupt` reaches the sim from inside a task either because the user pressed
Ctrl-C (CPython raises it wherever the main thread is, most often in the program's code)
or because the program raised it itself (``raise KeyboardInterrupt`` in a task).  The
first must stop the exploration; the second is the program's error, like a `SystemExit`.

Contract
    `marking_ctrl_c()` is a context manager: in the main thread, while the SIGINT
    handler is Python's default (`signal.default_int_handler`), it installs a handler
    that raises `CtrlC` (a `KeyboardInterrupt`) instead, and puts the previous one back
    on exit; elsewhere (another thread, a handler of the application's) it does nothing.
    Nested uses are no-ops.

    `is_ctrl_c(exc)` says whether a `KeyboardInterrupt` is to be taken for Ctrl-C: a
    `CtrlC` always; any other only if Ctrl-C could not have been marked (the marking
    handler is not installed, and SIGINT is not ignored as in the explorer's worker
    processes): when it cannot tell, it takes it for Ctrl-C, as before.  Reads the
    process's SIGINT handler; keeps no state.

    `from_signal_handler(exc)` says whether `exc` was raised by (or through) a Python
    signal handler installed now: its traceback passes through the handler's code.  An
    exception a signal handler raises lands wherever the main thread happens to be, in
    the explored program's code as often as not, but it is the harness's (pytest-timeout
    failing the test on SIGALRM, a supervisor's SIGTERM handler), never the program's
    error.  Reads the process's handlers; keeps no state.

Concurrency
    Signal handlers are process-wide; `marking_ctrl_c` changes it only from the main
    thread, for the duration of the ``with``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["CtrlC", "from_signal_handler", "is_ctrl_c", "marking_ctrl_c"]


class CtrlC(KeyboardInterrupt):
    """The user's Ctrl-C (SIGINT), as the handler of `marking_ctrl_c` raises it."""


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    raise CtrlC


@contextmanager
def marking_ctrl_c() -> Iterator[None]:
    """Within the ``with``, Ctrl-C raises `CtrlC` (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def is_ctrl_c(exc: BaseException) -> bool:
    """Whether the `KeyboardInterrupt` `exc` is taken for the user's Ctrl-C."""
    if isinstance(exc, CtrlC):
        return True
    handler = signal.getsignal(signal.SIGINT)
    return not (handler is _on_sigint or handler is signal.SIG_IGN)


def _handler_codes() -> set[object]:
    codes: set[object] = set()
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (OSError, ValueError):  # pragma: no cover - a signal the OS refuses
            continue
        func = getattr(handler, "__func__", handler)  # a bound method: its function
        code = getattr(func, "__code__", None)
        if code is not None:
            codes.add(code)
    return codes


def from_signal_handler(exc: BaseException) -> bool:
    """Whether `exc` was raised in a Python signal handler installed now (its traceback
    passes through the handler's frame): the harness's exception, not the program's."""
    tb = exc.__traceback__
    if tb is None:
        return False
    codes = _handler_codes()
    if not codes:
        return False
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False
