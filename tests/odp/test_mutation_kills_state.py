"""Each protocol's exact bookkeeping, step by step (found lacking by mutation testing:
tools/mutation.sh).  The counters are documented state (``Umem.seq``: finished
invalidations; ``count``: running ones; kvm-seq's ``seq``/``in_progress``; interval-seq's
odd/even ``seq``), so a test pins their values, not only the verdicts they lead to."""

from __future__ import annotations

from typing import Any

import pytest

from odp_async.addr import PAGE_SIZE, AddrRange
from odp_async.device import FaultOutcome
from odp_async.odp import PROTOCOLS, Umem
from odp_async.odp.protocols import FaultAborted, OdpProtocol
from odp_async.world import World, run_world

P = PAGE_SIZE


def snapshot(w: World, a: Umem) -> dict[str, Any]:
    p = w.protocol
    out: dict[str, Any] = {"seq": a.seq, "count": a.count, "dying": a.dying}
    for key in ("seq", "in_progress", "dead", "active", "ncount"):
        if key in vars(p):
            out["p." + key] = vars(p)[key]
    iseq = getattr(a.proto, "iseq", None)
    if iseq is not None:
        out["iseq"] = iseq
    return out


#: After registering A, after a fault and two invalidations of A, after the mm's exit.
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "naive": [
        {"seq": 0, "count": 0, "dying": False},
        {"seq": 0, "count": 0, "dying": False},
        {"seq": 0, "count": 0, "dying": False},
    ],
    "odp2014": [
        {"seq": 0, "count": 0, "dying": False},
        {"seq": 2, "count": 0, "dying": False},
        {"seq": 2, "count": 1, "dying": True},
    ],
    "odp2014-ctx": [
        {"seq": 0, "count": 0, "dying": False, "p.ncount": 0},
        {"seq": 2, "count": 0, "dying": False, "p.ncount": 0},
        {"seq": 2, "count": 1, "dying": True, "p.ncount": 1},
    ],
    "range-list": [
        {"seq": 0, "count": 0, "dying": False},
        {"seq": 2, "count": 0, "dying": False},
        {"seq": 3, "count": 0, "dying": True},
    ],
    "hmm-pool": [
        {"seq": 0, "count": 0, "dying": False, "p.active": {}},
        {"seq": 2, "count": 0, "dying": False, "p.active": {}},
        {"seq": 3, "count": 0, "dying": True, "p.active": {}},
    ],
    "kvm-seq": [
        {"seq": 0, "count": 0, "dying": False, "p.seq": 0, "p.in_progress": 0, "p.dead": False},
        {"seq": 0, "count": 0, "dying": False, "p.seq": 2, "p.in_progress": 0, "p.dead": False},
        {"seq": 0, "count": 0, "dying": False, "p.seq": 2, "p.in_progress": 1, "p.dead": True},
    ],
    "interval-seq": [
        {"seq": 0, "count": 0, "dying": False, "p.seq": 2, "p.active": 0, "p.dead": False}
        | {"iseq": 1},
        {"seq": 0, "count": 0, "dying": False, "p.seq": 6, "p.active": 0, "p.dead": False}
        | {"iseq": 5},
        {"seq": 0, "count": 0, "dying": True, "p.seq": 8, "p.active": 0, "p.dead": True}
        | {"iseq": 7},
    ],
}

#: The text of the fault-end event of a fault on A after the mm's exit.
AFTER_EXIT = {
    "naive": "failed: get_user_pages: the mm has exited",
    "odp2014": "failed: A is dying",
    "odp2014-ctx": "failed: A is dying",
    "range-list": "failed: A is dying",
    "hmm-pool": "failed: A is dying",
    "kvm-seq": "failed: the mm was released",
    "interval-seq": "failed: the mm was released",
}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_counters_after_invalidations_and_exit(protocol: str) -> None:
    seen: list[dict[str, Any]] = []
    outcomes: list[FaultOutcome] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        seen.append(snapshot(w, a))
        outcomes.append(await w.ctx.fault(a, 0, write=True))
        await w.mm.madvise_dontneed(0, 4 * P)
        await w.mm.madvise_dontneed(0, 4 * P)
        seen.append(snapshot(w, a))
        await w.mm.exit()
        seen.append(snapshot(w, a))
        outcomes.append(await w.ctx.fault(a, 0, write=True))

    run = run_world(body, protocol=protocol)
    run.sim.unwrap()
    assert run.violations == ()
    assert seen == EXPECTED[protocol]
    assert outcomes == [FaultOutcome.RESOLVED, FaultOutcome.FAILED]
    ends = [e.detail for e in run.events if e.kind == "fault-end"]
    assert ends == ["fault A 0x0 resolved", f"fault A 0x0 {AFTER_EXIT[protocol]}"]


def test_kvm_seq_literal_release_only_zaps() -> None:
    """KVM's own release: no dead mark, no raised count; a fault that read the seq
    before the exit is not refused by the protocol (gup fails it instead)."""
    seen: list[dict[str, Any]] = []

    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        await w.ctx.fault(a, 0, write=True)
        token = w.protocol.read_token(a)  # type: ignore[attr-defined]
        await w.mm.exit()
        seen.append(snapshot(w, a))
        rng = AddrRange(0, P)
        seen.append({"begin": await w.protocol.fault_begin(a, rng)})
        seen.append({"commit": await w.protocol.fault_commit(a, rng, token, [])})
        seen.append({"table": len(a.table)})

    run_world(body, protocol="kvm-seq", options={"literal_release": True}).sim.unwrap()
    assert seen == [
        {"seq": 0, "count": 0, "dying": False, "p.seq": 0, "p.in_progress": 0, "p.dead": False},
        {"begin": 0},
        {"commit": True},
        {"table": 0},
    ]


