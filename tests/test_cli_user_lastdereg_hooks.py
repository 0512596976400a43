"""Trial 21b, f1 and f2: the last MR's deregistration racing a registration, and hook
overrides of the wrong kind, from user files outside the package in a fresh process.

f1: the 2014 ``ib_umem_odp_release`` calls ``mmu_notifier_unregister`` under
``umem_rwsem`` downgraded to read, and ``ib_umem_notifier_release`` takes it for read again,
behind a registration's queued ``down_write``: a deadlock, true of the 2014 ucontext
(naive, odp2014, odp2014-ctx), not of kvm-seq, range-list and hmm-pool, which unregister
outside the lock (`TreeProtocol.LAST_MR_UNREGISTER`).  f2: a plain ``def`` over an async
hook (or ``async def`` over a sync one) is a one-line usage error when the class is
created, naming the class and the hook.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.explore import explore
from odp_async.scenarios import BUILTIN, Verdict

#: The trial's reproducer: B registers while C, the only MR, is deregistered, then a fault
#: and a madvise on B (B must be served by a registered subscription).
RACE = """
[scenario]
name = "my-lastdereg"
summary = "register B while the last MR C is deregistered"

[setup]
ops = [
    { op = "mmap", start = 0x10000, pages = 8 },
    { op = "populate", start = 0x10000, pages = 8 },
    { op = "mmap", start = 0x30000, pages = 4 },
    { op = "register", mr = "C", start = 0x30000, pages = 4 },
]

[[actor]]
name = "register"
ops = [{ op = "register", mr = "B", start = 0x10000, pages = 8 }]

[[actor]]
name = "dereg"
ops = [{ op = "sleep", seconds = 0 }, { op = "deregister", mr = "C" }]

[[actor]]
name = "check"
after = ["register", "dereg"]
ops = [
    { op = "fault", mr = "B", address = 0x10000, write = true },
    { op = "madvise", start = 0x10000, pages = 8 },
]
"""

PROTOCOLS_MODULE = """
from typing import ClassVar

from odp_async.odp.protocols.base import TreeProtocol
from odp_async.odp.protocols.kvm_seq import KvmSeq


class Plain2014(KvmSeq):
    name: ClassVar[str] = "plain-2014"
    summary: ClassVar[str] = "kvm-seq's accounting on the 2014 teardown"
    LAST_MR_UNREGISTER: ClassVar[str] = "2014"


class NoWait(KvmSeq):
    name: ClassVar[str] = "no-wait"
    summary: ClassVar[str] = "kvm-seq whose registration never waits for the unregister"

    @property
    def unregistering(self) -> bool:
        return False

    @unregistering.setter
    def unregistering(self, value: bool) -> None:
        pass


class Mine(TreeProtocol):
    name: ClassVar[str] = "mine"
    summary: ClassVar[str] = "the skeleton, unregistering outside umem_rwsem"
    LAST_MR_UNREGISTER: ClassVar[str] = "unlocked"
"""

SYNC_HOOK = """
from odp_async.odp.protocols.odp2014 import Odp2014


class SyncFirst(Odp2014):
    name = "sync-first"
    summary = "odp2014 with a sync on_first_mr"

    def on_first_mr(self) -> None:
        pass
"""

ASYNC_HOOK = """
from odp_async.odp.protocols.odp2014 import Odp2014


class AsyncInsert(Odp2014):
    name = "async-insert"
    summary = "odp2014 with an async on_insert"

    async def on_insert(self, umem, first):
        pass
"""

TYPO_HOOK = """
from odp_async.odp.protocols.kvm_seq import KvmSeq


class Typo(KvmSeq):
    name = "typo"
    summary = "means to override must_retry, misspelt: KvmSeq's would be checked instead"

    def must_retyr(self, umem, rng, token):
        return False
"""

BAD_TEARDOWN = """
from odp_async.odp.protocols.kvm_seq import KvmSeq


