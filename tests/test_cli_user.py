"""The command line reaches what the library does: your protocol (``-p module:Class``) and
its options (``-o``), your scenario files against their ``[expected]`` tables, ``--json``
everywhere, ``-h``, "did you mean", the progress display and Ctrl-C.

User code lives outside the package: a module written to ``tmp_path`` and imported by
name (``sys.path`` in this process, ``PYTHONPATH`` in a fresh one)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from odp_async.cli import ExitCode, main
from odp_async.errors import ExploreInterrupted
from odp_async.progress import ExploreProgress, describe_progress
from tests._usermod import forget, write_user_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"

USER_MODULE = '''
from typing import Any, ClassVar

from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.odp.protocols.naive import Naive


class Careful(IntervalSeq):
    """A correct protocol with options of its own (which it ignores)."""

    name: ClassVar[str] = "careful"
    summary: ClassVar[str] = "interval-seq under another name"
    OPTIONS: ClassVar[dict[str, Any]] = {"rounds": 2, "verbose": False, "tag": "x"}


class Sloppy(Naive):
    name: ClassVar[str] = "sloppy"
    summary: ClassVar[str] = "naive under another name"


class Outer:
    class Inner(IntervalSeq):
        name: ClassVar[str] = "inner"
        summary: ClassVar[str] = "a nested class"


NOT_A_PROTOCOL = 3
'''


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of protocols outside the package, importable by a fresh name."""
    name = write_user_module(tmp_path, USER_MODULE, "userproto", monkeypatch)
    yield name
    forget(name)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fresh_env(*paths: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=pythonpath, PYTHONHASHSEED="7")


def cli_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "odp_async.cli", *argv]


def one_line_usage_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == ExitCode.USAGE, err
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


# --- -p module:Class ------------------------------------------------------------------------


def test_a_user_protocol_by_module_and_class(
    capsys: pytest.CaptureFixture[str], usermod: str
) -> None:
    code, out, err = run_cli(
        capsys, "explore", "registration-race", "-p", f"{usermod}:Careful", "--schedules", "40"
    )
    assert code == ExitCode.OK, err
    assert "clean - 40 schedules" in out
    # a nested class by its qualified name
    code, out, err = run_cli(
        capsys, "explore", "registration-race", "-p", f"{usermod}:Outer.Inner", "--schedules", "5"
    )
    assert code == ExitCode.OK, err


