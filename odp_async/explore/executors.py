"""Where the chunks of an exploration run: the executor seam.

Contract
    An `Executor` runs tasks ``fn(*args)`` elsewhere (``fn`` a module-level function, the
    arguments picklable) and hands back their outcomes as they finish:

    - `submit(key, fn, *args)` queues one task under a hashable `key`; it never blocks;
    - `wait(timeout)` blocks until some task finished, or `timeout` seconds passed, and
      returns the finished ones as `Done` records (maybe none);
    - `cancel(keys)` forgets tasks: their outcome is never returned (a task already
      running may run to its end; its result is dropped);
    - `abort()` stops every task now (Ctrl-C, an error); the executor stays usable;
    - `close()` releases the workers (an executor is a context manager).

    `window` is how many tasks a caller should keep submitted to keep every worker busy,
    `overhead` the estimated seconds a task costs beyond its own work (the chunk sizing
    of `odp_async.explore.runner` keeps it a small share), and `prepare(spec)` makes sure
    the workers can rebuild a target (a Dask cluster uploads a user module its workers
    cannot import).  `workers` names the places tasks ran (`Done.worker`).

    Implementations: `InlineExecutor` (this process, one task at a time), `ProcessExecutor`
    (worker processes of this machine, one pipe each, SIGINT ignored: Ctrl-C is the
    parent's) and ``odp_async.explore.dask_executor.DaskExecutor`` (a Dask distributed
    cluster; imported only by `cluster_executor`, since Dask is an optional extra).

Concurrency
    Blocking; one thread drives an executor.

See also
    `odp_async.explore.runner` (the chunks), `odp_async.explore.dask_executor`.
"""

from __future__ import annotations

import abc
import collections
import ipaddress
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
from collections.abc import Callable, Hashable, Iterable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import attrs

from ..errors import InternalError, InvalidArgument
from .config import MAX_JOBS
from .target import TargetSpec
from .workers import serve_requests

__all__ = [
    "CLUSTER_EXTRA_HINT",
    "Done",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "cluster_executor",
    "user_modules",
]

#: The one line a user sees when Dask is asked for but not installed.
CLUSTER_EXTRA_HINT = (
    "running on a Dask cluster needs the optional extra: pip install 'odp_async[cluster]'"
)

#: Estimated cost, in seconds, of one task of a `ProcessExecutor` beyond its work: a
#: pickled message each way over a pipe (benchmarks/bench_cluster.py measures it).
PROCESS_OVERHEAD = 0.001


@attrs.frozen
class Done:
    """A finished task: its `key`, the `worker` that ran it, and its return `value`, or
    the `error` it raised."""

    key: Hashable
    worker: str
    value: Any = None
    error: BaseException | None = None


