"""A ``fault_commit`` that says "installed" (True) but wrote no translation is a
``spurious-fault-failure``: the device can only fault again, and its DMA fails.  Before,
the run's DMA error showed only in the actors' values, and a protocol that never maps
(or maps only its first fault) was ``complete: N traces, no violation`` under dpor
(trial 40a, f1).  The check asks that no page of the range was ever installed in the
region's table: a protocol that returns True because the page is translated already, or
whose translation an invalidation zapped before the commit returned, is not one (a
check of the table before and after the commit took the second fault of a page that the
first one mapped, and a madvise zapped, for a violation: it is no longer made).  The
protocols live in a module in ``tmp_path``, imported as a user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odp_async.explore import explore
from tests._usermod import forget, import_user_module

USER_MODULE = """
from typing import Any, ClassVar

from odp_async import checkpoint
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.tracked import tracked


@tracked
class NeverMaps(KvmSeq):
    name: ClassVar[str] = "u-never-maps"
    summary: ClassVar[str] = "says installed, writes nothing"

    async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
        async with self.mmu_lock:
            return True


@tracked
class MapsOnce(KvmSeq):
    name: ClassVar[str] = "u-maps-once"
    summary: ClassVar[str] = "installs on its first commit only"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.mapped_once = False

    async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
        if self.mapped_once:
            return True
        self.mapped_once = True
        return await super().fault_commit(umem, rng, token, pages)


@tracked
class SkipsWhenMapped(KvmSeq):
    name: ClassVar[str] = "u-skips-when-mapped"
    summary: ClassVar[str] = "kvm-seq that answers True for a page translated already"

    async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
        async with self.mmu_lock:
            mapped = all(umem.table.get(vpn) is not None for vpn in rng.vpns())
        if mapped:
            await checkpoint("mapped already (a zap may run here)")
            return True
        return await super().fault_commit(umem, rng, token, pages)


@tracked
class InstallsThenYields(KvmSeq):
    name: ClassVar[str] = "u-installs-then-yields"
    summary: ClassVar[str] = "kvm-seq with a checkpoint after its install (a zap may run there)"

    async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
        done = await super().fault_commit(umem, rng, token, pages)
        await checkpoint("after the commit")
        return done
"""


TWO_FAULTS = """
[scenario]
name = "two-faults-and-a-madvise"
protocols = ["kvm-seq"]
[setup]
ops = [{ op = "mmap", start = 0x0, pages = 8 }, { op = "populate", start = 0x0, pages = 8 },
       { op = "register", mr = "G", start = 0x0, pages = 8 }]
[[actor]]
name = "first"
ops = [{ op = "fault", mr = "G", address = 0x2000, write = true }]
[[actor]]
name = "second"
ops = [{ op = "fault", mr = "G", address = 0x2000, write = true }]
[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x0, pages = 8 }]
"""


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = import_user_module(tmp_path, USER_MODULE, "commitinstall", monkeypatch)
    yield module
    forget(module.__name__)


@pytest.mark.parametrize("protocol", ["NeverMaps", "MapsOnce"])
@pytest.mark.parametrize("chooser", ["dpor", "portfolio"])
def test_a_commit_that_installs_nothing_is_found(
    usermod: Any, protocol: str, chooser: str
) -> None:
    cls = getattr(usermod, protocol)
    found = explore("registration-race", cls, chooser=chooser, schedules=500)
    assert found.failure is not None, found.claim
    assert found.failure.violation.kind == "spurious-fault-failure"
    assert (
        "a fault on B [0x14000, 0x15000) was reported resolved (fault_commit returned True), "
        "but no page of it was ever installed: the device can only fault again"
    ) in found.failure.describe(), found.failure.describe()


@pytest.mark.parametrize("protocol", ["SkipsWhenMapped", "InstallsThenYields"])
@pytest.mark.parametrize("scenario", ["registration-race", "fault-vs-munmap"])
def test_a_commit_that_found_the_page_mapped_or_saw_it_zapped_is_no_violation(
    usermod: Any, protocol: str, scenario: str
) -> None:
    for chooser in ("dpor", "random"):
        result = explore(scenario, getattr(usermod, protocol), chooser=chooser, schedules=400)
        assert result.failure is None, (chooser, result.failure.describe())


def test_a_commit_that_found_the_page_mapped_before_a_zap_is_no_violation(
    usermod: Any, tmp_path: Path
) -> None:
    # the second fault finds the first one's translation, answers True, and a madvise
    # zaps the page before the commit returns: translated when the commit began
    scenario = tmp_path / "two-faults.toml"
    scenario.write_text(TWO_FAULTS)
    result = explore(str(scenario), usermod.SkipsWhenMapped, chooser="dpor", schedules=1000)
    assert result.failure is None, result.failure.describe()
    assert result.schedules == 1000
