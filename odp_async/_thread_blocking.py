"""A thread lock held across an await: refused before a run, as a foreign await is.

Contract
    `thread_lock_across_await(main)` reads the code of `main` (a function, or the
    function a target wraps: an object with a ``fn`` attribute) and of the functions of
    the program it names through its module globals, transitively (not the standard
    library's or another trusted library's: `odp_async._tracked_code.trusted`), and
    returns one line naming the first ``with LOCK:`` block whose body awaits while LOCK,
    named statically (a module global, ``mymod.lock``, a class attribute), is one of
    the `threading` module's blocking primitives (`_BLOCKING`: ``Lock``, ``RLock``,
    ``Condition``, ``Semaphore``, ``BoundedSemaphore``); None when it finds none.

    Why: every task of a sim run (and of a live event loop) runs on one OS thread.  A
    task that holds such a lock across an await lets another task block in
    ``acquire()``: the thread, and so the whole run, hangs with no report (the explorer
    cannot preempt C code, and it adds no wall-clock watchdog).  `refuse_thread_locks`
    raises `odp_async.errors.ForeignAwait` with that line instead, before the first run.

    A lock reached at run time (``self._lock``, a local, an argument), an
    ``acquire()``/``release()`` pair around an await, and blocking in ``queue.Queue.get``
    or ``threading.Event.wait`` stay unseen: they still hang the run.

    Pure reading (`dis`): nothing runs; memoised per code object.

See also
    `odp_async._runtime.sim` (the `ForeignAwait` refusals at run time).
"""

from __future__ import annotations

import dis
import functools
import os
import threading
import types
from typing import Any, Final

from ._code_reach import code_tree
from ._tracked_code import trusted
from .errors import ForeignAwait

__all__ = ["refuse_thread_locks", "thread_lock_across_await"]

#: The blocking primitives of `threading` (their classes: ``threading.Lock`` is a
#: factory of ``_thread.lock``).
_BLOCKING: Final = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    threading.Semaphore,
)

_NAMES: Final = {
    type(threading.Lock()): "threading.Lock",
    type(threading.RLock()): "threading.RLock",
}

#: Instructions that suspend the coroutine (an ``await``, ``async with``, ``async for``).
_AWAITS: Final = frozenset({"GET_AWAITABLE", "BEFORE_ASYNC_WITH", "GET_ANEXT"})

_MISSING: Final = object()


def refuse_thread_locks(main: object) -> None:
    """Raise `ForeignAwait` with `thread_lock_across_await`'s line, if any."""
    found = thread_lock_across_await(main)
    if found is not None:
        raise ForeignAwait(found)


def thread_lock_across_await(main: object) -> str | None:
    """See the module docstring."""
    fn = getattr(main, "fn", main)  # a target's ``_Call``
    if not isinstance(fn, types.FunctionType):
        return None
    seen: set[types.FunctionType] = set()
    todo = [fn]
    while todo:
        f = todo.pop()
        if f in seen or _library(f):
            continue
        seen.add(f)
        found = _scan(f)
        if found is not None:
            return found
        for name in _global_names(f.__code__):
            value = f.__globals__.get(name)
            if isinstance(value, types.FunctionType):
                todo.append(value)
    return None


def _library(fn: types.FunctionType) -> bool:
    module = fn.__globals__.get("__name__")
    return trusted(module if isinstance(module, str) else None)


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> frozenset[str]:
    # The globals `code` and the code nested in it load.
    names = {
        str(ins.argval)
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return frozenset(names)


def _scan(fn: types.FunctionType) -> str | None:
    for code in code_tree(fn.__code__):
        for chain in _withs_across_awaits(code):
            value = _resolve(fn, chain)
            if isinstance(value, _BLOCKING):
                kind = type(value)
                what = _NAMES.get(kind, f"{kind.__module__}.{kind.__qualname__}")
                where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
                return (
                    f"{fn.__module__}.{code.co_qualname} holds {'.'.join(chain)} (a {what}) "
                    f"across an await (`with {'.'.join(chain)}:` around it, {where}): every "
                    "task runs on one OS thread, so another task blocking on it would hang "
                    "the run; use odp_async.Mutex (async with) instead"
                )
    return None


@functools.lru_cache(maxsize=4096)
def _withs_across_awaits(code: types.CodeType) -> tuple[tuple[str, ...], ...]:
    """The static chains (``("_lock",)``, ``("mymod", "lock")``) of the managers of the
    ``with`` blocks of `code` (not nested code) whose body awaits."""
    ins = list(dis.get_instructions(code))
    at = {i.offset: n for n, i in enumerate(ins)}
    bodies: dict[int, list[int]] = {}  # handler offset -> [first, last) of the body
    entries: Any = getattr(dis.Bytecode(code), "exception_entries", ())  # typeshed lacks it
    for entry in entries:
        n = at.get(entry.target)
        if (
            n is None
            or n + 1 >= len(ins)
            or ins[n].opname != "PUSH_EXC_INFO"
            or ins[n + 1].opname != "WITH_EXCEPT_START"
        ):
            continue
        span = bodies.setdefault(entry.target, [entry.start, entry.end])
        span[0] = min(span[0], entry.start)
        span[1] = max(span[1], entry.end)
    chains: list[tuple[str, ...]] = []
    for first, last in bodies.values():
        n = at.get(first)
        if n is None or n < 2 or ins[n - 1].opname != "BEFORE_WITH":
            continue
        if not any(i.opname in _AWAITS for i in ins if first <= i.offset < last):
            continue
        chain = _chain_before(ins, n - 1)
        if chain:
            chains.append(chain)
    return tuple(chains)


def _chain_before(ins: list[dis.Instruction], n: int) -> tuple[str, ...]:
    # The static chain loaded just before instruction `n`: a global then attributes.
    names: list[str] = []
    j = n - 1
    while j >= 0 and ins[j].opname in ("LOAD_ATTR", "LOAD_METHOD"):
        names.append(str(ins[j].argval))
        j -= 1
    if j < 0 or ins[j].opname not in ("LOAD_GLOBAL", "LOAD_NAME"):
        return ()
    names.append(str(ins[j].argval))
    return tuple(reversed(names))


def _resolve(fn: types.FunctionType, chain: tuple[str, ...]) -> object:
    value = fn.__globals__.get(chain[0], _MISSING)
    for name in chain[1:]:
        if isinstance(value, types.ModuleType):
            value = value.__dict__.get(name, _MISSING)
        elif isinstance(value, type):
            value = next((k.__dict__[name] for k in value.__mro__ if name in k.__dict__), _MISSING)
        else:
            return _MISSING
    return value
