"""A driver developer's own protocols and scenario files, through the CLI in a fresh
process (trial 16): an exception is never a found race, the file's mistakes are usage
errors (exit 2, one line), bad protocol classes and options are one line, not a
traceback, a user protocol cannot pass for a built-in, and options a chooser ignores
are refused.  Every user file lives in ``tmp_path``."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odp_async.explore import ExploreConfig, explore
from tests._usermod import forget, write_user_module

BADPROTO = """
from typing import Any, ClassVar

from odp_async.odp.protocols.base import OdpProtocol
from odp_async.odp.protocols.naive import Naive
from odp_async.tracked import tracked


class Abstract(OdpProtocol):
    name = "abstract"
    summary = "forgot the hooks"


@tracked
class Impostor(Naive):
    name: ClassVar[str] = "kvm-seq"
    summary: ClassVar[str] = "naive under a built-in's name"


@tracked
class InitRaises(Naive):
    name: ClassVar[str] = "init-raises"

    def __init__(self, ctx: Any, **options: Any) -> None:
        raise RuntimeError("boom in __init__")


@tracked
class HookRaises(Naive):
    name: ClassVar[str] = "hook-raises"

    async def fault_begin(self, umem: Any, rng: Any) -> Any:
        raise KeyError("boom in fault_begin")


@tracked
class Knob(Naive):
    name: ClassVar[str] = "knob"
    OPTIONS: ClassVar[dict[str, Any]] = {"ratio": 1.0}


class SubRaises:
    def __init__(self, mm: Any, checker: Any, name: str) -> None:
        raise RuntimeError("boom in the subscriber")

    async def invalidate_range_start(self, inv: Any) -> None: ...

    async def invalidate_range_end(self, inv: Any) -> None: ...

    async def release(self) -> None: ...
"""

RACE = """
[scenario]
name = "{name}"
protocols = [{protocols}]

[setup]
ops = [
    {{ op = "mmap", start = 0x0, pages = 16 }},
    {{ op = "populate", start = 0x0, pages = 16 }},
    {{ op = "register", mr = "B", start = 0x0, pages = 16 }},{extra}
]

[[actor]]
name = "fault"
ops = [{{ op = "fault", mr = "B", address = 0x4000, write = true }}]

[[actor]]
name = "munmap"
ops = [{{ op = "munmap", start = 0x0, pages = 16 }}]
{actors}
[expected]
{expected}
"""


def race(
    tmp_path: Path,
    file: str,
    protocols: list[str],
    expected: dict[str, str],
    extra: str = "",
    actors: str = "",
) -> str:
    text = RACE.format(
        name=file.removesuffix(".toml"),
        protocols=", ".join(json.dumps(p) for p in protocols),
        extra=extra,
        actors=actors,
        expected="\n".join(f"{json.dumps(p)} = {json.dumps(v)}" for p, v in expected.items()),
    )
    (tmp_path / file).write_text(text)
    return file


@pytest.fixture
def user(tmp_path: Path) -> Path:
    """`tmp_path`, holding the module ``trial16proto`` (and, in this process, importable
    under its unique name `user_module`)."""
    (tmp_path / "trial16proto.py").write_text(BADPROTO)
    return tmp_path


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    name = write_user_module(tmp_path, BADPROTO, "trial16proto", monkeypatch)
    yield importlib.import_module(name)
    forget(name)


def cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The single error line of a usage error (exit 2, no traceback)."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# --- 1. an exception is its own verdict, never an expected found ----------------------------


def test_a_crashing_protocol_does_not_meet_an_expected_found(user: Path) -> None:
    file = race(
        user, "crash.toml", ["trial16proto:HookRaises"], {"trial16proto:HookRaises": "found"}
    )
    done = cli(user, "explore", file, "--schedules", "20")
    assert done.returncode == 1, done.stderr
    assert "error (expected found)" in done.stdout
    assert "0/1 protocols as expected" in done.stdout
    assert "KeyError: 'boom in fault_begin'" in done.stdout

    done = cli(user, "matrix", "--budget", "20", "--jobs", "1", "--scenario", file, "--json")
    assert done.returncode == 1, done.stderr
    (cell,) = json.loads(done.stdout)["cells"]
    assert (cell["expected"], cell["found"], cell["matches"]) == ("found", "error", False)
    assert cell["claim"] == "violation at schedule 1: error"


def test_a_real_race_still_meets_found(user: Path) -> None:
    """The other side: naive's stale translation in the same file is `found`."""
    file = race(user, "race.toml", ["naive"], {"naive": "found"})
    done = cli(user, "explore", file, "--schedules", "200")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1/1 protocols as expected" in done.stdout