def test_a_buggy_user_protocol_is_found_and_its_token_replays_in_a_fresh_process(
    capsys: pytest.CaptureFixture[str], usermod: str, tmp_path: Path
) -> None:
    """Needs tokens for user protocols (module:qualname), helper 9A's part of issue 9."""
    code, out, err = run_cli(
        capsys,
        "explore",
        "registration-race",
        "-p",
        f"{usermod}:Sloppy",
        "--schedules",
        "300",
        "--json",
    )
    assert code == ExitCode.VIOLATION, err
    data = json.loads(out)
    assert data["verdict"] == "found"
    assert data["target"] == f"registration-race/{usermod}:Sloppy"  # as typed
    token = data["failure"]["shrunk_token"]
    proc = subprocess.run(
        cli_cmd("replay", token, "--json"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=fresh_env(tmp_path),
        cwd=tmp_path,
    )
    assert proc.returncode == ExitCode.VIOLATION, proc.stderr
    assert json.loads(proc.stdout)["violations"][0]["kind"] == data["failure"]["kind"]


def test_a_user_protocol_with_jobs_in_worker_processes(
    capsys: pytest.CaptureFixture[str], usermod: str
) -> None:
    # Careful is tracked like its parent, so the portfolio's dpor member completes it in
    # as many schedules as it does interval-seq (before, it never completed: all 600).
    args = ("explore", "registration-race", "--schedules", "600", "--jobs", "2", "--json")
    code, out, err = run_cli(capsys, *args, "-p", f"{usermod}:Careful")
    assert code == ExitCode.OK, err
    mine = json.loads(out)
    code, out, err = run_cli(capsys, *args, "-p", "interval-seq")
    assert code == ExitCode.OK, err
    builtin = json.loads(out)
    assert builtin["claim"].startswith("complete:"), builtin["claim"]
    assert (mine["schedules"], mine["claim"]) == (builtin["schedules"], builtin["claim"])


@pytest.mark.parametrize(
    ("ref", "needles"),
    [
        ("no_such_module_xyz:Thing", ["cannot import module 'no_such_module_xyz'"]),
        ("{m}:Nope", ["has no 'Nope'"]),
        ("{m}:NOT_A_PROTOCOL", ["names 3, which is not an OdpProtocol subclass"]),
        ("{m}:", ["is not of the form 'module:Class'"]),
        ("odp2041", ["unknown protocol 'odp2041'", "did you mean 'odp2014'"]),
    ],
)
def test_bad_protocol_references(
    capsys: pytest.CaptureFixture[str], usermod: str, ref: str, needles: list[str]
) -> None:
    ref = ref.format(m=usermod)
    for command in ("explore", "run"):
        code, out, err = run_cli(capsys, command, "registration-race", "-p", ref)
        one_line_usage_error(code, out, err, *needles)


def test_a_user_protocol_on_a_real_event_loop_with_json(
    capsys: pytest.CaptureFixture[str], usermod: str
) -> None:
    code, out, err = run_cli(
        capsys,
        "run",
        "fault-vs-munmap",
        "-p",
        f"{usermod}:Careful",
        "-o",
        "rounds=3",
        "--backend",
        "asyncio",
        "--json",
    )
    assert code == ExitCode.OK, err
    data = json.loads(out)
    assert data["status"] == "finished"
    assert data["backend"] == "asyncio"
    assert data["violations"] == []


def test_a_user_protocol_in_the_matrix(capsys: pytest.CaptureFixture[str], usermod: str) -> None:
    code, out, err = run_cli(
        capsys,
        "matrix",
        "--budget",
        "40",
        "--jobs",
        "1",
        "--scenario",
        "registration-race",
        "-p",
        f"{usermod}:Careful",
        "-p",
        "naive",
        "--json",
    )
    assert code == ExitCode.OK, err
    cells = {c["protocol"]: c for c in json.loads(out)["cells"]}
    assert set(cells) == {f"{usermod}:Careful", "naive"}  # as typed
    assert cells[f"{usermod}:Careful"]["found"] == "clean"
    assert cells["naive"]["found"] == "found"


# --- -o key=value ---------------------------------------------------------------------------


def test_an_option_reaches_the_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    """odp2014 clamps an end without a start; `-o clamp=false` shows the negative count."""
    argv = ["explore", "registration-count", "-p", "odp2014", "--schedules", "200", "--json"]
    code, out, err = run_cli(capsys, *argv)
    assert code == ExitCode.OK, err
    for spelling in ("false", "no", "0", "FALSE"):
        code, out, err = run_cli(capsys, *argv, "-o", f"clamp={spelling}", "--no-shrink")
        assert code == ExitCode.VIOLATION, err
        assert json.loads(out)["failure"]["kind"] == "unbalanced-notifier"


def test_activation_bumps_seq_off_breaks_the_ctx_fix(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explore", "registration-race", "-p", "odp2014-ctx", "--schedules", "1000", "--json"]
    code, out, err = run_cli(capsys, *argv, "-o", "activation_bumps_seq=true")
    assert code == ExitCode.OK, err
    code, out, err = run_cli(capsys, *argv, "-o", "activation_bumps_seq=false", "--no-shrink")
    assert code == ExitCode.VIOLATION, err
    assert json.loads(out)["verdict"] == "found"


def test_options_are_typed_like_their_defaults(
    capsys: pytest.CaptureFixture[str], usermod: str
) -> None:
    from odp_async import cli

    careful = cli._protocol(f"{usermod}:Careful")
    assert cli._options(careful, ["rounds=12", "verbose=yes", "tag=a=b"]) == {
        "rounds": 12,
        "verbose": True,
        "tag": "a=b",
    }
    assert cli._options("range-list", ["literal_order=1"]) == {"literal_order": True}
    assert cli._options("hmm-pool", [" pool_size = 3 "]) == {"pool_size": 3}


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["-p", "odp2014", "-o", "x=1"],
            ["unknown option 'x' for protocol 'odp2014'; expected one of clamp"],
        ),
        (
            ["-p", "odp2014", "-o", "clmap=false"],
            ["unknown option 'clmap'", "did you mean 'clamp'"],
        ),
        (
            ["-p", "odp2014-ctx", "-o", "activation_bumps_seq=maybe"],
            ["'activation_bumps_seq' of protocol 'odp2014-ctx' takes true or false, got 'maybe'"],
        ),
        (["-p", "hmm-pool", "-o", "pool_size=two"], ["takes an integer, got 'two'"]),
        (["-p", "naive", "-o", "clamp=false"], ["for protocol 'naive'; it takes no options"]),
        (["-p", "odp2014", "-o", "clamp"], ["option 'clamp' is not of the form KEY=VALUE"]),
        (["-p", "odp2014", "-o", "clamp=1", "-o", "clamp=0"], ["option 'clamp' given twice"]),
    ],
)
def test_bad_options(
    capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    code, out, err = run_cli(capsys, "explore", "registration-race", *argv)
    one_line_usage_error(code, out, err, *needles)


def test_options_need_a_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "explore", "classic:lost-update", "-o", "clamp=false")
    one_line_usage_error(code, out, err, "needs -p/--protocol")
    path = str(EXAMPLES / "registration-race.toml")
    code, out, err = run_cli(capsys, "explore", path, "-o", "clamp=false")
    one_line_usage_error(code, out, err, "needs -p/--protocol")


