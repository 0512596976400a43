"""Exploration on a Dask distributed cluster: the executor seam's Dask side.

Contract
    `DaskExecutor(client)` runs the tasks of an exploration (chunks of schedules) as Dask
    futures on the cluster `client` talks to; `DaskExecutor.local(n)` starts a
    `LocalCluster` of `n` single-threaded worker processes (or threads, with
    ``processes=False``) and `DaskExecutor.connect(address)` joins an existing scheduler;
    both of those own their client (and cluster) and release it on `close`.  A given
    client is never closed.

    Workers must have odp_async installed (the same version).  A target given as
    ``module:qualname`` needs its module on the workers too: `prepare` asks every worker
    to import it and, where one cannot, uploads the module's file (a single ``.py``
    module; a package must be installed on the workers, or its directory put on their
    ``PYTHONPATH``, else `InvalidArgument` says so).

    Cancelling a task cancels its future; a running chunk runs to its end (a fraction of
    a second, by the chunk sizing) and its result is dropped.  `abort` (Ctrl-C) cancels
    every future at once.  Importing this module needs ``distributed`` (the ``cluster``
    extra); `odp_async.explore.executors.cluster_executor` turns its absence into a
    one-line `InvalidArgument`.

Concurrency
    Blocking; the client's event loop runs in its own thread (Dask's), one thread drives
    the executor.  Workers run CPU-bound pure Python: give each worker one thread
    (``dask worker --nthreads 1 --nworkers N``), or the GIL serialises them.

See also
    `odp_async.explore.executors` (the seam), `odp_async.explore.runner`.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import logging
import os
import signal
import threading
import uuid
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import distributed

from ..errors import InvalidArgument
from .executors import Done, Executor, user_modules
from .target import TargetSpec

__all__ = ["DASK_OVERHEAD", "DaskExecutor"]

#: Estimated cost, in seconds, of one Dask task beyond its work: scheduler round trips and
#: serialisation.  benchmarks/bench_cluster.py measured 14-17 ms per chunk on a 2-core
#: machine at load average 6 (a LocalCluster's scheduler, workers and client sharing
#: it); ~10 ms keeps that under ~3% of a chunk (chunks of ~0.5 s).
DASK_OVERHEAD = 0.01


class DaskExecutor(Executor):
    """Tasks as futures of a Dask cluster (see the module docstring)."""

    overhead = DASK_OVERHEAD

    def __init__(
        self,
        client: distributed.Client,
        *,
        cluster: distributed.LocalCluster | None = None,
        owns_client: bool = False,
        dashboard: bool = True,
    ) -> None:
        self.client = client
        self._dashboard = dashboard
        self._cluster = cluster
        self._owns_client = owns_client or cluster is not None
        self._futures: dict[distributed.Future[Any], Hashable] = {}
        # Dask keys must never repeat: a key the scheduler still holds returns that
        # task's old result.  Callers reuse their keys from run to run.
        self._run = uuid.uuid4().hex[:12]
        self._submitted = itertools.count()

    @classmethod
    def local(
        cls, workers: int, *, processes: bool = True, dashboard: bool = True
    ) -> DaskExecutor:
        """Start a `LocalCluster` of `workers` single-threaded workers (processes, or
        threads of this process with ``processes=False``) and a client for it.  Worker
        processes ignore SIGINT (Ctrl-C is this process's).  The `dashboard` (bokeh, in
        the ``cluster`` extra) and the scheduler's HTTP endpoints listen on any free port
        (`dashboard_link`), so that two clusters on one machine never clash."""
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise InvalidArgument(f"workers must be a positive int, got {workers!r}")
        # Children started with SIGINT ignored inherit it (Python keeps an inherited
        # SIG_IGN): a Ctrl-C reaches this process only, which cancels the futures.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",
                scheduler_kwargs={"dashboard": dashboard},
                # workers that lose the scheduler while closing log tracebacks: noise
                silence_logs=logging.CRITICAL,
            )
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        try:
            client = distributed.Client(cluster)
        except BaseException:
            cluster.close()
            raise
        return cls(client, cluster=cluster, dashboard=dashboard)

    @classmethod
    def connect(cls, address: str, *, timeout: float = 10.0) -> DaskExecutor:
        """A client of the scheduler at `address` (``tcp://HOST:PORT``), owned by the
        executor.  Raises `InvalidArgument` when it cannot be reached in `timeout` s."""
        try:
            client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as e:
            raise InvalidArgument(f"cannot reach the Dask scheduler at {address!r}: {e}") from None
        return cls(client, owns_client=True)

    @property
    def window(self) -> int:
        # Two tasks per worker thread: one running, one waiting, so no worker idles
        # while a result travels back.
        return max(2, 2 * self.threads)

    @property
    def threads(self) -> int:
        """The worker threads of the cluster now (asks the scheduler)."""
        return sum(self.client.nthreads().values())

    @property
    def description(self) -> str:
        address = getattr(self.client.scheduler, "address", "?")
        return f"Dask cluster at {address} ({self.threads} threads)"

    @property
    def dashboard_link(self) -> str | None:
        """The address of the cluster's dashboard, or None (none, or bokeh missing)."""
        if not self._dashboard or importlib.util.find_spec("bokeh") is None:
            return None
        link: str | None = getattr(self.client, "dashboard_link", None)
        return link

    def prepare(self, spec: TargetSpec) -> None:
        """Make sure every worker can import the target's user modules; upload a single
        file module to workers that cannot.  Raises `InvalidArgument` otherwise."""
        for module in user_modules(spec):
            missing = _missing_on(self.client, module)
            if not missing:
                continue
            path = _module_file(module)
            if path is None:
                raise InvalidArgument(
                    f"the Dask workers {', '.join(sorted(missing))} cannot import module "
                    f"{module!r}: install it on the workers or put its directory on their "
                    "PYTHONPATH"
                )
            self.client.upload_file(path, load=True)
            still = _missing_on(self.client, module)
            if still:
                raise InvalidArgument(
                    f"the Dask workers {', '.join(sorted(still))} cannot import module "
                    f"{module!r} even after uploading {path}"
                )

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        future = self.client.submit(
            _on_worker, fn, *args, key=f"odp-async-{self._run}-{next(self._submitted)}", pure=False
        )
        self._futures[future] = key

    def wait(self, timeout: float | None) -> list[Done]:
        if not self._futures:
            return []
        try:
            finished, _ = distributed.wait(
                list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED"
            )
        except TimeoutError:
            return []
        done: list[Done] = []
        ok = [f for f in finished if f.status == "finished"]
        values = self.client.gather(ok) if ok else []
        for future, (worker, value) in zip(ok, values, strict=True):
            done.append(Done(self._futures.pop(future), worker, value))
        for future in finished:
            if future in self._futures and future.status == "error":
                error = future.exception()
                assert isinstance(error, BaseException)
                done.append(Done(self._futures.pop(future), "?", error=error))
            elif future in self._futures and future.status == "cancelled":
                self._futures.pop(future)
        return done

    def cancel(self, keys: Iterable[Hashable]) -> None:
        drop = set(keys)
        futures = [f for f, k in self._futures.items() if k in drop]
        for future in futures:
            del self._futures[future]
        if futures:
            self.client.cancel(futures)

    def abort(self) -> None:
        futures, self._futures = list(self._futures), {}
        if futures:
            self.client.cancel(futures, force=True)

    def close(self) -> None:
        self.abort()
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _on_worker(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """Run ``fn(*args)`` on a worker: (the worker's address, its value)."""
    try:
        worker = distributed.get_worker().address
    except ValueError:  # not on a worker (a client running tasks locally)
        worker = "main"
    return worker, fn(*args)


def _can_import(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _missing_on(client: distributed.Client, module: str) -> list[str]:
    """The workers that cannot import `module`."""
    answers: dict[str, bool] = client.run(_can_import, module)
    return [worker for worker, ok in answers.items() if not ok]


def _module_file(module: str) -> str | None:
    """The file of a single-file top-level module importable here, else None."""
    if "." in module:
        return None
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None or found.submodule_search_locations:
        return None
    return found.origin if os.path.isfile(found.origin) and found.origin.endswith(".py") else None
