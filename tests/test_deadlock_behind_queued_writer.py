"""A nested read behind a queued writer is described by its real cycle (new-user trial
18a, finding 6): the reader waits behind the queued writer, which waits for the reader's
first read hold.  Before, the report said the reader waited for the lock "held by reader
itself (recursive locking)", naming neither the writer nor the cycle through it.  A real
recursive lock (a task re-taking a Mutex it holds) is still called so.  User code in
tmp_path.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from odp_async.explore import check
from odp_async.sim import run
from tests.conftest import UserModule

USER_MODULE = """
import odp_async as oa


async def nested_read():
    rw = oa.RWLock("rw")
    have_read = oa.Completion("have read")
    writer_queued = oa.Completion("writer queued")

    async def reader():
        async with rw.read_locked():
            have_read.complete_all()
            await writer_queued.wait()
            async with rw.read_locked():  # behind the queued writer: never gets in
                pass

    async def writer():
        await have_read.wait()
        writer_queued.complete_all()
        async with rw.write_locked():
            pass

    async with oa.task_group() as tg:
        tg.start_soon(reader, name="reader")
        tg.start_soon(writer, name="writer")


async def recursive_mutex():
    m = oa.Mutex("m")
    async with m:
        async with m:
            pass
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    return user_module(USER_MODULE, "user_behind_writer")


def test_the_nested_read_names_the_queued_writer(user: ModuleType) -> None:
    result = run(user.nested_read, seed=0)
    assert result.outcome == "deadlock"
    deadlock = result.deadlock
    assert deadlock is not None
    assert [b.task for b in deadlock.cycle] == ["reader", "writer"]
    reader = deadlock.cycle[0]
    assert reader.behind == ("writer",)
    assert reader.describe() == (
        "reader waits for RWLock 'rw' behind the queued writer (held by reader itself)"
    )
    assert deadlock.cycle[1].describe() == "writer waits for RWLock 'rw' held by reader"
    assert "recursive locking" not in deadlock.describe()


@pytest.mark.parametrize("chooser", ["portfolio", "dpor"])
def test_the_explorer_report_shows_the_cycle(user: ModuleType, chooser: str) -> None:
    failure = check(user.nested_read, chooser=chooser, schedules=50, seed=0).failure
    assert failure is not None
    assert str(failure.verdict) == "deadlock"
    text = failure.describe()
    assert "the wait-for cycle:" in text
    assert "reader waits for RWLock 'rw' behind the queued writer" in text
    assert "recursive locking" not in text
    assert "waits on itself" not in text


def test_a_real_recursive_lock_is_still_called_so(user: ModuleType) -> None:
    result = run(user.recursive_mutex, seed=0)
    assert result.deadlock is not None
    assert result.deadlock.cycle[0].behind == ()
    assert "main waits for Mutex 'm' held by main itself (recursive locking)" in (
        result.deadlock.describe()
    )