class Later(KvmSeq):
    name = "later"
    summary = "a teardown that does not exist"
    LAST_MR_UNREGISTER = "v6"
"""


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=tmp_path,
    )


def explore_file(tmp_path: Path, protocol: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "race.toml").write_text(RACE)
    (tmp_path / "lastdereg_protos.py").write_text(PROTOCOLS_MODULE)
    return cli(
        tmp_path, "explore", "race.toml", "-p", protocol, "--chooser", "dpor", "--schedules", "500"
    )


@pytest.mark.parametrize(
    "protocol", ["kvm-seq", "range-list", "hmm-pool", "interval-seq", "lastdereg_protos:Mine"]
)
def test_protocols_that_unregister_outside_umem_rwsem_are_clean(
    tmp_path: Path, protocol: str
) -> None:
    """Failed before: every TreeProtocol unregistered under the downgraded umem_rwsem, so
    kvm-seq (documented correct) deadlocked here."""
    proc = explore_file(tmp_path, protocol)
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    assert "complete" in proc.stdout
    assert "no violation" in proc.stdout


@pytest.mark.parametrize("protocol", ["odp2014", "odp2014-ctx", "lastdereg_protos:Plain2014"])
def test_the_2014_teardown_deadlocks_on_the_nested_read(tmp_path: Path, protocol: str) -> None:
    proc = explore_file(tmp_path, protocol)
    assert proc.returncode == ExitCode.VIOLATION, proc.stdout + proc.stderr
    assert "deadlock" in proc.stdout
    assert "behind the queued register (held by dereg itself)" in proc.stdout


def test_a_registration_that_does_not_wait_for_the_unregister_is_found(tmp_path: Path) -> None:
    """The wait of the "unlocked" order is what keeps B's subscription registered: without
    it the unregister tears down the subscription B registered, and the madvise frees a
    page B still translates."""
    proc = explore_file(tmp_path, "lastdereg_protos:NoWait")
    assert proc.returncode == ExitCode.VIOLATION, proc.stdout + proc.stderr
    assert "stale-translation" in proc.stdout


def test_the_builtin_states_the_kernel_verdicts() -> None:
    scenario = BUILTIN["lastdereg-vs-register"]
    expected = {p: scenario.expected_for(p) for p in ("naive", "odp2014", "odp2014-ctx")}
    assert set(expected.values()) == {Verdict.DEADLOCK}
    for protocol in ("range-list", "hmm-pool", "kvm-seq", "interval-seq"):
        assert scenario.expected_for(protocol) is Verdict.CLEAN
    for protocol in ("odp2014", "kvm-seq"):
        result = explore("lastdereg-vs-register", protocol, chooser="dpor", schedules=500)
        assert result.verdict is scenario.expected_for(protocol), (protocol, result.claim)


def one_line_usage_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == ExitCode.USAGE, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("source", "ref", "needles"),
    [
        (SYNC_HOOK, "SyncFirst", ("SyncFirst: on_first_mr must be an async def",)),
        (ASYNC_HOOK, "AsyncInsert", ("AsyncInsert: on_insert must be a plain def",)),
        (BAD_TEARDOWN, "Later", ("Later.LAST_MR_UNREGISTER must be one of", "'v6'")),
        (TYPO_HOOK, "Typo", ("Typo: 'must_retyr' is spelt almost like", "name it 'must_retry'")),
    ],
)
def test_a_hook_of_the_wrong_kind_is_a_one_line_usage_error(
    tmp_path: Path, source: str, ref: str, needles: tuple[str, ...]
) -> None:
    """Failed before (SyncFirst): a protocol `error` verdict, a TypeError in base.py."""
    (tmp_path / "hookmod.py").write_text(source)
    proc = cli(
        tmp_path, "explore", "registration-race", "-p", f"hookmod:{ref}", "--schedules", "5"
    )
    one_line_usage_error(proc, f"hookmod:{ref}", *needles)
