"""A region freed while an invalidation's tree walk waits at its ``umem_mutex`` (trial 19b,
finding f2).

A user's protocol (in a module outside the package, run in a fresh process) removes a
deregistered region from the tree without ``W(umem_rwsem)`` (``ib_umem_odp_release``
without ``down_write``): a running invalidation that snapshotted the tree then takes the
freed region's mutex and zaps its table.  The region's use is checked where it happens
(the mutex's grant, the table's zap), not only before the acquire's choice point, so every
chooser finds it, and DPOR never calls the search complete and clean.  The same protocol
with the lock, and the built-in protocols, stay clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from tests._usermod import forget, write_user_module

USER_MODULE = '''
"""The trial's protocols, trimmed: SeqLock is correct, RemoveNoLock drops the rwsem."""
from typing import Any, ClassVar

from odp_async.odp import TreeProtocol
from odp_async.odp.protocols.base import FaultAborted
from odp_async.sync import Mutex, WaitQueue
from odp_async.tracked import tracked


@tracked
class SeqLock(TreeProtocol):
    name: ClassVar[str] = "my-seqlock"
    summary: ClassVar[str] = "ctx-wide in_progress+seq, read_begin before gup"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.mmu_lock = Mutex("my.mmu_lock")
        self.in_progress = 0
        self.seq = 0
        self.dead = False
        self.idle = WaitQueue("my idle")

    async def before_start(self, inv: Any) -> None:
        async with self.mmu_lock:
            self.in_progress += 1

    async def after_end(self, inv: Any) -> None:
        async with self.mmu_lock:
            self.seq += 1
            self.in_progress -= 1
            if self.in_progress <= 0:
                self.idle.wake_all()

    async def release(self) -> None:
        async with self.mmu_lock:
            self.dead = True
            self.in_progress += 1
        async with self.ctx.umem_rwsem.read_locked():
            for umem in self.ctx.all_umems():
                await self.ctx.zap(umem, umem.range, "release")
        self.idle.wake_all()

    def read_token(self, umem: Any) -> object:
        return self.seq

    async def fault_begin(self, umem: Any, rng: Any) -> object:
        while self.in_progress > 0 and not self.dead:
            await self.idle.park()
        if self.dead or umem.dying:
            raise FaultAborted("released")
        return self.seq

    def must_retry(self, umem: Any, rng: Any, token: object) -> bool:
        return self.in_progress > 0 or self.seq != token

    async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
        async with self.mmu_lock:
            if self.dead:
                raise FaultAborted("released")
            async with umem.mutex:
                return await self.commit_under_lock(umem, rng, token, pages)

    async def fault_wait(self, umem: Any, rng: Any, token: object) -> None:
        while self.in_progress > 0 and not self.dead:
            await self.idle.park()
        if self.dead:
            raise FaultAborted("released")


@tracked
class RemoveNoLock(SeqLock):
    """BUG: the region leaves the tree without W(umem_rwsem)."""

    name: ClassVar[str] = "my-remove-nolock"
    summary: ClassVar[str] = "BUG: tree remove without the rwsem"

    async def remove(self, umem: Any) -> None:
        ctx = self.ctx
        ctx.tree_remove(umem)
        ctx.odp_mrs_count -= 1
        if ctx.odp_mrs_count == 0:
            await ctx.mm.unregister_notifier(ctx.subscription)
'''

SCENARIO = """
[scenario]
name = "walk-vs-dereg"
summary = "MR A deregistered while an invalidation over A and B walks the tree"
protocols = ["odp2014", "odp2014-ctx", "interval-seq", "kvm-seq", "range-list", "hmm-pool"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "populate", start = 0x0, pages = 4 },
    { op = "register", mr = "A", start = 0x0, pages = 2 },
    { op = "register", mr = "B", start = 0x0, pages = 4 },
]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x0, pages = 4 }]

[[actor]]
name = "dereg"
ops = [{ op = "deregister", mr = "A" }]
"""


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    name = write_user_module(tmp_path, USER_MODULE, "walkproto", monkeypatch)
    (tmp_path / "walk.toml").write_text(SCENARIO)
    yield tmp_path, name
    forget(name)


def explore(where: Path, *argv: str) -> tuple[int, dict[str, object], str]:
    """``odp-async explore walk.toml ARGV --json`` in a fresh process run in `where`."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(where), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", "walk.toml", *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=where,
    )
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


@pytest.mark.parametrize("chooser", ["dpor", "dfs", "random", "pct", None])
def test_a_region_freed_while_the_walk_waits_at_its_mutex_is_found_by_every_chooser(
    user_dir: tuple[Path, str], chooser: str | None
) -> None:
    where, mod = user_dir
    how = [] if chooser is None else ["--chooser", chooser]
    code, data, err = explore(where, "-p", f"{mod}:RemoveNoLock", *how, "--schedules", "2000")
    assert code == ExitCode.VIOLATION, err
    assert data["verdict"] == "found", data
    failure = data["failure"]
    assert isinstance(failure, dict)
    assert failure["kind"] == "use-after-release", failure
    assert "touched A after its deregistration" in str(failure), failure


def test_the_same_protocol_with_the_rwsem_is_clean_and_dpor_complete(
    user_dir: tuple[Path, str],
) -> None:
    where, mod = user_dir
    code, data, err = explore(
        where, "-p", f"{mod}:SeqLock", "--chooser", "dpor", "--schedules", "5000"
    )
    assert code == ExitCode.OK, err
    assert data["verdict"] == "clean", data
    assert data["complete"] is True, data


def test_the_built_in_protocols_are_clean(user_dir: tuple[Path, str]) -> None:
    """Each protocol the file names, against its default expectation (clean)."""
    where, _ = user_dir
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", "walk.toml", "--schedules", "300"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=where,
    )
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    assert "6/6 protocols as expected" in proc.stdout, proc.stdout