def test_a_user_option_of_the_wrong_type(capsys: pytest.CaptureFixture[str], usermod: str) -> None:
    code, out, err = run_cli(
        capsys, "explore", "registration-race", "-p", f"{usermod}:Careful", "-o", "rounds=many"
    )
    one_line_usage_error(
        code, out, err, f"'rounds' of protocol '{usermod}:Careful' takes an integer"
    )


# --- scenario files against their [expected] tables -----------------------------------------


def _file_with_expected(tmp_path: Path, expected: str) -> Path:
    """fixed-pool-deadlock for two protocols, with the given [expected] table."""
    text = (EXAMPLES / "fixed-pool-deadlock.toml").read_text()
    assert "\nprotocols" not in text  # every protocol, unless the file says
    text = text.replace("[setup]", 'protocols = ["naive", "hmm-pool"]\n\n[setup]', 1)
    text = re.sub(r"(?ms)^\[expected\]\n.*?(?=^\[|\Z)", f"[expected]\n{expected}\n\n", text)
    text = re.sub(r"(?ms)^\[script\]\n.*?(?=^\[|\Z)", "", text)
    path = tmp_path / "pool.toml"
    path.write_text(text)
    return path


def test_explore_a_file_without_a_protocol_checks_every_protocol_it_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = _file_with_expected(tmp_path, 'hmm-pool = "deadlock"')
    code, out, err = run_cli(capsys, "explore", str(good), "--schedules", "200", "--json")
    assert code == ExitCode.OK, err
    data = json.loads(out)
    assert data["matches"] is True
    rows = {r["protocol"]: r for r in data["rows"]}
    assert list(rows) == ["naive", "hmm-pool"]
    assert (rows["hmm-pool"]["expected"], rows["hmm-pool"]["verdict"]) == ("deadlock", "deadlock")
    assert (rows["naive"]["expected"], rows["naive"]["verdict"]) == ("clean", "clean")

    bad = _file_with_expected(tmp_path, 'naive = "deadlock"')
    code, out, err = run_cli(capsys, "explore", str(bad), "--schedules", "200")
    assert code == ExitCode.VIOLATION, err
    assert "clean (expected deadlock)" in out
    assert "deadlock (expected clean)" in out
    assert "0/2 protocols as expected" in out


