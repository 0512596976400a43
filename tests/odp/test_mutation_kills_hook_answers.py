"""A hook's wrong answer inside a run is refused word for word (found by mutation
testing, ``tools/mutation.sh odp``): the ODP core's checks of ``fault_commit`` and
``holds_back`` and `TreeProtocol`'s check of ``must_retry`` name the hook, the value and
what the contract expects, as `hook_returned` words it."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from odp_async import _runtime as rt
from odp_async.addr import PAGE_SIZE as P
from odp_async.addr import AddrRange
from odp_async.errors import ProtocolUsageError
from odp_async.mm import InvalidateEvent, Invalidation
from odp_async.odp.protocols.kvm_seq import KvmSeq
from odp_async.world import World, run_world


class CommitAnswersOne(KvmSeq):
    name: ClassVar[str] = "t-commit-one"

    async def fault_commit(self, umem: Any, rng: Any, token: object, pages: Any) -> bool:
        await super().fault_commit(umem, rng, token, pages)
        return 1  # type: ignore[return-value]


class MustRetryAnswersOne(KvmSeq):
    name: ClassVar[str] = "t-must-retry-one"

    def must_retry(self, umem: Any, rng: Any, token: object) -> bool:
        return 1  # type: ignore[return-value]


class HoldsBackAnswersOne(KvmSeq):
    name: ClassVar[str] = "t-holds-back-one"

    def holds_back(self, umem: Any, rng: Any) -> bool:
        return 1  # type: ignore[return-value]


def _refusal(cls: type[KvmSeq], hook: str, expected: str) -> str:
    return (
        f"protocol {cls.name!r} ({__name__}:{cls.__qualname__}): {hook}() returned 1 of "
        f"type int; expected {expected}"
    )


@pytest.mark.parametrize(
    ("cls", "hook", "expected"),
    [
        (CommitAnswersOne, "fault_commit", "a bool (True: installed, False: retry)"),
        (MustRetryAnswersOne, "must_retry", "a bool (True: retry)"),
    ],
)
def test_a_commit_s_wrong_answer_is_refused_word_for_word(
    cls: type[KvmSeq], hook: str, expected: str
) -> None:
    errors: list[str] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        with pytest.raises(ProtocolUsageError) as info:
            await w.ctx.fault(a, 0, write=True)
        errors.append(str(info.value))

    run_world(body, protocol=cls).sim.unwrap()
    assert errors == [_refusal(cls, hook, expected)]


def test_holds_back_s_wrong_answer_at_an_invalidation_end_is_refused_word_for_word() -> None:
    """The core asks ``holds_back`` when an invalidation ends while a fault is pending
    (here F, kept waiting by X): its int answer is refused there, in the invalidating
    task."""
    errors: list[str] = []

    async def body(w: World) -> None:
        p = w.protocol
        assert isinstance(p, KvmSeq)
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        x = Invalidation(9, AddrRange(0, P), InvalidateEvent.UNMAP)
        await p.before_start(x)

        async def fault() -> None:
            await w.ctx.fault(a, 0, write=True)

        async with rt.task_group() as tg:
            tg.start_soon(fault, name="F")
            for _ in range(1000):
                if len(p._idle):
                    break
                await rt.checkpoint()
            with pytest.raises(ProtocolUsageError) as info:
                await w.mm.madvise_dontneed(4 * P, P)
            errors.append(str(info.value))
            tg.cancel_scope.cancel()

    run_world(body, protocol=HoldsBackAnswersOne).sim.unwrap()
    assert errors == [_refusal(HoldsBackAnswersOne, "holds_back", "a bool")]
