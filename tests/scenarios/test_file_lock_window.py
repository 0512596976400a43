"""Issue 10 trial: in a scenario file, ``lock`` then ``unlock`` opens no window (tasks
switch only at checkpoints); the documented idiom -- README "Scenario files", a bare
``sleep`` of 0 seconds between them -- holds the lock across one, so a non-blockable
start that trylocks the MR's ``umem_mutex`` sees it held and refuses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from odp_async.scenarios.files import load_scenario
from odp_async.world import run_world
from tests._usermod import forget, write_user_module

PROTOCOL = """
from odp_async.errors import WouldBlock
from odp_async.odp.protocols import KvmSeq


class Reapable(KvmSeq):
    name = "kvm-seq-reapable"
    summary = "kvm-seq whose non-blockable start trylocks each MR's umem_mutex"

    async def invalidate_range_start_nonblock(self, inv):
        for umem in self.ctx.overlapping(inv.range):
            umem.mutex.acquire_nowait()  # WouldBlock while an actor holds it
            umem.mutex.release()
        self.mmu_lock.acquire_nowait()
        self.in_progress += 1
        self.mmu_lock.release()
        for umem in self.ctx.overlapping(inv.range):
            umem.table.zap(umem.range.intersection(inv.range))
"""

FILE = """
[scenario]
name = "reap-vs-holder"
summary = "the OOM reaper against an actor holding MR A's umem_mutex"

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "populate", start = 0x0, pages = 4 },
    { op = "register", mr = "A", start = 0x0, pages = 4 },
]

HOLDER

[[actor]]
name = "oom"
ops = [{ op = "reap", start = 0x0, pages = 4 }]
"""


def _readme_holder() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Scenario files") : readme.index("## Packaging")]
    at = section.index("An actor holds a lock")
    start = section.index("```toml\n", at) + len("```toml\n")
    return section[start : section.index("\n```\n", start)]


@pytest.fixture
def protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = write_user_module(tmp_path, PROTOCOL, "reapable", monkeypatch)
    yield f"{name}:Reapable"
    forget(name)


def _reap_outcomes(tmp_path: Path, holder: str, protocol: str) -> Counter[str]:
    path = tmp_path / "reap.toml"
    path.write_text(FILE.replace("HOLDER", holder))
    body = load_scenario(path).body
    outcomes: Counter[str] = Counter()
    for seed in range(100):
        run = run_world(body, protocol=protocol, seed=seed)
        assert run.sim.error is None
        assert run.violations == ()
        outcomes[run.sim.value["oom.0"]] += 1
    return outcomes


def test_the_readme_idiom_holds_the_lock_across_a_window(tmp_path: Path, protocol: str) -> None:
    holder = _readme_holder()
    assert '{ op = "sleep", seconds = 0 }' in holder
    outcomes = _reap_outcomes(tmp_path, holder, protocol)
    assert outcomes["refused"] > 0, outcomes
    assert outcomes["reaped"] > 0, outcomes


def test_lock_directly_followed_by_unlock_opens_no_window(tmp_path: Path, protocol: str) -> None:
    holder = _readme_holder().replace('{ op = "sleep", seconds = 0 }, ', "")
    assert "sleep" not in holder
    assert _reap_outcomes(tmp_path, holder, protocol) == Counter({"reaped": 100})