def test_matrix_takes_scenario_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = _file_with_expected(tmp_path, 'hmm-pool = "deadlock"')
    argv = ["matrix", "--budget", "200", "--jobs", "1", "--json"]
    code, out, err = run_cli(capsys, *argv, "--scenario", str(good), "--scenario", "naive-free")
    one_line_usage_error(code, out, err, "unknown scenario 'naive-free'")

    path = str(EXAMPLES / "fixed-pool-deadlock.toml")
    code, out, err = run_cli(capsys, *argv, "--scenario", str(good), "--scenario", path)
    assert code == ExitCode.OK, err
    cells = [(c["file"], c["protocol"], c["found"]) for c in json.loads(out)["cells"]]
    assert cells[:2] == [(str(good), "naive", "clean"), (str(good), "hmm-pool", "deadlock")]
    assert (path, "hmm-pool", "deadlock") in cells
    assert {c["scenario"] for c in json.loads(out)["cells"]} == {"fixed-pool-deadlock"}
    assert len(cells) == 2 + 7

    bad = tmp_path / "bad" / "pool.toml"
    bad.parent.mkdir()
    bad.write_text(_file_with_expected(tmp_path, 'naive = "found"').read_text())
    code, out, err = run_cli(capsys, *argv, "--scenario", str(bad))
    assert code == ExitCode.VIOLATION, err
    data = json.loads(out)
    assert data["matches"] is False
    assert [c["matches"] for c in data["cells"]] == [False, False]


def test_a_bad_file_in_the_matrix_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[scenario]\nname = 'x'\ncolour = 'red'\n")
    code, out, err = run_cli(capsys, "matrix", "--scenario", str(path), "--jobs", "1")
    one_line_usage_error(code, out, err, "broken.toml", "unknown key 'colour'")


# --- --json, -h, did you mean, show -----------------------------------------------------------


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "list", "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    names = {s["name"]: s for s in data["scenarios"]}
    assert names["registration-race"]["needs_protocol"] is True
    assert names["classic:lost-update"]["needs_protocol"] is False
    protocols = {p["name"]: p for p in data["protocols"]}
    assert protocols["odp2014"]["options"] == {"clamp": True}
    assert protocols["odp2014-ctx"]["options"]["activation_bumps_seq"] is True
    assert protocols["range-list"]["options"] == {"literal_order": False}


def test_list_shows_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "list")
    assert code == ExitCode.OK
    assert "options: clamp=true" in out
    assert "literal_order=false" in out


