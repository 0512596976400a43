"""User code as a first-class target: own protocols, plain async functions, Scenario objects
and scenario files get tokens, replay in a fresh process and run with ``jobs > 1``.

Every user module here is written to ``tmp_path`` and imported by name, as a user's would be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from odp_async.errors import ExplorationFailed, InvalidArgument, OdpError, ReplayMismatch
from odp_async.explore import (
    ExploreConfig,
    check,
    decode_token,
    encode_token,
    explore,
    replay,
)
from odp_async.explore.refs import object_ref
from odp_async.explore.target import Target
from odp_async.odp.protocols import resolve_protocol
from tests._usermod import pythonpath_env
from tests.conftest import UserModule

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

USER_MODULE = """
from odp_async import checkpoint, task_group
from odp_async.odp.protocols import PROTOCOLS
from odp_async.scenarios import Scenario


class MyProtocol(PROTOCOLS["odp2014"]):
    name = "my-odp2014"
    summary = "the 2014 patch, under another name"


class NotAProtocol:
    pass


async def lost_update(rounds):
    state = {"x": 0}

    async def increment():
        for _ in range(rounds):
            seen = state["x"]
            await checkpoint("read x")
            state["x"] = seen + 1

    async with task_group() as tg:
        tg.start_soon(increment, name="a")
        tg.start_soon(increment, name="b")
    assert state["x"] == 2 * rounds, f"lost update: x == {state['x']}"


async def logged_lost_update(rounds, log):
    import os

    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    await lost_update(rounds)


async def two_lost_updates():
    await lost_update(1)


SCENARIO = Scenario("user-lost-update", "two increments race", two_lost_updates, ("a", "b"),
                    needs_world=False)


def closure_protocol():
    class Inner(PROTOCOLS["odp2014"]):
        name = "inner-odp2014"
        summary = "made in a function"

    return Inner


def closure_function():
    async def inner():
        await lost_update(1)

    return inner
"""


@pytest.fixture
def user(user_module: UserModule) -> ModuleType:
    """The user module above, written to tmp_path and imported by its own name."""
    return user_module(USER_MODULE, "user_targets")


def run_fresh(code: str, pythonpath: Path | None = None) -> Any:
    """Run `code` in a fresh interpreter; return the JSON it prints last."""
    env = dict(os.environ) if pythonpath is None else pythonpath_env(pythonpath)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(pythonpath or ROOT),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


REPLAY_IN_FRESH_PROCESS = """
    import json
    from odp_async.explore import replay
    v = replay({token!r}).failure
    print(json.dumps([v.kind, v.step]))
