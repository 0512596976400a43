"""Values a new user's trial (19c) found accepted or shown wrong: a SlotPool of any size
(f4), token headers with fields that cannot apply (f5), a boolean shown as an address
(f6), ``--cluster local:N`` unbounded (f7), schedule numbers past 2**64 (f8), and ints
that took a bool for 1.  Each is exit 2 and one line naming the value, or
`InvalidArgument` naming it, through `main(argv)` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from odp_async import SlotPool
from odp_async.cli import ExitCode, main
from odp_async.errors import InvalidArgument
from odp_async.explore import ExploreConfig, explore
from odp_async.explore.executors import cluster_executor
from odp_async.sync import MAX_POOL_SIZE

from ._support import check_outcome, reencode, token_parts, with_header

pytestmark = pytest.mark.timeout(120)

TOP = 2**64


def usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    code = main(argv)
    _out, err = capsys.readouterr()
    check_outcome(code, err, {ExitCode.USAGE})
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


# --- f4: a SlotPool allocates its slots: bounded ---------------------------------------


@pytest.mark.parametrize("size", [10**12, MAX_POOL_SIZE + 1])
def test_a_slot_pool_too_large_to_allocate(size: int) -> None:
    with pytest.raises(InvalidArgument, match=f"at most .*{MAX_POOL_SIZE}.*got {size}"):
        SlotPool(size)


def test_a_slot_pool_of_a_bool() -> None:
    with pytest.raises(InvalidArgument, match="got True"):
        SlotPool(True)


# --- ints that took a bool for 1 ------------------------------------------------------


def test_the_model_s_ints_refuse_a_bool() -> None:
    from odp_async.explore.matrix import verdict_matrix
    from odp_async.mm import File
    from odp_async.subscribers.base import check_max_retries

    with pytest.raises(InvalidArgument, match="got True"):
        File("f", True, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="got True"):
        check_max_retries(True)
    with pytest.raises(InvalidArgument, match="got True"):
        verdict_matrix(budget=True)


@pytest.mark.parametrize("backend", ["sim", "asyncio"])
def test_sleep_and_timeouts_refuse_a_bool(backend: str) -> None:
    import odp_async as oa
    from odp_async import sim
    from odp_async._runtime._live import run_live

    async def main() -> list[str]:
        seen = []
        for call in (lambda: oa.sleep(True), lambda: oa.sleep("1")):  # type: ignore[arg-type]
            try:
                await call()
            except InvalidArgument as e:
                seen.append(str(e))
        try:
            with oa.fail_after(True):
                pass
        except InvalidArgument as e:
            seen.append(str(e))
        return seen

    seen = sim.run(main).value if backend == "sim" else run_live(main, backend=backend)
    assert [m.rsplit("got ", 1)[1] for m in seen] == ["True", "'1'", "True"], seen


# --- f5: token header fields that cannot apply ----------------------------------------


@pytest.fixture(scope="module")
def general_token() -> str:
    """A token of a program that takes no protocol (its header's 'p' is null)."""
    result = explore("classic:lost-update", chooser="random", schedules=200)
    assert result.failure is not None
    assert result.failure.shrunk_token is not None
    return result.failure.shrunk_token


def test_a_token_with_an_unknown_header_field(
    capsys: pytest.CaptureFixture[str], general_token: str
) -> None:
    usage_error(capsys, ["replay", with_header(general_token, {"zz": 1})], '"zz"', "not know")


@pytest.mark.parametrize(
    ("field", "inner"), [("m", False), ("k", False), ("o", True)], ids=["bound", "kind", "nested"]
)
def test_a_token_whose_header_writes_a_field_twice(
    capsys: pytest.CaptureFixture[str], general_token: str, field: str, inner: bool
) -> None:
    # json.loads keeps the last of two equal keys: the header would say two things
    version, raw, packed = token_parts(general_token)
    header = raw.decode()
    if inner:
        edited = header.replace('"o":{}', '"o":{"x":1,"x":2}', 1)
        field = "x"
    else:
        edited = header.replace("{", f'{{"{field}":{json.dumps(json.loads(header)[field])},', 1)
    assert edited != header
    usage_error(capsys, ["replay", reencode(version, edited, packed)], f'"{field}"', "twice")


def test_a_token_with_options_and_no_protocol(
    capsys: pytest.CaptureFixture[str], general_token: str
) -> None:
    edited = with_header(general_token, {"o": {"clamp": False}})
    usage_error(capsys, ["replay", edited], "clamp", "names no protocol")


@pytest.mark.parametrize("version", ["x" * 41, "0.1\n0"])
def test_a_token_with_a_version_that_is_not_one(
    capsys: pytest.CaptureFixture[str], general_token: str, version: str
) -> None:
    usage_error(capsys, ["replay", with_header(general_token, {"v": version})], "'v'")


def test_a_token_of_another_version_replays_and_says_so(
    capsys: pytest.CaptureFixture[str], general_token: str
) -> None:
    # README: the version is reported, not required
    code = main(["replay", with_header(general_token, {"v": "9.9.9"})])
    _out, err = capsys.readouterr()
    assert code == ExitCode.VIOLATION, err
    assert err.count("\n") == 1, err
    assert "made by odp_async 9.9.9" in err, err


# --- f6: a boolean is shown as written -------------------------------------------------

SCENARIO = """\
[scenario]
name = "mine"
protocols = ["naive"]

[setup]
ops = [
    {{ op = "mmap", start = 0x0, pages = 8 }},
    {{ op = "populate", start = 0x0, pages = 8 }},
    {{ op = "register", mr = "A", start = 0x0, pages = 4 }},
]

[[actor]]
name = "faulter"
ops = [{{ op = "fault", mr = "A", {key} = {value} }}]
"""


@pytest.mark.parametrize(("key", "value"), [("address", "true"), ("address", "false")])
def test_a_boolean_where_an_address_goes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, key: str, value: str
) -> None:
    path = tmp_path / "f6.toml"
    path.write_text(SCENARIO.format(key=key, value=value))
    err = usage_error(capsys, ["explore", str(path)], f"{key}:", f"got {value} (boolean)")
    assert "0x" not in err.split("got")[-1], err