# --- 2. the file's mistakes: usage errors, statically or from the run -----------------------


def test_an_mr_registered_twice_in_the_setup_is_refused_statically(user: Path) -> None:
    twice = '\n    { op = "register", mr = "B", start = 0x0, pages = 16 },'
    file = race(user, "twice.toml", ["naive"], {"naive": "found"}, extra=twice)
    line = one_line_error(cli(user, "explore", file), "twice.toml: setup.ops[3].mr", "'B'")
    assert "registered twice" in line
    one_line_error(cli(user, "matrix", "--scenario", file), "setup.ops[3].mr")


def test_an_actor_mmap_over_a_setup_mapping_is_refused_statically(user: Path) -> None:
    (user / "over.toml").write_text(
        textwrap.dedent(
            """
            [scenario]
            name = "over"
            [setup]
            ops = [{ op = "mmap", start = 0x0, pages = 4 }]
            [[actor]]
            name = "a"
            ops = [{ op = "mmap", start = 0x0, pages = 4 }]
            """
        )
    )
    one_line_error(
        cli(user, "explore", "over.toml", "-p", "odp2014"),
        "over.toml: actor[0].ops[0].start",
        "overlaps the mapping [0x0, 0x4000) that setup.ops[0] makes",
    )


def test_a_setup_the_model_refuses_at_run_time_is_a_usage_error(user: Path) -> None:
    """Two mmput in the setup, with no mmget: the first already puts a reference nobody
    got (a refcount-underflow the model records while the setup runs; no static rule
    knows): exit 2, naming the op, never a violation of every protocol."""
    puts = '\n    { op = "mmput" },\n    { op = "mmput" },'
    file = race(user, "puts.toml", ["naive", "odp2014"], {}, extra=puts)
    one_line_error(
        cli(user, "explore", file, "--schedules", "5"),
        "puts.toml: setup.ops[3]: mmput: the model refused it (refcount-underflow",
        "expected a setup the model accepts",
    )


def test_an_unordered_actor_mmap_the_model_refuses_is_a_usage_error(user: Path) -> None:
    """An actor maps what another actor unmaps, unordered: statically possible, refused
    by the model in the schedules where the mmap runs first."""
    mapper = '\n[[actor]]\nname = "remap"\nops = [{ op = "mmap", start = 0x0, pages = 4 }]\n'
    file = race(user, "remap.toml", ["odp2014"], {}, actors=mapper)
    one_line_error(
        cli(user, "explore", file, "--schedules", "50"),
        "remap.toml: actor[2].ops[0]: mmap [0x0, 0x4000) writable: the model refused it",
        "order the two with 'after'",
    )


def test_a_subscriber_whose_constructor_raises_is_a_usage_error(user: Path) -> None:
    sub = '\n    { op = "subscribe", sub = "s", kind = "trial16proto:SubRaises" },'
    file = race(user, "sub.toml", ["naive"], {}, extra=sub)
    one_line_error(
        cli(user, "explore", file, "--schedules", "5"),
        "sub.toml: setup.ops[3].kind: subscriber class SubRaises",
        "raised RuntimeError: boom in the subscriber",
    )


