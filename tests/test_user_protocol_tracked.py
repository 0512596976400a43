"""Every protocol class is tracked when it is made, a user's as a built-in (the protocol
metaclass calls `odp_async.tracked.track_subclass`): the README's rename-only subclass
completes under dpor in the trace count of its parent, and a subclass that adds a field of
its own is noted, so a race on that field is still found under dpor (trial 22a f3).  The
protocols live in a module in ``tmp_path``, imported by name as a user's would be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odp_async.cli import main
from odp_async.explore import explore
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.odp.protocols.odp2014_ctx import Odp2014Ctx
from odp_async.tracked import is_tracked_class, track
from tests._usermod import forget, write_user_module

USER_MODULE = """
from typing import Any, ClassVar

from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.odp.protocols.odp2014_ctx import Odp2014Ctx


class MyProtocol(Odp2014Ctx):
    name: ClassVar[str] = "my-ctx"
    summary: ClassVar[str] = "odp2014-ctx, as I would write it"


class Again(MyProtocol):
    name: ClassVar[str] = "my-ctx-again"
    summary: ClassVar[str] = "a subclass of a user's subclass"


class SeqOnly(KvmSeq):
    name: ClassVar[str] = "user-seq-only"
    summary: ClassVar[str] = "kvm-seq whose faults check only a sequence of its own"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.mine = 0

    async def after_end(self, inv: Any) -> None:
        await super().after_end(inv)
        self.mine += 1

    def read_token(self, umem: Any) -> object:
        return self.mine

    def must_retry(self, umem: Any, rng: Any, token: object) -> bool:
        return self.mine != token


class BoxedSeq(KvmSeq):
    name: ClassVar[str] = "user-boxed-seq"
    summary: ClassVar[str] = "SeqOnly with its sequence in a plain dict nobody notes"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.box = {"seq": 0}

    async def after_end(self, inv: Any) -> None:
        await super().after_end(inv)
        self.box["seq"] += 1

    def read_token(self, umem: Any) -> object:
        return self.box["seq"]

    def must_retry(self, umem: Any, rng: Any, token: object) -> bool:
        return self.box["seq"] != token


class Counted(KvmSeq):
    name: ClassVar[str] = "user-counted"
    summary: ClassVar[str] = "kvm-seq that also counts its ends in a field of its own"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.ends = 0

    async def after_end(self, inv: Any) -> None:
        await super().after_end(inv)
        self.ends += 1
"""


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import importlib

    name = write_user_module(tmp_path, USER_MODULE, "userprototracked", monkeypatch)
    yield importlib.import_module(name)
    forget(name)


def test_every_user_protocol_class_is_tracked_when_made(usermod: Any) -> None:
    for cls in (usermod.MyProtocol, usermod.Again, usermod.SeqOnly, usermod.BoxedSeq):
        assert is_tracked_class(cls), cls


def test_an_instance_of_a_user_subclass_is_not_reported_untracked(usermod: Any) -> None:
    from odp_async.world import World

    world = World.build(usermod.MyProtocol)
    assert track(world.ctx.protocol).untracked == ()


@pytest.mark.parametrize("cls", ["MyProtocol", "Again"])
def test_a_rename_only_subclass_completes_in_its_parents_trace_count(
    usermod: Any, cls: str
) -> None:
    parent = explore("registration-race", Odp2014Ctx, chooser="dpor", schedules=3000)
    mine = explore("registration-race", getattr(usermod, cls), chooser="dpor", schedules=3000)
    assert parent.claim.startswith("complete:"), parent.claim
    assert mine.claim == parent.claim


def test_a_subclass_with_a_harmless_field_of_its_own_still_completes(usermod: Any) -> None:
    parent = explore("fault-vs-munmap", KvmSeq, chooser="dpor", schedules=3000)
    mine = explore("fault-vs-munmap", usermod.Counted, chooser="dpor", schedules=3000)
    assert parent.claim.startswith("complete:"), parent.claim
    assert mine.claim.startswith("complete:"), mine.claim


@pytest.mark.parametrize("cls", ["SeqOnly", "BoxedSeq"])
@pytest.mark.parametrize("scenario", ["fault-vs-munmap", "registration-race"])
def test_a_race_on_a_field_of_the_subclass_is_found_under_dpor_as_under_dfs(
    usermod: Any, scenario: str, cls: str
) -> None:
    # SeqOnly's field is noted by the hooks; BoxedSeq's plain dict makes its steps
    # unknown (less reduction, the same verdict).
    protocol = getattr(usermod, cls)
    dfs = explore(scenario, protocol, chooser="dfs", schedules=3000)
    dpor = explore(scenario, protocol, chooser="dpor", schedules=3000)
    for result in (dfs, dpor):
        assert result.failure is not None, result.claim
        assert "stale-translation" in result.claim, result.claim


def test_the_readme_command_completes_for_the_user_protocol(
    usermod: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["explore", "registration-race", "--chooser", "dpor", "--schedules", "3000"]
    assert main([*argv, "-p", "odp2014-ctx"]) == 0
    builtin = capsys.readouterr().out.strip().splitlines()[-1]
    assert main([*argv, "-p", f"{usermod.__name__}:MyProtocol"]) == 0
    mine = capsys.readouterr().out.strip().splitlines()[-1]
    assert builtin.startswith("complete: "), builtin
    assert mine == builtin