# --- f7: --cluster local:N is capped as --jobs is --------------------------------------


def test_cluster_local_is_capped_to_the_cpus(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from odp_async import cli
    from odp_async.explore import executors

    asked: list[str] = []

    def fake(where: str) -> Any:
        asked.append(where)
        raise InvalidArgument(f"(no cluster started for {where})")

    monkeypatch.setattr(executors, "cluster_executor", fake)
    monkeypatch.setattr(cli, "_cpus", lambda: 2)
    for n in ("64", "99999", "9" * 40):
        code = main(
            ["explore", "classic:lost-update", "--chooser", "random", "--cluster", f"local:{n}"]
        )
        _out, err = capsys.readouterr()
        assert code == ExitCode.USAGE, err
        assert f"--cluster local:{n} capped to local:2 (the CPUs: 2)" in err, err
    assert asked == ["local:2"] * 3


@pytest.mark.parametrize("n", ["1025", "9" * 13, "99999"])
def test_cluster_executor_bounds_local_workers(n: str) -> None:
    with pytest.raises(InvalidArgument, match=f"at most 1024 workers.*local:{n}"):
        cluster_executor(f"local:{n}")


# --- f8: schedule numbers stay below 2**64 ---------------------------------------------


def test_start_plus_schedules_past_2_64(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explore", "classic:lost-update", "--chooser", "random", "--all-failures"]
    usage_error(
        capsys,
        [*argv, "--start", str(TOP - 1), "--schedules", "5"],
        f"--start {TOP - 1} + --schedules 5",
        "2**64",
    )
    with pytest.raises(InvalidArgument, match="start \\+ schedules must be at most 2\\*\\*64"):
        explore("classic:lost-update", chooser="random", start=TOP - 1, schedules=2)
    with pytest.raises(InvalidArgument, match="start \\+ schedules"):
        ExploreConfig(chooser="random", start=TOP - 2).evolve(schedules=3)


def test_the_last_schedule_reruns_alone(capsys: pytest.CaptureFixture[str]) -> None:
    # the README's recipe, schedule N by --start N-1 --schedules 1, for N = 2**64
    code = main(
        [
            "explore",
            "classic:lost-update",
            "--chooser",
            "random",
            "--start",
            str(TOP - 1),
            "--schedules",
            "1",
            "--no-shrink",
        ]
    )
    _out, err = capsys.readouterr()
    assert code in (ExitCode.OK, ExitCode.VIOLATION), err
    assert "error" not in err, err