@pytest.mark.parametrize("scenario", ["registration-race", "classic:lost-update", "FILE"])
def test_show_json(capsys: pytest.CaptureFixture[str], scenario: str) -> None:
    if scenario == "FILE":
        scenario = str(EXAMPLES / "fixed-pool-deadlock.toml")
    code, out, _ = run_cli(capsys, "show", scenario, "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    if scenario.startswith("classic:"):
        assert data["needs_protocol"] is False
        assert isinstance(data["expected"], str)
    else:
        assert data["needs_protocol"] is True
        assert data["expected"]["hmm-pool" if "pool" in scenario else "odp2014"] in (
            "found",
            "deadlock",
        )
        assert data["script"]
        assert all(len(step) == 2 for step in data["script"])
    assert data["actors"]


def test_show_a_file_lists_only_its_protocols(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _file_with_expected(tmp_path, 'hmm-pool = "deadlock"')
    code, out, _ = run_cli(capsys, "show", str(path))
    assert code == ExitCode.OK
    expected = out.split("expected verdicts:\n", 1)[1].splitlines()
    assert expected == ["  naive          clean", "  hmm-pool       deadlock"]


@pytest.mark.parametrize(
    "command",
    [[], ["list"], ["show"], ["explore"], ["replay"], ["shrink"], ["run"], ["matrix"]],
)
def test_dash_h_is_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run_cli(capsys, *command, "-h")
    assert code == ExitCode.OK
    assert out.startswith("Usage: odp-async")
    assert "-h, --help" in out


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["explore", "registraton-race", "-p", "odp2014"], ["did you mean 'registration-race'"]),
        (["explore", "classic:lost-updat"], ["did you mean 'classic:lost-update'"]),
        (["show", "fixed-pool-dedlock"], ["did you mean 'fixed-pool-deadlock'"]),
        (["run", "fault-vs-munmap", "-p", "kvmseq"], ["did you mean 'kvm-seq'"]),
        (["matrix", "--scenario", "stray-end-corupt"], ["did you mean 'stray-end-corruption'"]),
        (["matrix", "-p", "intervalseq"], ["did you mean 'interval-seq'"]),
        (["explore", "zzzzzz", "-p", "odp2014"], ["unknown scenario 'zzzzzz'; expected one of"]),
    ],
)
def test_did_you_mean(
    capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    code, out, err = run_cli(capsys, *argv)
    one_line_usage_error(code, out, err, *needles)
    if "zzzzzz" in argv:
        assert "did you mean" not in err


# --- progress -------------------------------------------------------------------------------


@attrs.frozen
class Update:
    done: int
    total: int
    failures: int
    elapsed: float


def test_the_plain_progress_line_comes_every_interval() -> None:
    stream = io.StringIO()
    with ExploreProgress("race/odp2014", stream, live=False, every=5.0) as progress:
        for elapsed in (0.5, 4.9, 5.0, 7.0, 9.9, 10.0, 16.0):
            progress(Update(int(elapsed * 100), 10_000, 1 if elapsed > 9 else 0, elapsed))
    progress(Update(9999, 10_000, 1, 99.0))  # after the context: nothing
    assert stream.getvalue().splitlines() == [
        "race/odp2014: 500/10000 schedules, 100/s, 0 found, ~1m35s left",
        "race/odp2014: 1000/10000 schedules, 100/s, 1 found, ~1m30s left",
        "race/odp2014: 1600/10000 schedules, 100/s, 1 found, ~1m24s left",
    ]


def test_the_progress_line_omits_time_left_until_it_is_known() -> None:
    assert describe_progress("x", Update(0, 10, 0, 0.0)) == "x: 0/10 schedules, 0/s, 0 found"
    assert describe_progress("x", Update(10, 10, 2, 2.0)) == "x: 10/10 schedules, 5/s, 2 found"
    assert describe_progress("x", Update(1, 100_000, 0, 1.0)).endswith("~27h46m left")
    # a time budget bounds it (--time 2 showed ~39m53s left)
    assert describe_progress("x", Update(1, 100_000, 0, 1.0), budget=5.0).endswith("~4s left")
    assert describe_progress("x", Update(1, 100_000, 0, 9.0), budget=5.0).endswith("~0s left")


def test_the_live_progress_line_is_drawn_in_place() -> None:
    stream = io.StringIO()
    with ExploreProgress("race/odp2014", stream, live=True) as progress:
        for i in range(1, 4):
            progress(Update(i * 1000, 10_000, i - 1, i * 1.0))
        progress(Update(3001, 10_000, 2, 3.01))  # within LIVE_EVERY of the last: not drawn
    text = stream.getvalue()
    assert progress.lines == 3
    assert "3000/10000" in text
    assert "3001/10000" not in text
    assert "1000/s, 2 found, ~7s left" in text
    assert "\r" in text  # redrawn in place


def test_bad_progress_interval(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "explore", "classic:lost-update", "--progress-every", "-1", "--schedules", "3"
    )
    one_line_usage_error(code, out, err, "--progress-every must be a number of seconds >= 0")


def test_explore_reports_progress_on_stderr_when_not_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(
        capsys,
        "explore",
        "registration-race",
        "-p",
        "interval-seq",
        "--schedules",
        "600",
        "--progress-every",
        "0",
    )
    assert code == ExitCode.OK, err
    lines = [line for line in err.splitlines() if " schedules, " in line]
    assert lines, err
    assert re.fullmatch(
        r"registration-race/interval-seq: \d+/600 schedules, \d+/s, 0 found.*", lines[-1]
    )
    assert "schedules, " not in out  # results only on stdout


# --- Ctrl-C ---------------------------------------------------------------------------------

PROGRESS_LINE = re.compile(r": \d+/\d+ schedules, \d+/s, \d+ found")


def _interrupt_after_first_progress_line(*extra: str) -> tuple[int, str, str, float]:
    """Start a long exploration, wait for its first progress line (an event: its stderr,
    read as it comes), send SIGINT; return the exit code, stdout, stderr and the seconds
    from SIGINT to exit."""
    proc = subprocess.Popen(
        cli_cmd(
            "explore",
            "registration-race",
            "-p",
            "interval-seq",
            "--schedules",
            "10000000",
            "--progress-every",
            "0.2",
            *extra,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=fresh_env(),
        start_new_session=True,  # its own process group, as a shell's foreground job
    )
    assert proc.stderr is not None
    seen = b""
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stderr, selectors.EVENT_READ)
            deadline = time.monotonic() + 45  # a generous bound on the first line
            while not PROGRESS_LINE.search(seen.decode(errors="replace")):
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    pytest.fail(f"no progress line within 45 s; stderr so far: {seen!r}")
                chunk = os.read(proc.stderr.fileno(), 65536)
                if not chunk:
                    pytest.fail(f"exited ({proc.wait()}) before a progress line: {seen!r}")
                seen += chunk
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C signals the whole foreground group
        out, err = proc.communicate(timeout=40)
        took = time.monotonic() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):  # workers keep the pipes open
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    return proc.returncode, out.decode(), (seen + err).decode(errors="replace"), took


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_explore_prints_what_was_explored_and_exits_130(jobs: int) -> None:
    """Needs helper 9A's runner (interruptible, with progress=) and 9B's sim (a
    KeyboardInterrupt is not the program's error)."""
    code, out, err, took = _interrupt_after_first_progress_line("--jobs", str(jobs))
    assert code == ExitCode.INTERRUPTED, (out, err)
    assert "Traceback" not in err
    assert "replay mismatch" not in err + out
    assert re.search(r"interrupted: registration-race/interval-seq: clean - \d+ schedules", out)
    # a generous bound: the issue asks for 1 s (3 s with --jobs) on an idle machine
    assert took < (10 if jobs == 1 else 20), took