async def _hook(out: list[tuple[str, object]], what: str, coro: Any) -> None:
    try:
        out.append((what, await coro))
    except FaultAborted as e:
        out.append((what, f"aborted: {e}"))


#: What each fault hook answers, called directly on A after the mm's exit, with a token
#: read before it.
HOOKS_AFTER_EXIT = {
    "naive": [("begin", 0), ("commit", True), ("wait", None)],
    "odp2014": [
        ("begin", "aborted: A is dying"),
        ("commit", "aborted: A is dying"),
        ("wait", "aborted: A is dying"),
    ],
    "odp2014-ctx": [
        ("begin", "aborted: A is dying"),
        ("commit", "aborted: A is dying"),
        ("wait", "aborted: A is dying"),
    ],
    "range-list": [
        ("begin", "aborted: A is dying"),
        ("commit", "aborted: A is dying"),
        ("wait", None),
    ],
    "hmm-pool": [
        ("begin", "aborted: A is dying"),
        ("commit", "aborted: A is dying"),
        ("wait", None),
    ],
    "kvm-seq": [
        ("begin", "aborted: the mm was released"),
        ("commit", "aborted: the mm was released"),
        ("wait", None),
    ],
    "interval-seq": [
        ("begin", "aborted: the mm was released"),
        ("commit", False),
        ("wait", None),
    ],
}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_fault_hooks_after_exit_and_registration_counts(protocol: str) -> None:
    """The fault hooks refuse (with the reason the fault-end event shows) once the mm
    has gone; ``odp_mrs_count`` and the subscription follow the registrations."""
    out: list[tuple[str, object]] = []

    async def body(w: World) -> None:
        p = w.protocol
        await w.mm.mmap(0, 8 * P)
        a = await w.ctx.register_mr(0, 8 * P, name="A")
        b = await w.ctx.register_mr(0, 4 * P, name="B")
        rng = AddrRange(0, P)
        out.append(("mrs", (w.ctx.odp_mrs_count, w.mm.is_registered(w.ctx.subscription))))
        await w.ctx.deregister_mr(b)
        out.append(("mrs", (w.ctx.odp_mrs_count, w.mm.is_registered(w.ctx.subscription))))
        token = await p.fault_begin(a, rng)
        out.append(("held back", p.holds_back(a, rng)))
        await w.mm.exit()
        await _hook(out, "begin", p.fault_begin(a, rng))
        await _hook(out, "commit", p.fault_commit(a, rng, token, []))
        await _hook(out, "wait", p.fault_wait(a, rng, token))
        await w.ctx.deregister_mr(a)
        out.append(("mrs", (w.ctx.odp_mrs_count, w.mm.is_registered(w.ctx.subscription))))

    run = run_world(body, protocol=protocol)
    run.sim.unwrap()
    assert run.violations == ()
    assert out == [
        ("mrs", (2, True)),
        ("mrs", (1, True)),
        ("held back", False),
        *HOOKS_AFTER_EXIT[protocol],
        ("mrs", (0, False)),
    ]


def _forgetful(base: type[OdpProtocol]) -> type[OdpProtocol]:
    """`base` with a broken remove: the region stays in the registry after its
    deregistration, so later callbacks touch it (each touch names its code path)."""

    class Forgetful(base):  # type: ignore[valid-type,misc]
        name = f"{base.name}-forgets-to-remove"

        async def remove(self, umem: Umem) -> None:
            self.ctx.odp_mrs_count -= 1

    return Forgetful


#: The use-after-release details: which code path touched the deregistered B.
START = "invalidate_range_start(inv0 madvise-dontneed [0x0, 0x8000))"
TOUCHES = {
    "naive": [START, "a fault commit", "release"],
    "odp2014": [
        "invalidate_range_start",
        START,
        "invalidate_range_end",
        "a fault commit",
        "release",
    ],
    "odp2014-ctx": [
        "invalidate_range_start",
        START,
        "invalidate_range_end",
        "a fault commit",
        "release",
    ],
    "range-list": ["invalidate_range_start", START, "a fault commit", "release"],
    "hmm-pool": ["invalidate_range_start", START, "a fault commit", "release"],
    "kvm-seq": [START, "a fault commit", "release"],
    "interval-seq": [START, "a fault commit", "release"],
}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_callback_path_reports_its_touch_of_a_deregistered_region(
    protocol: str,
) -> None:
    async def body(w: World) -> None:
        await w.mm.mmap(0, 8 * P)
        await w.ctx.register_mr(0, 4 * P, name="A")
        b = await w.ctx.register_mr(4 * P, 4 * P, name="B")
        token = await w.protocol.fault_begin(b, AddrRange(4 * P, 5 * P))
        await w.ctx.deregister_mr(b)
        await w.mm.madvise_dontneed(0, 8 * P)
        await w.protocol.fault_commit(b, AddrRange(4 * P, 5 * P), token, [])
        await w.mm.exit()

    run = run_world(body, protocol=_forgetful(PROTOCOLS[protocol]))
    run.sim.unwrap()
    assert set(run.kinds) == {"use-after-release"}
    details = [v.detail for v in run.violations]
    # the region's own checks at the point of use (its mutex's grant, its table's zap,
    # a store to its fields) fire too, each once per task (the checker reports each
    # distinct violation once)
    generic = [d for d in details if d.startswith(("mutex_lock(", "a device ", "a store "))]
    assert {
        "mutex_lock(B.umem_mutex) touched B after its deregistration",
        "a device page-table zap touched B after its deregistration",
    } <= set(generic)
    assert [d for d in details if d not in generic] == [
        f"{what} touched B after its deregistration" for what in TOUCHES[protocol]
    ]