class Executor(abc.ABC):
    """Runs tasks somewhere (see the module docstring)."""

    #: Seconds a task costs beyond its work (an estimate, for chunk sizing).
    overhead: float = 0.0

    @property
    @abc.abstractmethod
    def window(self) -> int:
        """How many tasks to keep submitted so that every worker stays busy."""

    @property
    def description(self) -> str:
        """One line: what this executor is (for logs and results)."""
        return type(self).__name__

    def prepare(self, spec: TargetSpec) -> None:  # noqa: B027 - optional hook
        """Make sure the workers can rebuild the target of `spec` (default: nothing to do).
        Raises `InvalidArgument` when they cannot."""

    @abc.abstractmethod
    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` under `key`.  Never blocks."""

    @abc.abstractmethod
    def wait(self, timeout: float | None) -> list[Done]:
        """The tasks that finished (blocks until one does, or `timeout` seconds)."""

    @abc.abstractmethod
    def cancel(self, keys: Iterable[Hashable]) -> None:
        """Forget these tasks: `wait` never returns them."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Stop every task now; forget them all.  The executor stays usable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class InlineExecutor(Executor):
    """Runs each task in this process, when `wait` is called, one at a time."""

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[Hashable, Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )

    @property
    def window(self) -> int:
        return 1

    @property
    def description(self) -> str:
        return "this process"

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.append((key, fn, args))

    def wait(self, timeout: float | None) -> list[Done]:
        if not self._queue:
            return []
        key, fn, args = self._queue.popleft()
        try:
            return [Done(key, "main", fn(*args))]
        except Exception as e:
            return [Done(key, "main", error=e)]

    def cancel(self, keys: Iterable[Hashable]) -> None:
        drop = set(keys)
        self._queue = collections.deque(t for t in self._queue if t[0] not in drop)

    def abort(self) -> None:
        self._queue.clear()


_Task = tuple[Hashable, Callable[..., Any], tuple[Any, ...]]


@attrs.define
class _Worker:
    name: str
    process: multiprocessing.process.BaseProcess
    conn: Connection
    #: The key of the task it runs (None: idle); `cancelled` when its result is unwanted.
    task: Hashable | None = None
    busy: bool = False
    cancelled: bool = False


class ProcessExecutor(Executor):
    """`workers` worker processes of this machine (fork where available), started at the
    first task, each with its own pipe: one can be terminated at any moment without
    blocking the others.  Workers ignore SIGINT (Ctrl-C is the parent's)."""

    overhead = PROCESS_OVERHEAD

    def __init__(self, workers: int) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise InvalidArgument(f"workers must be a positive int, got {workers!r}")
        self._count = workers
        self._workers: list[_Worker] = []
        self._queue: collections.deque[_Task] = collections.deque()

    @property
    def window(self) -> int:
        return self._count

    @property
    def description(self) -> str:
        return f"{self._count} worker processes"

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the running workers (none before the first task)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        if not self._workers:
            self._start()
        self._queue.append((key, fn, args))
        self._dispatch()

    def wait(self, timeout: float | None) -> list[Done]:
        busy = {w.conn: w for w in self._workers if w.busy}
        if not busy:
            return []
        done: list[Done] = []
        for ready in multiprocessing.connection.wait(list(busy), timeout=timeout):
            assert isinstance(ready, Connection)
            worker = busy[ready]
            try:
                kind, payload = ready.recv()
            except (EOFError, OSError):
                raise InternalError(f"worker process {worker.name} died") from None
            key, cancelled = worker.task, worker.cancelled
            worker.task, worker.busy, worker.cancelled = None, False, False
            if cancelled:
                continue
            if kind == "error":
                done.append(Done(key, worker.name, error=payload))
            else:
                done.append(Done(key, worker.name, payload))
        self._dispatch()
        return done

    def cancel(self, keys: Iterable[Hashable]) -> None:
        drop = set(keys)
        self._queue = collections.deque(t for t in self._queue if t[0] not in drop)
        for worker in self._workers:
            if worker.busy and worker.task in drop:
                worker.cancelled = True

    def abort(self) -> None:
        """Terminate every worker (new ones start with the next task)."""
        self._queue.clear()
        self.close()

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for w in workers:
            if w.process.is_alive():
                w.process.terminate()
        for w in workers:
            w.process.join(timeout=2)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()

    def _start(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        for i in range(self._count):
            parent, child = context.Pipe()
            process: multiprocessing.process.BaseProcess = context.Process(  # type: ignore[attr-defined]
                target=_serve, args=(child,), daemon=True, name=f"odp-async worker {i + 1}"
            )
            process.start()
            child.close()
            self._workers.append(_Worker(f"process-{i + 1}", process, parent))

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._queue:
                return
            if not worker.busy:
                key, fn, args = self._queue.popleft()
                worker.conn.send((fn, args))
                worker.task, worker.busy = key, True


def _serve(conn: Connection) -> None:
    """A worker process: run each task ``(fn, args)`` received on `conn` and send back
    ``("ok", value)`` or ``("error", exception)``, until told to stop (None), the pipe
    reaches EOF, or the parent goes away (see `odp_async.explore.workers`)."""
    serve_requests(conn, _call)


def _call(task: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    fn, args = task
    return fn(*args)


def user_modules(spec: TargetSpec) -> list[str]:
    """The modules a worker imports to rebuild `spec`'s target: those of a
    ``module:qualname`` scenario or protocol (built-ins, files and ``classic:`` need none)."""
    found: list[str] = []
    for ref in (spec.source, spec.protocol):
        if ref is None or (spec.file is not None and ref == spec.source):
            continue
        module, sep, _ = ref.partition(":")
        if sep and module not in ("classic", "test") and module not in found:
            found.append(module)
    return found


#: The ports a scheduler address may name.
_MAX_PORT = 65535


def _check_address(where: str, location: str) -> None:
    """Raise `InvalidArgument` naming `where` (a scheduler address ``SCHEME://``
    `location`) unless `location` is ``HOST:PORT``: a host name or IP address (an IPv6
    one in brackets) and a port from 1 to `_MAX_PORT`.  Dask would try a malformed one
    for the whole connect timeout (10 s) before saying so; this says it at once."""
    if location.startswith("["):
        host, bracket, after = location[1:].partition("]")
        port_sep, port = after[:1], after[1:]
        if not bracket or after[:1] not in ("", ":"):
            raise InvalidArgument(
                f"cluster address {where!r}: an IPv6 host goes in brackets, then :PORT "
                "(tcp://[::1]:8786)"
            )
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidArgument(
                f"cluster address {where!r}: {host!r} is not an IPv6 address"
            ) from None
    else:
        host, port_sep, port = location.rpartition(":")
        if not port_sep:
            host, port = location, ""
        if ":" in host:
            raise InvalidArgument(
                f"cluster address {where!r}: an IPv6 host goes in brackets (tcp://[::1]:8786)"
            )
        if not host:
            raise InvalidArgument(
                f"cluster address {where!r} names no host; expected SCHEME://HOST:PORT "
                "such as tcp://HOST:8786"
            )
        if not all(c.isalnum() or c in "._-" for c in host):
            raise InvalidArgument(
                f"cluster address {where!r}: {host!r} is not a host name or IP address"
            )
    if not port_sep:
        raise InvalidArgument(
            f"cluster address {where!r} names no port; expected SCHEME://HOST:PORT "
            "such as tcp://HOST:8786"
        )
    digits = port.lstrip("0")
    if not (port.isascii() and port.isdigit() and len(digits) <= 5) or not (
        1 <= int(digits or "0") <= _MAX_PORT
    ):
        raise InvalidArgument(
            f"cluster address {where!r}: port {port!r} is not a number from 1 to {_MAX_PORT}"
        )


def cluster_executor(where: str) -> Executor:
    """The executor for a ``--cluster`` value: ``local:N`` (a Dask `LocalCluster` of N
    worker processes, shut down by `close`) or ``tcp://HOST:PORT`` (an existing Dask
    scheduler; also ``tls://``...).  N is 1 to `MAX_JOBS`, as ``jobs``; the command
    line caps it to the CPUs first.  Raises `InvalidArgument` for a bad value (an
    address that is not ``SCHEME://HOST:PORT`` with a port from 1 to 65535 before any
    connection is tried), an unreachable scheduler, or when Dask is not installed
    (naming the extra)."""
    kind, sep, rest = where.partition(":")
    if kind == "local" and sep:
        if not (rest.isascii() and rest.isdigit()) or int(rest[:12]) < 1:
            raise InvalidArgument(
                f"--cluster local:N needs a positive number of workers, got {where!r}"
            )
        if len(rest) > 12 or int(rest) > MAX_JOBS:
            raise InvalidArgument(
                f"--cluster local:N takes at most {MAX_JOBS} workers (as jobs), got {where!r}"
            )
    elif not (sep and rest.startswith("//") and len(rest) > 2):
        raise InvalidArgument(
            f"unknown cluster {where!r}; expected local:N or a scheduler address "
            "such as tcp://HOST:PORT"
        )
    elif kind != "inproc":  # an in-process address names no host
        _check_address(where, rest[2:])
    try:
        from .dask_executor import DaskExecutor
    except ImportError:
        raise InvalidArgument(CLUSTER_EXTRA_HINT) from None
    if kind == "local":
        return DaskExecutor.local(int(rest))
    return DaskExecutor.connect(where)