def _partial_result(found: bool) -> object:
    """A partial result as the runner hands it over on Ctrl-C: a real one, of a short run."""
    from odp_async.explore.runner import explore

    if found:
        return explore("registration-race", "odp2014", schedules=300, shrink=False)
    return explore("registration-race", "interval-seq", schedules=7)


@pytest.mark.parametrize("found", [False, True])
def test_an_interrupted_exploration_prints_what_it_explored_and_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, found: bool
) -> None:
    """The CLI's side of Ctrl-C: the runner's `ExploreInterrupted` with a real partial
    result (the runner's side has its own tests, and the SIGINT test above runs both)."""
    import odp_async.explore.runner as runner

    partial = _partial_result(found)

    def interrupted(*args: object, **kwargs: object) -> object:
        raise ExploreInterrupted(partial)

    monkeypatch.setattr(runner, "explore", interrupted)
    code, out, err = run_cli(capsys, "explore", "registration-race", "-p", "odp2014")
    assert code == ExitCode.INTERRUPTED
    assert "Traceback" not in err
    if found:
        assert re.search(r"interrupted: registration-race/odp2014: found - \d+ schedules", out)
        assert "replay: odp-async replay odp2." in out  # the failure found so far
    else:
        assert "interrupted: registration-race/interval-seq: clean - 7 schedules" in out
    code, out, err = run_cli(capsys, "explore", "registration-race", "-p", "odp2014", "--json")
    assert code == ExitCode.INTERRUPTED
    data = json.loads(out)
    assert data["interrupted"] is True
    assert (data["failure"] is not None) is found

    # a file explored protocol by protocol: the rows so far, then the interrupted one
    code, out, err = run_cli(capsys, "explore", str(EXAMPLES / "registration-race.toml"))
    assert code == ExitCode.INTERRUPTED
    assert "interrupted: registration-race/" in out


