"""Messages a new user misread (trial: usage errors reported as bugs, or misnamed).

A model scenario whose body takes no world (``needs_world=False`` forgotten) was asked
for a protocol, then reported as an ``error`` with a replay token; ``expected={"x":
"clean"}`` was refused listing "clean" as a choice; ``show TOKEN`` called the token an
unknown scenario; an async generator target or protocol hook was called "not an async
def"; a replay that ran past its recording asked for "choice 16" of 16; a mistyped
``.toml`` name listed every scenario instead of the file next to it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from odp_async import checkpoint, task_group
from odp_async._runtime import sim
from odp_async._runtime.choosers import ReplayChooser
from odp_async.cli import ExitCode
from odp_async.errors import InvalidArgument, ProtocolUsageError, ReplayMismatch
from odp_async.explore import explore
from odp_async.explore.target import Target
from odp_async.scenarios import Scenario, Verdict
from tests._usermod import cli_in, write_user_module
from tests.test_cli import run_cli
from tests.test_cli_user import one_line_usage_error

_FORGOT = """\
    from odp_async import checkpoint
    from odp_async.scenarios import Scenario


    async def no_world():
        await checkpoint("no world")
        return {}


    async def takes_two(world, rounds):
        await checkpoint("two")
        return {}


    async def takes_world(world):
        await checkpoint("one")
        return {}


    forgot = Scenario("forgot", "", no_world, ())
    two = Scenario("two", "", takes_two, ())
    plain_with_world = Scenario("plain-with-world", "", takes_world, (), needs_world=False)
    plain = Scenario("plain", "", no_world, (), needs_world=False)
"""

_WORLD_NOT_TAKEN = "does not take the world argument"


@pytest.mark.parametrize("protocol", [(), ("-p", "odp2014")])
def test_a_model_body_without_the_world_is_a_usage_error_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: tuple[str, ...]
) -> None:
    name = write_user_module(tmp_path, _FORGOT, "forgot", monkeypatch)
    done = cli_in(tmp_path, "explore", f"{name}:forgot", *protocol)
    one_line_usage_error(
        done.returncode,
        done.stdout,
        done.stderr,
        "scenario 'forgot': its body no_world() does not take the world argument",
        "needs_world=False",
    )
    assert "give a protocol" not in done.stderr  # not the misleading ask
    assert "replay" not in done.stderr  # no token: no run was made


def test_a_body_that_cannot_take_what_a_run_passes_is_refused_from_python(
    user_module: Any,
) -> None:
    mod: ModuleType = user_module(_FORGOT, "forgot")
    with pytest.raises(InvalidArgument, match=f"scenario 'forgot': .*{_WORLD_NOT_TAKEN}"):
        explore(mod.forgot, "odp2014")
    with pytest.raises(InvalidArgument, match=f"scenario 'two': .*{_WORLD_NOT_TAKEN}"):
        explore(mod.two, "odp2014")
    with pytest.raises(
        InvalidArgument,
        match=r"scenario 'plain-with-world': its body takes_world\(world\) cannot be called "
        r"with no arguments",
    ):
        explore(mod.plain_with_world)


def test_a_program_scenario_by_reference_refuses_arguments(user_module: Any) -> None:
    mod: ModuleType = user_module(_FORGOT, "forgot")
    # its body is called with none: the arguments were silently dropped
    with pytest.raises(InvalidArgument, match="scenario 'plain' takes no arguments"):
        Target.resolve(f"{mod.__name__}:plain", args=(1,))
    Target.resolve(f"{mod.__name__}:plain")  # without: fine


def test_expected_verdicts_may_be_given_by_their_value() -> None:
    async def body(world: object) -> dict[str, object]:
        return {}

    s = Scenario(
        "s",
        "",
        body,
        (),
        expected={"naive": "found", "odp2014": Verdict.CLEAN},
        script=(("a", None),),
        script_expected={"naive": "deadlock"},
    )
    assert s.expected_for("naive") is Verdict.FOUND
    assert s.expected_for("odp2014") is Verdict.CLEAN
    assert s.script_expected_for("naive") is Verdict.DEADLOCK
    for bad in ("founds", "inconclusive"):
        with pytest.raises(InvalidArgument, match=f"scenario 's': '{bad}' expected of 'naive'"):
            Scenario("s", "", body, (), expected={"naive": bad})


@pytest.mark.parametrize("command", ["show", "explore"])
def test_a_replay_token_given_as_a_scenario_says_to_replay_it(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    token = "odp2.eNoljDEOgzAUQzmL5wglqCx_7w26VR0QCQwo_OgXVaCIu9cCT7af5Y.a3e12a62"
    code, out, err = run_cli(capsys, command, token)
    one_line_usage_error(
        code, out, err, "odp2.eNoljDEOgzAUQzm... is a replay token", "odp-async replay TOKEN"
    )
    assert "unknown scenario" not in err


_AGEN = """\
    from odp_async.odp.protocols import PROTOCOLS


    async def agen():
        yield 1


    def hooked():
        class Hooked(PROTOCOLS["odp2014"]):
            name = "hooked"

            async def after_end(self, inv):
                yield 1

        return Hooked
"""


def test_an_async_generator_target_is_named_as_one(tmp_path: Path, user_module: Any) -> None:
    mod: ModuleType = user_module(_AGEN, "agen")
    done = cli_in(tmp_path, "explore", f"{mod.__name__}:agen")
    one_line_usage_error(
        done.returncode,
        done.stdout,
        done.stderr,
        f"{mod.__name__}:agen is <function agen",
        "an async generator (an `async def` with `yield`), which cannot be awaited",
    )


def test_a_protocol_hook_written_as_an_async_generator_is_named_as_one(
    user_module: Any,
) -> None:
    mod: ModuleType = user_module(_AGEN, "agen")
    with pytest.raises(
        ProtocolUsageError,
        match=r"after_end must be an async def, .* got an async generator \(an async def "
        r"with yield, which cannot be awaited\)",
    ):
        mod.hooked()


async def _two_steps() -> None:
    async def one() -> None:
        await checkpoint("a")
        await checkpoint("b")

    async with task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)


def test_a_replay_past_its_recording_says_it_asked_for_more() -> None:
    with pytest.raises(ReplayMismatch) as caught:
        sim.run(_two_steps, chooser=ReplayChooser([0, 0]))
    text = str(caught.value)
    assert text.startswith(
        "the recorded schedule has 2 choices, but the run asked for more than the 2 recorded "
        "(one more, among "
    ), text
    assert "choice 2" not in text


@pytest.mark.parametrize(
    ("given", "suggested"),
    [("svm-race.tml", "svm-race.toml"), ("sub/svm_race.toml.", "sub/svm-race.toml")],
)
def test_a_mistyped_scenario_file_suggests_the_file_next_to_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: str,
    suggested: str,
) -> None:
    (tmp_path / "sub").mkdir()
    for folder in (tmp_path, tmp_path / "sub"):
        (folder / "svm-race.toml").write_text("")
        (folder / "unrelated.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "explore", given)
    one_line_usage_error(
        code, out, err, f"{given}: no such scenario file (did you mean {suggested}?)"
    )
    assert "registration-race" not in err  # not the list of every scenario
    # no close file: the list as before
    code, out, err = run_cli(capsys, "explore", "other.tml")
    assert code == ExitCode.USAGE
    assert "unknown scenario 'other.tml'" in err