"""


# --- a user protocol -------------------------------------------------------------------------


def test_a_user_protocol_by_class_and_by_reference_finds_the_race_and_replays_anywhere(
    user: ModuleType, tmp_path: Path
) -> None:
    ref = f"{user.__name__}:MyProtocol"
    # by class: this used to crash ("Object of type ABCMeta is not JSON serializable")
    # as soon as a failure was found
    by_class = explore("registration-race", user.MyProtocol, schedules=2000, shrink=False)
    by_ref = explore("registration-race", ref, schedules=2000, shrink=False)
    for result in (by_class, by_ref):
        assert result.label == f"registration-race/{ref}"  # not its name: no -p takes it
        assert result.failure is not None
        assert result.failure.violation.kind in ("stale-translation", "stale-dma")
    assert by_class.failure is not None
    assert by_ref.failure is not None
    assert by_class.failure.index == by_ref.failure.index
    assert by_class.failure.token == by_ref.failure.token
    token = by_class.failure.token
    assert token is not None
    assert decode_token(token).protocol == ref
    violation = by_class.failure.violation
    got = run_fresh(REPLAY_IN_FRESH_PROCESS.format(token=token), pythonpath=tmp_path)
    assert got == [violation.kind, violation.step]
    # workers find the protocol by its reference
    two = explore("registration-race", user.MyProtocol, schedules=2000, shrink=False, jobs=2)
    assert two.failure is not None
    assert (two.failure.index, two.failure.token) == (by_class.failure.index, token)


def test_a_protocol_reference_that_does_not_resolve_is_one_line(user: ModuleType) -> None:
    for ref, needle in [
        ("no_such_module_xyz:P", "cannot import module 'no_such_module_xyz'"),
        (f"{user.__name__}:Missing", "has no 'Missing'"),
        (f"{user.__name__}:NotAProtocol", "not an OdpProtocol subclass"),
        ("no-such-protocol", "unknown protocol 'no-such-protocol'"),
    ]:
        with pytest.raises(InvalidArgument, match=needle) as info:
            resolve_protocol(ref)
        assert "\n" not in str(info.value)
        with pytest.raises(InvalidArgument, match=needle):
            explore("registration-race", ref, schedules=1)
    assert resolve_protocol(f"{user.__name__}:MyProtocol") is user.MyProtocol


def test_a_protocol_made_in_a_function_runs_but_gets_no_token(user: ModuleType) -> None:
    inner = user.closure_protocol()
    result = explore("registration-race", inner, schedules=2000, shrink=False)
    assert result.label == (f"registration-race/{user.__name__}:closure_protocol.<locals>.Inner")
    assert result.failure is not None
    assert result.failure.token is None
    assert result.failure.no_token is not None
    assert "closure" in result.failure.no_token
    assert "no replay token" in result.failure.describe()
    # no other process can rebuild it: jobs=2 explores here, to the same result
    again = explore("registration-race", inner, schedules=2000, shrink=False, jobs=2)
    assert again.failure is not None
    assert again.failure.index == result.failure.index
    assert again.failure.token is None


# --- a plain async function --------------------------------------------------------------------


def test_check_finds_a_lost_update_with_a_token_that_replays_in_a_fresh_process(
    user: ModuleType, tmp_path: Path
) -> None:
    result = check(user.lost_update, 1, schedules=200)
    assert result.label == "lost_update"
    failure = result.failure
    assert failure is not None
    assert failure.violation.kind == "error"
    assert "lost update" in failure.violation.detail
    token = failure.shrunk_token
    assert token is not None
    decoded = decode_token(token)
    assert (decoded.source, decoded.args) == (f"{user.__name__}:lost_update", (1,))
    shrunk = failure.shrunk
    assert shrunk is not None
    assert shrunk.execution.failure is not None
    got = run_fresh(REPLAY_IN_FRESH_PROCESS.format(token=token), pythonpath=tmp_path)
    assert got == [shrunk.execution.failure.kind, shrunk.execution.failure.step]


def test_check_by_reference_is_the_same_as_by_function(user: ModuleType) -> None:
    by_fn = check(user.lost_update, 2, schedules=200, chooser="pct")
    by_ref = check(f"{user.__name__}:lost_update", 2, schedules=200, chooser="pct")
    assert by_fn.failure is not None
    assert by_ref.failure is not None
    assert by_fn.failure.index == by_ref.failure.index
    assert by_fn.failure.shrunk_token == by_ref.failure.shrunk_token


def test_check_with_two_jobs_finds_the_same_failure_and_token(
    user: ModuleType, tmp_path: Path
) -> None:
    log = tmp_path / "pids.log"
    kwargs: dict[str, Any] = dict(schedules=600, chooser="pct", seed=3)
    one = check(user.logged_lost_update, 3, str(log), jobs=1, **kwargs)
    log.write_text("")
    two = check(user.logged_lost_update, 3, str(log), jobs=2, **kwargs)
    pids = set(log.read_text().split())
    assert pids - {str(os.getpid())}  # schedules ran in worker processes
    assert one.failure is not None
    assert two.failure is not None
    assert one.failure.index == two.failure.index
    assert one.failure.token == two.failure.token
    assert one.failure.shrunk_token == two.failure.shrunk_token


def test_check_raises_a_failure_when_asked(user: ModuleType) -> None:
    with pytest.raises(ExplorationFailed) as info:
        check(user.lost_update, 1, schedules=200, raise_on_failure=True)
    error = info.value
    assert isinstance(error, AssertionError)
    assert isinstance(error, OdpError)
    assert error.result.failure is not None
    assert str(error) == error.result.failure.describe()
    assert "replay: odp-async replay odp2." in str(error)
    clean = check(user.lost_update, 1, schedules=1, chooser="dfs", preemption_bound=0)
    assert clean.failure is None


def test_a_closure_gets_no_token_and_no_workers(user: ModuleType) -> None:
    inner = user.closure_function()
    with pytest.raises(InvalidArgument, match="defined inside a function \\(a closure\\)") as e:
        object_ref(inner, "function")
    assert "\n" not in str(e.value)
    assert "module level" in str(e.value)
    result = check(inner, schedules=200)
    assert result.failure is not None
    assert result.failure.token is None
    assert "closure" in (result.failure.no_token or "")
    again = check(inner, schedules=200, jobs=2)  # explored here, to the same result
    assert again.failure is not None
    assert again.failure.index == result.failure.index
    with pytest.raises(InvalidArgument, match="closure"):
        encode_token(Target.resolve(inner), (), result.failure.execution, 1000)


def test_lambdas_and_replaced_objects_are_refused_with_a_reason(user: ModuleType) -> None:
    with pytest.raises(InvalidArgument, match="is a lambda"):
        object_ref(lambda: None, "function")
    original = user.lost_update
    user.lost_update = user.two_lost_updates  # the name now holds another object
    try:
        with pytest.raises(InvalidArgument, match="does not name this object"):
            object_ref(original, "function")
    finally:
        user.lost_update = original
    assert object_ref(original, "function") == f"{user.__name__}:lost_update"


def test_arguments_a_token_cannot_carry_mean_no_token(user: ModuleType) -> None:
    result = check(user.logged_lost_update, 1, Path("/dev/null"), schedules=200)
    assert result.failure is not None
    assert result.failure.token is None
    assert "not plain JSON values" in (result.failure.no_token or "")


def test_a_function_of_a_main_script_is_refused_with_a_reason() -> None:
    code = """
        import json
        from odp_async import checkpoint
        from odp_async.errors import InvalidArgument

        async def racy():
            await checkpoint()

        from odp_async.explore.refs import object_ref

        try:
            object_ref(racy, "function")
        except InvalidArgument as e:
            print(json.dumps(str(e)))
    """
    message = run_fresh(code)
    assert "defined in the __main__ script" in message
    assert "python -m" in message


# --- a Scenario object -----------------------------------------------------------------------


def test_a_module_level_scenario_object_gets_a_token_and_workers(
    user: ModuleType, tmp_path: Path
) -> None:
    result = explore(user.SCENARIO, schedules=200)
    assert result.failure is not None
    token = result.failure.token
    assert token is not None
    assert decode_token(token).source == f"{user.__name__}:SCENARIO"
    assert replay(token).failure == result.failure.violation
    got = run_fresh(REPLAY_IN_FRESH_PROCESS.format(token=token), pythonpath=tmp_path)
    assert got == [result.failure.violation.kind, result.failure.violation.step]
    two = explore(user.SCENARIO, schedules=600, jobs=2)
    assert two.failure is not None
    assert two.failure.token == token


# --- scenario files ----------------------------------------------------------------------------


def test_a_scenario_file_token_carries_the_content_not_the_path(tmp_path: Path) -> None:
    path = tmp_path / "mine" / "race.toml"
    path.parent.mkdir()
    shutil.copy(EXAMPLES / "registration-race.toml", path)
    result = explore(str(path), "odp2014", schedules=2000)
    assert result.failure is not None
    token = result.failure.shrunk_token
    assert token is not None
    decoded = decode_token(token)
    assert decoded.source == "race.toml"
    assert decoded.file is not None
    assert decoded.file.text == path.read_text()
    header = json.dumps([decoded.source, decoded.file.name, decoded.options, decoded.params])
    assert str(tmp_path) not in header
    assert str(Path.home()) not in header

    # moved, then deleted: the token replays from the text it carries
    moved = tmp_path / "elsewhere.toml"
    path.rename(moved)
    first = replay(token)
    moved.unlink()
    assert replay(token).failure == first.failure
    # the same content at any path is accepted
    same = tmp_path / "copy.toml"
    same.write_text(decoded.file.text)
    assert replay(token, scenario_file=same).failure == first.failure
    # a changed file is refused, naming the file and the change
    changed = tmp_path / "changed.toml"
    changed.write_text(decoded.file.text.replace('name = "registration-race"', 'name = "x"'))
    with pytest.raises(ReplayMismatch, match=r"changed\.toml changed since the token was made"):
        replay(token, scenario_file=changed)
    # a change of whitespace alone shows it (the stripped lines would look the same);
    # one of line endings alone says so
    lines = decoded.file.text.splitlines(keepends=True)
    spaced = tmp_path / "spaced.toml"
    spaced.write_text("".join([*lines[:8], lines[8].rstrip("\n") + "  \n", *lines[9:]]))
    with pytest.raises(ReplayMismatch, match=r"line 9: was '.*[^ ]', now '.*  '\)"):
        replay(token, scenario_file=spaced)
    crlf = tmp_path / "crlf.toml"
    crlf.write_bytes(decoded.file.text.replace("\n", "\r\n").encode())
    with pytest.raises(ReplayMismatch, match="only its line endings changed"):
        replay(token, scenario_file=crlf)


def test_a_scenario_file_explores_with_two_jobs(tmp_path: Path) -> None:
    path = tmp_path / "race.toml"
    shutil.copy(EXAMPLES / "registration-race.toml", path)
    one = explore(str(path), "odp2014", schedules=600, seed=1, shrink=False)
    two = explore(str(path), "odp2014", schedules=600, seed=1, shrink=False, jobs=2)
    assert one.failure is not None
    assert two.failure is not None
    assert (one.failure.index, one.failure.token) == (two.failure.index, two.failure.token)


# --- tokens and settings -----------------------------------------------------------------------


def test_a_token_carries_a_test_id(user: ModuleType) -> None:
    result = check(user.lost_update, 1, schedules=200, shrink=False)
    assert result.failure is not None
    target = Target.resolve(user.lost_update, args=(1,))
    token = encode_token(
        target, result.failure.schedule, result.failure.execution, 1000, test_id="t.py::t[1]"
    )
    assert decode_token(token).test_id == "t.py::t[1]"
    assert decode_token(result.failure.token or "").test_id is None


def test_unknown_settings_are_named() -> None:
    with pytest.raises(InvalidArgument, match=r"setting 'schedulez' \(did you mean 'schedules'"):
        explore("classic:lost-update", schedulez=10)
    with pytest.raises(InvalidArgument, match="unknown exploration setting 'dept'"):
        check("odp_async.scenarios.classic:lost_update", dept=2)
    with pytest.raises(InvalidArgument, match="unknown exploration setting 'nope'"):
        ExploreConfig().evolve(nope=1)
    with pytest.raises(InvalidArgument, match="neither a Scenario nor an async function"):
        check("odp_async.scenarios.classic:CLASSIC")
    with pytest.raises(InvalidArgument, match="cannot import module 'no_such_mod_xyz'"):
        check("no_such_mod_xyz:fn")


def test_a_function_of_a_script_run_with_python_m_is_named_by_its_module(tmp_path: Path) -> None:
    module = tmp_path / "usermain_script.py"
    module.write_text(
        textwrap.dedent(USER_MODULE)
        + textwrap.dedent(
            """
            if __name__ == "__main__":
                from odp_async.explore import check

                result = check(lost_update, 1, schedules=600, jobs=2)
                print(result.failure.token)
            """
        )
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, "-m", "usermain_script"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
        check=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    assert decode_token(token).source == "usermain_script:lost_update"
    kind, _ = run_fresh(REPLAY_IN_FRESH_PROCESS.format(token=token), pythonpath=tmp_path)
    assert kind == "error"


def test_built_in_scenario_objects_are_named_by_their_names() -> None:
    from odp_async.scenarios import BUILTIN, CLASSIC

    assert Target.resolve(BUILTIN["registration-race"], "odp2014").source == "registration-race"
    assert Target.resolve(CLASSIC["lost-update"]).source == "classic:lost-update"
