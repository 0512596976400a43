"""A scenario whose body is no async function is a usage error naming the scenario,
never the protocol's ``error`` blamed on library code (trial: ``lambda w: None`` was
explored as "error ... TypeError: object NoneType can't be used in 'await' expression (in
task 'main' at .../odp_async/world.py)", exit 1).

A lambda, a plain ``def`` or a `functools.partial` of one is refused when the target is
resolved; a callable whose kind cannot be told (an object with a sync ``__call__``) is
caught where the run calls it, by the world for a model scenario and by the sim for a
general program."""

from __future__ import annotations

from pathlib import Path

import pytest

from odp_async.errors import BodyNotAwaitable, InvalidArgument, ScenarioUsageError
from odp_async.explore import explore
from odp_async.explore.target import Target
from odp_async.sim import run as sim_run
from odp_async.world import run_world
from tests._usermod import cli_in, write_user_module
from tests.test_cli_user import one_line_usage_error

_BODIES = """\
    import functools

    from odp_async.scenarios import Scenario


    def plain(world):
        return None


    def plain_two(world, extra):
        return None


    async def takes_two(world, extra):
        return {}


    class Sync:
        def __call__(self, world=None):
            return None


    class Async:
        async def __call__(self, world):
            return {}


    notasync = Scenario("notasync", "", lambda w: None, ("a",))
    plaindef = Scenario("plaindef", "", plain, ("a",))
    partplain = Scenario("partplain", "", functools.partial(plain_two, extra=1), ("a",))
    sync_object = Scenario("sync-object", "", Sync(), ("a",))
    sync_program = Scenario("sync-program", "", Sync(), (), needs_world=False)
    partasync = Scenario("partasync", "", functools.partial(takes_two, extra=1), ("a",))
    async_object = Scenario("async-object", "", Async(), ("a",))
"""


@pytest.mark.parametrize(
    ("scenario", "protocol", "message"),
    [
        (
            "notasync",
            ("-p", "naive"),
            "scenario 'notasync': its body <lambda> is a lambda, not an async function "
            "(define it with async def)",
        ),
        (
            "plaindef",
            ("-p", "naive"),
            "scenario 'plaindef': its body plain is a plain def, not an async function",
        ),
        (
            "partplain",
            ("-p", "naive"),
            "scenario 'partplain': its body plain_two is a plain def, not an async function",
        ),
        (
            "sync_object",
            ("-p", "naive"),
            "scenario 'sync-object': its body returned None, not an awaitable (define it "
            "with async def)",
        ),
        (
            "sync_program",
            (),
            "scenario 'sync-program': its body returned None, not an awaitable (define it "
            "with async def)",
        ),
    ],
)
def test_a_body_that_is_no_async_function_is_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    protocol: tuple[str, ...],
    message: str,
) -> None:
    name = write_user_module(tmp_path, _BODIES, "bodies", monkeypatch)
    done = cli_in(tmp_path, "explore", f"{name}:{scenario}", *protocol, "--schedules", "3")
    stderr = done.stderr
    if "returned None" in message:  # found by the run: after the line it starts with
        first, stderr = stderr.split("\n", 1)
        assert first.startswith("exploring "), done.stderr
    one_line_usage_error(done.returncode, done.stdout, stderr, message)
    assert "world.py" not in done.stderr
    assert "replay" not in done.stderr


@pytest.mark.parametrize("scenario", ["partasync", "async_object"])
def test_an_async_partial_or_async_callable_object_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    name = write_user_module(tmp_path, _BODIES, "bodies", monkeypatch)
    assert explore(f"{name}:{scenario}", "naive", schedules=2).failure is None


def test_the_run_time_check_from_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write_user_module(tmp_path, _BODIES, "bodies", monkeypatch)
    for ref, protocol in ((f"{name}:sync_object", "naive"), (f"{name}:sync_program", None)):
        with pytest.raises(ScenarioUsageError, match="its body returned None, not an awaitable"):
            explore(ref, protocol, schedules=2)
    with pytest.raises(InvalidArgument, match="is a lambda, not an async function"):
        Target.resolve(f"{name}:notasync", "naive")


def test_the_world_and_the_sim_name_a_main_that_returned_no_awaitable() -> None:
    run = run_world(lambda w: 7)  # type: ignore[arg-type,return-value]
    assert isinstance(run.sim.error, BodyNotAwaitable)
    assert str(run.sim.error).endswith(
        ".<lambda> returned 7, not an awaitable (define it with async def)"
    )
    with pytest.raises(
        BodyNotAwaitable,
        match=r"the run's main function .*<lambda> returned 'x', not an awaitable",
    ):
        sim_run(lambda: "x")  # type: ignore[arg-type,return-value]