def test_ctrl_c_elsewhere_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import odp_async.explore.matrix as matrix

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(matrix, "verdict_matrix", interrupted)
    code, out, err = run_cli(capsys, "matrix", "--jobs", "1")
    assert code == ExitCode.INTERRUPTED
    assert err.strip().endswith("odp-async: interrupted")
    assert out == ""


# --- the README's block -----------------------------------------------------------------------


def _readme_block(title: str) -> str:
    text = README.read_text()
    start = text.index(f"### {title}")
    end = min(i for i in (text.find("\n## ", start), text.find("\n### ", start + 1)) if i > 0)
    return text[start:end]


def test_the_readme_own_protocol_block_runs(tmp_path: Path) -> None:
    block = _readme_block("Your own protocol from the command line")
    snippets = re.findall(r"```(\w+)\n(.*?)```", block, re.S)
    assert [lang for lang, _ in snippets] == ["python", "sh"]
    module = snippets[0][1]
    filename = module.splitlines()[0].removeprefix("# ").strip()
    (tmp_path / filename).write_text(module)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    env = fresh_env()
    ran = 0
    for line in snippets[1][1].splitlines():
        command, _, comment = line.partition("  #")
        words = shlex.split(command)
        if words[0] == "export":
            key, _, value = words[1].partition("=")
            env[key] = os.pathsep.join([value, env.get("PYTHONPATH", "")])
            continue
        assert words[0] == "odp-async", line
        expected = int(re.search(r"exit (\d+)", comment).group(1))  # type: ignore[union-attr]
        proc = subprocess.run(
            cli_cmd(*words[1:]),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
            cwd=tmp_path,
        )
        assert proc.returncode == expected, (line, proc.stdout, proc.stderr)
        claim = re.search(r"(complete: \d+ traces)", comment)
        if claim is not None:  # the count the README gives, as measured
            assert f"{claim.group(1)}, no violation" in proc.stdout, (line, proc.stdout)
        ran += 1
    assert ran == 4


def test_matrix_takes_schedules_as_explore_does(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["matrix", "--scenario", "registration-race", "-p", "odp2014", "--jobs", "1"]
    code, out, err = run_cli(capsys, *args, "--schedules", "40", "--json")
    assert code in (0, 1), err
    by_schedules = json.loads(out)
    code, out, err = run_cli(capsys, *args, "--budget", "40", "--json")
    by_budget = json.loads(out)

    def cells(data: dict[str, Any]) -> list[tuple[object, ...]]:
        return [(c["found"], c["expected"], c["schedules"]) for c in data["cells"]]

    assert by_schedules["budget"] == by_budget["budget"] == 40
    assert cells(by_schedules) == cells(by_budget)


ONE_STEP = """
from odp_async import checkpoint

async def one():
    await checkpoint("the only step")


async def none():
    pass


async def always_fails():
    raise AssertionError("no")
"""


def test_the_summary_line_says_one_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Counts read as a reader writes them: "1 schedule", "1 step", "1 failing
    schedule" (a trial read "(1 schedules)..." and "found after 1 schedules")."""
    name = write_user_module(tmp_path, ONE_STEP, "onestep", monkeypatch)
    try:
        code, out, _ = run_cli(capsys, "explore", f"{name}:one", "--chooser", "dpor")
        one_step = run_cli(capsys, "explore", f"{name}:none", "--schedules", "1")
        failing = run_cli(
            capsys, "explore", f"{name}:always_fails", "--schedules", "1", "--all-failures"
        )
    finally:
        forget(name)
    assert code == ExitCode.OK
    assert ": clean - 1 schedule (" in out
    assert "complete: 1 trace, no violation" in out
    assert one_step[0] == ExitCode.OK
    assert "exploring none with portfolio (1 schedule)..." in one_step[2]
    assert one_step[1].startswith("none: clean - 1 schedule (1 step, ")
    assert failing[0] == ExitCode.VIOLATION, failing[2]
    assert "1 failing schedule: 1" in failing[1].splitlines()
