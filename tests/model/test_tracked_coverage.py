"""Every class of the model that holds shared state is tracked (`odp_async.tracked`).

Model scenarios run under DPOR with ``noted_only``: a step is exactly the accesses it
noted.  A class whose instances hold mutable state and that is not ``@tracked`` would be
invisible to the reduction, so this test walks every class the model's modules define and
fails for one that is neither tracked nor listed below with the reason it needs no
tracking.  A tracked class's exempt fields carry their reason in the decorator.
"""

from __future__ import annotations

import enum
import importlib
import inspect
from typing import Protocol

import attrs
import pytest

from odp_async.tracked import is_tracked_class

MODEL_MODULES = (
    "odp_async.mm",
    "odp_async.device",
    "odp_async.workqueue",
    "odp_async.srcu",
    "odp_async.world",
    "odp_async.check",
    "odp_async.intervals",
    "odp_async.odp.umem",
    "odp_async.odp.ucontext",
    "odp_async.odp.implicit",
    "odp_async.odp.protocols.base",
    "odp_async.odp.protocols.naive",
    "odp_async.odp.protocols.odp2014",
    "odp_async.odp.protocols.odp2014_ctx",
    "odp_async.odp.protocols.range_list",
    "odp_async.odp.protocols.hmm_pool",
    "odp_async.odp.protocols.kvm_seq",
    "odp_async.odp.protocols.interval_seq",
    "odp_async.subscribers.base",
    "odp_async.subscribers.kvm",
    "odp_async.subscribers.hmm_mirror",
    "odp_async.scenarios.builtin",
    "odp_async.scenarios.files",
)

#: Classes that need no tracking, each with its one-line reason.
NOT_SHARED = {
    "odp_async.intervals.IntervalHandle": "covered by its tree (tracked whole)",
    "odp_async.intervals._Node": "covered by its tree (tracked whole)",
    "odp_async.mm._FreeHint": "an index of the frames' free flags, read outside tracking runs",
    "odp_async.scenarios.files._Reader": "parses a scenario file, before any run",
    "odp_async.odp.protocols.base._ProtocolMeta": "a metaclass: freezes OPTIONS at class creation",
    "odp_async.world.PreparedWorld": "the explorer's handle on a set-up world, outside every run",
    "odp_async.scenarios.files._Semantics": "checks a parsed scenario file, before any run",
    "odp_async.odp.ucontext._Refusals": "one fault's own count, read by its task alone",
    "odp_async.odp.umem.RegionMutex": "a Mutex (notes itself); `region` set once, at birth",
}


def _model_classes() -> list[type]:
    found = []
    for name in MODEL_MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name:
                found.append(cls)
    return found


def _needs_tracking(cls: type) -> bool:
    if issubclass(cls, (BaseException, enum.Enum)) or Protocol in cls.__mro__[1:]:
        return False
    if attrs.has(cls) and cls.__setattr__ is not object.__setattr__:
        from attr import _make

        if cls.__setattr__ is _make._frozen_setattrs:  # type: ignore[attr-defined]
            return False  # a frozen record: a value
    # A class whose MRO declares no slots and no __dict__ has no instance state at all.
    return not (
        getattr(cls, "__slots__", None) == ()
        and all("__slots__" in k.__dict__ for k in cls.__mro__[:-1])
    )


def test_every_stateful_model_class_is_tracked_or_listed() -> None:
    missing = [
        f"{c.__module__}.{c.__qualname__}"
        for c in _model_classes()
        if _needs_tracking(c)
        and not is_tracked_class(c)
        and f"{c.__module__}.{c.__qualname__}" not in NOT_SHARED
    ]
    assert missing == [], f"model classes neither @tracked nor listed in NOT_SHARED: {missing}"


@pytest.mark.parametrize(
    "protocol",
    ["naive", "odp2014", "odp2014-ctx", "range-list", "hmm-pool", "kvm-seq", "interval-seq"],
)
def test_a_built_world_has_nothing_untracked(protocol: str) -> None:
    from odp_async.tracked import track
    from odp_async.world import World

    report = track(World.build(protocol))
    assert report.untracked == ()
    assert report.reached >= 10