# --- 3. bad protocol input: one line, exit 2 -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-p", "trial16proto:Abstract"], "does not implement fault_begin"),
        (["-p", "trial16proto:InitRaises"], "raised RuntimeError: boom in __init__"),
        (["-p", "odp_async.odp.protocols.base:OdpProtocol"], "has no name"),
        (["-p", "hmm-pool", "-o", "pool_size=99999999999999999999"], "from 1 to 1048576"),
    ],
)
def test_bad_protocol_input_is_one_line(user: Path, args: list[str], needle: str) -> None:
    one_line_error(cli(user, "explore", "fault-vs-munmap", *args, "--schedules", "5"), needle)
    if args[0] == "-p" and len(args) == 2:
        scenario = ["--scenario", "fault-vs-munmap"]
        one_line_error(cli(user, "matrix", "--budget", "5", *scenario, *args), needle)


# --- 4. float options: finite, before the run; a token failure keeps the failure -------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300"])
def test_a_float_option_must_be_finite_and_in_range(user: Path, value: str) -> None:
    one_line_error(
        cli(user, "explore", "fault-vs-munmap", "-p", "trial16proto:Knob", "-o", f"ratio={value}"),
        "option 'ratio' of protocol 'trial16proto:Knob' takes a finite number",
        repr(value),
    )


def test_a_token_that_cannot_be_made_keeps_the_failure(user_module: Any) -> None:
    """Through the library (no -o check): a nan option is carried to token time; the
    failure is reported without a token, saying why (it used to be thrown away)."""
    result = explore(
        "fault-vs-munmap",
        user_module.Knob,
        ExploreConfig(chooser="random", schedules=300, shrink=False),
        options={"ratio": math.nan},
    )
    failure = result.failure
    assert failure is not None
    assert failure.violation.kind == "stale-translation"
    assert failure.token is None
    assert failure.no_token is not None
    assert "nan" in failure.no_token
    assert "no replay token:" in failure.describe()


# --- 5. a user protocol cannot take a built-in's name ----------------------------------------


def test_a_user_protocol_named_like_a_built_in_is_refused(user: Path) -> None:
    needle = "is named 'kvm-seq', the name of the built-in protocol kvm-seq"
    one_line_error(cli(user, "explore", "fault-vs-munmap", "-p", "trial16proto:Impostor"), needle)
    one_line_error(
        cli(user, "matrix", "--scenario", "fault-vs-munmap", "-p", "trial16proto:Impostor"),
        needle,
    )
    file = race(user, "imp.toml", ["trial16proto:Impostor"], {})
    one_line_error(cli(user, "explore", file), "imp.toml: scenario.protocols[0]", needle)


# --- 6. repeats, --copy, options the chooser ignores -----------------------------------------


def test_matrix_runs_a_repeated_cell_once(user: Path) -> None:
    argv = ["--scenario", "fault-vs-munmap", "--scenario", "fault-vs-munmap"]
    done = cli(user, "matrix", "--budget", "3", "--chooser", "random", "--json", *argv, "-p",
               "naive", "-p", "naive")  # fmt: skip
    cells = json.loads(done.stdout)["cells"]
    assert [(c["scenario"], c["protocol"]) for c in cells] == [("fault-vs-munmap", "naive")]


def test_examples_copy_needs_a_path_in_an_existing_directory(user: Path) -> None:
    one_line_error(cli(user, "examples", "--copy", ""), "--copy needs a directory")
    one_line_error(cli(user, "examples", "--copy", "no/such/dir"), "does not exist")
    assert not (user / "no").exists()
    assert cli(user, "examples", "--copy", "mine").returncode == 0
    assert any((user / "mine").glob("*.toml"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--chooser", "random", "--preemptions", "2"], "--preemptions is for --chooser dfs"),
        (["--chooser", "portfolio", "--depth", "2"], "--depth is for --chooser pct"),
        (["--chooser", "pct", "--no-reduction"], "--no-reduction is for --chooser dfs"),
        (["--chooser", "dpor", "--max-preemptions", "2"], "--max-preemptions is for"),
        (["--chooser", "dfs", "--jobs", "2"], "--jobs 2 is for --chooser random"),
    ],
)
def test_an_option_the_chooser_ignores_is_refused(
    user: Path, args: list[str], needle: str
) -> None:
    one_line_error(cli(user, "explore", "classic:lost-update", *args), needle)
