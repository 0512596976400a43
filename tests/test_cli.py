"""The ``odp-async`` command, in-process through ``main(argv)`` and as a subprocess."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from odp_async import cli
from odp_async.cli import ExitCode, main
from odp_async.explore.target import Target
from odp_async.explore.tokens import decode_token, encode_token
from odp_async.sim import ReplayChooser

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def subprocess_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odp_async.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env=dict(os.environ, PYTHONHASHSEED="99"),
    )


def a_token(capsys: pytest.CaptureFixture[str], scenario: str = "registration-race") -> str:
    code, out, _ = run_cli(
        # stray-end-corruption/odp2014: the portfolio's schedule 648 in seed 0
        capsys,
        "explore",
        scenario,
        "-p",
        "odp2014",
        "--schedules",
        "2000",
        "--json",
    )
    assert code == ExitCode.VIOLATION
    data = json.loads(out)
    token = data["failure"]["shrunk_token"]
    assert isinstance(token, str)
    return token


# --- happy paths -----------------------------------------------------------------------------


@pytest.mark.timeout(600)  # the whole matrix: ~20 s alone on 2 cores, far more when loaded
def test_the_default_job_is_the_verdict_matrix() -> None:
    proc = subprocess_cli()
    assert proc.returncode == 0, proc.stderr
    assert "verdict matrix" in proc.stdout
    assert "schedules per cell, random," in proc.stdout  # the quick first run
    from odp_async.odp import PROTOCOLS
    from odp_async.scenarios import BUILTIN

    cells = len(BUILTIN) * len(PROTOCOLS)  # every built-in under every protocol
    assert f"{cells}/{cells} cells as expected" in proc.stdout
    assert "registration-race" in proc.stdout
    assert "replay tokens" in proc.stdout


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "registration-race" in out
    assert "interval-seq" in out
    assert "classic:lost-update" in out
    code, out, _ = run_cli(capsys, "show", "fixed-pool-deadlock")
    assert code == 0
    assert "hmm-pool       deadlock" in out
    assert "run munmap until it reaches 'after start'" in out


def test_show_a_scenario_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "show", str(EXAMPLES / "registration-race.toml"))
    assert code == 0
    assert "registration-race" in out
    assert "odp2014        found" in out
    # each part once: the file's description lists the setup and the actors, op by op;
    # the expected verdicts and the script are printed once, after it
    for part in ("actors (started in this order):", "expected verdicts:", "script (the"):
        assert out.count(part) == 1, part
    assert "\nexpected: " not in out
    assert "\nscript: " not in out
    assert "\nactors: " not in out


def test_explore_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "explore", "classic:lock-order", "--chooser", "dfs", "--json")
    assert code == ExitCode.VIOLATION
    data = json.loads(out)
    assert data["verdict"] == "deadlock"
    assert data["failure"]["kind"] == "deadlock"
    assert data["failure"]["token"].startswith("odp2.")
    assert "exploring" in err  # diagnostics on stderr, results on stdout


def test_explore_a_clean_cell_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "explore", "registration-race", "-p", "interval-seq", "--schedules", "50"
    )
    assert code == ExitCode.OK
    assert "clean - 50 schedules" in out


def test_explore_a_scenario_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "fixed-pool-deadlock.toml")
    code, out, _ = run_cli(capsys, "explore", path, "-p", "hmm-pool", "--json")
    assert code == ExitCode.VIOLATION
    assert json.loads(out)["verdict"] == "deadlock"


def test_replay_text_trace_and_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    token = a_token(capsys)
    trace, png = tmp_path / "race.json", tmp_path / "race.png"
    code, out, err = run_cli(
        capsys, "replay", token, "--text", "--trace", str(trace), "--png", str(png)
    )
    assert code == ExitCode.VIOLATION
    assert ">>" in out  # the violation row of the text timeline
    assert "stale-" in out
    assert f"wrote {png}" in err

    events = json.loads(trace.read_text())["traceEvents"]
    assert all({"name", "ph", "ts", "pid", "tid"} <= set(e) for e in events)
    assert all(e["dur"] >= 0 for e in events if e["ph"] == "X")
    assert {e["args"]["name"] for e in events if e["name"] == "thread_name"} >= {"madvise"}

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, height)
    assert height > 200


def test_replay_json(capsys: pytest.CaptureFixture[str]) -> None:
    token = a_token(capsys)
    code, out, _ = run_cli(capsys, "replay", token, "--json")
    assert code == ExitCode.VIOLATION
    data = json.loads(out)
    assert data["target"] == "registration-race/odp2014"
    assert data["violations"][0]["kind"].startswith("stale-")


def test_a_printed_token_replays_in_a_fresh_process(capsys: pytest.CaptureFixture[str]) -> None:
    token = a_token(capsys, "stray-end-corruption")
    code, out, _ = run_cli(capsys, "replay", token, "--json")
    assert code == ExitCode.VIOLATION
    here = json.loads(out)["violations"][0]
    proc = subprocess_cli("replay", token, "--json")
    assert proc.returncode == ExitCode.VIOLATION, proc.stderr
    there = json.loads(proc.stdout)["violations"][0]
    assert (there["kind"], there["step"], there["tasks"]) == (
        here["kind"],
        here["step"],
        here["tasks"],
    )


def test_shrink(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "explore",
        "storm-register-during",
        "-p",
        "kvm-seq",
        "--no-shrink",
        "--json",
    )
    token = json.loads(out)["failure"]["token"]
    code, out, _ = run_cli(capsys, "shrink", token, "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    before, after = data["preemptions"]
    assert after <= before
    assert data["token"].startswith("odp2.")


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_run_live(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    code, out, _ = run_cli(capsys, "run", "fault-vs-munmap", "--backend", backend, "-p", "odp2014")
    assert code == ExitCode.OK
    assert f"fault-vs-munmap/odp2014 on {backend}: finished" in out


def test_run_live_reports_a_real_deadlock_instead_of_hanging() -> None:
    """fixed-pool-deadlock under hmm-pool deadlocks on trio too; `run` must come back."""
    proc = subprocess_cli(
        "run", "fixed-pool-deadlock", "--backend", "trio", "-p", "hmm-pool", "--timeout", "1"
    )
    assert proc.returncode in (ExitCode.OK, ExitCode.VIOLATION)
    assert "fixed-pool-deadlock/hmm-pool on trio" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_matrix_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "matrix",
        "--budget",
        "100",
        "--jobs",
        "1",
        "--scenario",
        "fixed-pool-deadlock",
        "--json",
    )
    assert code == ExitCode.OK
    data = json.loads(out)
    assert data["matches"] is True
    cells = {(c["scenario"], c["protocol"]): c for c in data["cells"]}
    assert cells[("fixed-pool-deadlock", "hmm-pool")]["found"] == "deadlock"
    assert cells[("fixed-pool-deadlock", "naive")]["found"] == "clean"


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ([], ["explore"], ["replay"], ["shrink"], ["run"], ["matrix"], ["show"]):
        code, out, _ = run_cli(capsys, *command, "--help")
        assert code == 0
        assert "Examples:" in out


# --- bad input: one line on stderr, exit 2, no traceback -----------------------------------


BAD_FILES = {
    "syntax.toml": "[scenario\nname = 'x'\n",
    "unknown-key.toml": "[scenario]\nname = 'x'\ncolour = 'red'\n",
    "wrong-type.toml": (
        "[scenario]\nname = 'x'\n[setup]\nops = [{ op = 'mmap', start = 0, pages = '8' }]\n"
        "[[actor]]\nname = 'a'\nops = [{ op = 'madvise', start = 0, pages = 1 }]\n"
    ),
    "missing-actor.toml": (
        "[scenario]\nname = 'x'\n[setup]\nops = [{ op = 'mmap', start = 0, pages = 8 }]\n"
        "[[actor]]\nname = 'a'\nafter = ['ghost']\n"
        "ops = [{ op = 'madvise', start = 0, pages = 1 }]\n"
    ),
    "outside.toml": (
        "[scenario]\nname = 'x'\n[setup]\nops = [{ op = 'mmap', start = 0, pages = 8 }]\n"
        "[[actor]]\nname = 'a'\nops = [{ op = 'madvise', start = 0x100000, pages = 1 }]\n"
    ),
}


def _bad_token(capsys: pytest.CaptureFixture[str], how: str) -> str:
    token = a_token(capsys)
    if how == "truncated":
        return token[: len(token) // 2]
    return token[:20] + ("x" if token[20] != "x" else "y") + token[21:]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["explore", "no-such-scenario", "-p", "odp2014"], "unknown scenario 'no-such-scenario'"),
        (["explore", "registration-race", "-p", "odp2099"], "unknown protocol 'odp2099'"),
        (["explore", "registration-race", "-p", "naive", "--chooser", "bfs"], "unknown chooser"),
        (["explore", "registration-race", "-p", "naive", "--schedules", "-3"], "got -3"),
        (["matrix", "--budget", "-1"], "budget must be a positive int, got -1"),
        (["run", "fault-vs-munmap", "--backend", "curio", "-p", "naive"], "unknown backend"),
        (["show", "nope"], "unknown scenario 'nope'"),
        (["explore"], "Missing argument"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == ExitCode.USAGE
    assert needle in err
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert out == ""


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_scenario_files(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(BAD_FILES[name])
    code, _, err = run_cli(capsys, "explore", str(path), "-p", "naive", "--schedules", "5")
    assert code == ExitCode.USAGE
    assert name in err
    assert "Traceback" not in err
    assert err.count("\n") <= 2


@pytest.mark.parametrize("how", ["truncated", "edited"])
def test_bad_tokens(capsys: pytest.CaptureFixture[str], how: str) -> None:
    code, _, err = run_cli(capsys, "replay", _bad_token(capsys, how))
    assert code == ExitCode.USAGE
    assert "token" in err
    assert "Traceback" not in err


def test_an_unwritable_output_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    token = a_token(capsys)
    code, _, err = run_cli(capsys, "replay", token, "--png", str(tmp_path / "no" / "x.png"))
    assert code == ExitCode.USAGE
    assert "x.png" in err
    assert "Traceback" not in err


def test_a_replay_mismatch_exits_4(capsys: pytest.CaptureFixture[str]) -> None:
    """The schedule of an odp2014 failure, relabelled as odp2014-ctx: no longer fits."""
    decoded = decode_token(a_token(capsys))
    ex = decoded.target().run(ReplayChooser(decoded.schedule), max_steps=decoded.max_steps)
    relabelled = Target.resolve("registration-race", "odp2014-ctx")
    other = encode_token(relabelled, decoded.schedule, ex, decoded.max_steps)
    code, _, err = run_cli(capsys, "replay", other)
    assert code == ExitCode.REPLAY_MISMATCH
    assert "replay mismatch" in err


def test_an_internal_error_exits_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import odp_async.scenarios

    monkeypatch.setattr(odp_async.scenarios, "BUILTIN", None)
    code, _, err = run_cli(capsys, "list")
    assert code == ExitCode.INTERNAL
    assert "internal error" in err


def test_exit_codes_are_documented() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 130, 141]
    assert "Exit codes: 0 ok, 1 violation" in cli.EPILOG_MAIN
    assert "5 inconclusive" in cli.EPILOG_MAIN
    assert "130 interrupted" in cli.EPILOG_MAIN
