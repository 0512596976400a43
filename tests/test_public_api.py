"""The public API is what `__init__` re-exports; this pins it so changes are deliberate."""

from __future__ import annotations

import importlib

import odp_async

PUBLIC = {
    "odp_async": [
        "Completion",
        "Condition",
        "ForeignAwait",
        "IntervalHandle",
        "IntervalTree",
        "InternalError",
        "InvalidArgument",
        "InvariantViolation",
        "MAX_DRAW",
        "Mutex",
        "NondeterminismError",
        "OdpError",
        "ProtocolViolation",
        "RWLock",
        "ReplayMismatch",
        "SlotPool",
        "WaitQueue",
        "WouldBlock",
        "__version__",
        "cancel_scope",
        "cancelled_exc_class",
        "checkpoint",
        "current_task",
        "draw",
        "fail_after",
        "move_on_after",
        "now",
        "sim",
        "sleep",
        "task_group",
        "task_name",
    ],
    "odp_async.sim": [
        "BlockedTask",
        "Cancelled",
        "Chooser",
        "Deadlock",
        "DeadlockError",
        "FifoChooser",
        "RandomChooser",
        "ReplayChooser",
        "ScriptChooser",
        "SimResult",
        "StepLimitExceeded",
        "run",
    ],
    "odp_async.explore": [
        "CHOOSERS",
        "ExplorationFailed",
        "ExplorationInconclusive",
        "Executor",
        "ExploreConfig",
        "ExploreInterrupted",
        "ExploreResult",
        "Failure",
        "Footprint",
        "InlineExecutor",
        "ProcessExecutor",
        "ProgressUpdate",
        "SharedCell",
        "Target",
        "Verdict",
        "check",
        "cluster_executor",
        "decode_token",
        "encode_token",
        "explore",
        "replay",
        "shrink",
    ],
    "odp_async.tracked": [
        "TrackReport",
        "TrackedBag",
        "TrackedDict",
        "TrackedList",
        "TrackedRanges",
        "TrackedSet",
        "is_tracked_class",
        "track",
        "track_subclass",
        "tracked",
        "tracking",
    ],
}


def test_public_names_are_pinned() -> None:
    for module_name, names in PUBLIC.items():
        module = importlib.import_module(module_name)
        assert sorted(module.__all__) == sorted(names), module_name
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_verdicts_are_pinned() -> None:
    """The verdicts a result may say; ``inconclusive`` (runs unfinished at the step
    bound) is one of them, so no result calls such a run ``clean``, and no scenario may
    expect it."""
    from odp_async.explore import Verdict
    from odp_async.scenarios import Verdict as ScenarioVerdict
    from odp_async.scenarios.model import EXPECTABLE

    assert Verdict is ScenarioVerdict
    assert [v.value for v in Verdict] == [
        "clean",
        "found",
        "deadlock",
        "starvation",
        "error",
        "inconclusive",
    ]
    assert Verdict.INCONCLUSIVE not in EXPECTABLE
    assert set(EXPECTABLE) == set(Verdict) - {Verdict.INCONCLUSIVE}


def test_errors_derive_from_builtins() -> None:
    assert issubclass(odp_async.InvalidArgument, ValueError)
    assert issubclass(odp_async.ProtocolViolation, RuntimeError)
    assert issubclass(odp_async.InvariantViolation, AssertionError)
    for name in ("InvalidArgument", "ProtocolViolation", "ReplayMismatch", "InternalError"):
        assert issubclass(getattr(odp_async, name), odp_async.OdpError)


def test_model_layers_do_not_import_anyio_or_trio() -> None:
    """Only the live runtime may import anyio/trio (DESIGN section 3)."""
    import pathlib

    root = pathlib.Path(odp_async.__file__).parent
    allowed = {root / "_runtime" / "_live.py"}
    offenders = []
    for path in root.rglob("*.py"):
        if path in allowed:
            continue
        text = path.read_text()
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import anyio", "import trio", "from anyio", "from trio")):
                offenders.append(f"{path.relative_to(root)}: {stripped}")
    assert offenders == []


def test_foreign_await_is_the_error_of_the_errors_module() -> None:
    from odp_async.errors import ForeignAwait, InvalidArgument

    assert odp_async.ForeignAwait is ForeignAwait
    assert issubclass(odp_async.ForeignAwait, InvalidArgument)
