"""An unfinished outcome is never called clean, wherever a verdict is computed or shown
(trial20b f1, f3): `ExploreResult.verdict`, `Target.run(...).verdict`, ``check``, a matrix
cell's progress line, table and ``--json``, ``replay`` and the pytest plugin all say
``inconclusive`` for a protocol whose fault never commits (and for a program that never
ends), while a correct protocol still says ``clean``.  The API used to say
``Verdict.CLEAN`` there (only ``.inconclusive`` told otherwise) and the matrix's progress
line ``clean``.  Everything runs from a user module outside the package, in a fresh
process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests._usermod import module_name, pythonpath_env

USER = """
from typing import ClassVar

from odp_async import checkpoint
from odp_async.odp.protocols.interval_seq import IntervalSeq
from odp_async.odp.protocols.kvm_seq import KvmSeq


class NeverCommits(KvmSeq):
    name: ClassVar[str] = "never-commits"
    summary: ClassVar[str] = "a fault that retries forever"

    def must_retry(self, umem, rng, token):
        return True

    async def fault_wait(self, umem, rng, token):
        await checkpoint("cond_resched")


class Careful(IntervalSeq):
    name: ClassVar[str] = "careful"
    summary: ClassVar[str] = "interval-seq under another name"


async def spins():
    while True:
        await checkpoint("spin")


async def ends():
    await checkpoint("once")
"""

API_SCRIPT = """
import json, sys

from odp_async.errors import ExplorationInconclusive
from odp_async.explore import Target, Verdict, check, explore
from odp_async.explore.matrix import explore_cell
from odp_async.sim import RandomChooser

mod = sys.argv[1]
out = {}
for name in ("NeverCommits", "Careful"):
    ref = f"{mod}:{name}"
    r = explore("registration-race", ref, chooser="random", schedules=2, max_steps=3000)
    run = Target.resolve("registration-race", ref).run(RandomChooser(0), max_steps=3000)
    cell = explore_cell("registration-race", ref, budget=2, max_steps=3000, chooser="random")
    out[name] = {
        "explore": str(r.verdict), "explore_is": r.verdict is Verdict(str(r.verdict)),
        "inconclusive": r.inconclusive, "run": str(run.verdict), "cell": str(cell.verdict),
        "cell_inconclusive": cell.inconclusive,
    }
for fn in ("spins", "ends"):
    r = check(f"{mod}:{fn}", chooser="random", schedules=2, max_steps=300)
    try:
        check(f"{mod}:{fn}", chooser="random", schedules=2, max_steps=300, raise_on_failure=True)
        raised = None
    except ExplorationInconclusive as e:
        raised = type(e).__name__
    out[fn] = {"check": str(r.verdict), "inconclusive": r.inconclusive, "raised": raised}
print(json.dumps(out))
"""

PYTEST_FILE = """
from odp_async.explore.testing import explore_test

from {module} import ends, spins


@explore_test(chooser="random", schedules=2, max_steps=300)
async def test_spins():
    await spins()


@explore_test(chooser="random", schedules=2, max_steps=300)
async def test_ends():
    await ends()
"""


@pytest.fixture
def user(tmp_path: Path) -> str:
    name = module_name("userinconclusive", tmp_path)
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER))
    return name


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=pythonpath_env(tmp_path),
    )


def test_the_api_says_inconclusive_never_clean(user: str, tmp_path: Path) -> None:
    (tmp_path / "api.py").write_text(API_SCRIPT)
    proc = _run(tmp_path, "api.py", user)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["NeverCommits"] == {
        "explore": "inconclusive",
        "explore_is": True,
        "inconclusive": True,
        "run": "inconclusive",
        "cell": "inconclusive",
        "cell_inconclusive": True,
    }
    assert got["Careful"] == {
        "explore": "clean",
        "explore_is": True,
        "inconclusive": False,
        "run": "clean",
        "cell": "clean",
        "cell_inconclusive": False,
    }
    assert got["spins"] == {
        "check": "inconclusive",
        "inconclusive": True,
        "raised": "ExplorationInconclusive",
    }
    assert got["ends"] == {"check": "clean", "inconclusive": False, "raised": None}


def _matrix(tmp_path: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run(
        tmp_path,
        "-m",
        "odp_async.cli",
        "matrix",
        "--chooser",
        "random",
        "--budget",
        "2",
        "--scenario",
        "registration-race",
        "-p",
        ref,
        "--jobs",
        "1",
        *extra,
    )


def test_the_matrix_progress_line_table_and_json_say_inconclusive(
    user: str, tmp_path: Path
) -> None:
    proc = _matrix(tmp_path, f"{user}:NeverCommits")
    progress = [line for line in proc.stderr.splitlines() if line.startswith("cell ")]
    assert progress == [f"cell 1/1 registration-race/{user}:NeverCommits: inconclusive"], (
        proc.stderr
    )
    assert "inconclusive (no expectation)" in proc.stdout
    assert proc.returncode == 5, proc.stdout + proc.stderr  # no pass: no verdict
    data = json.loads(_matrix(tmp_path, f"{user}:NeverCommits", "--json").stdout)
    assert [c["found"] for c in data["cells"]] == ["inconclusive"]
    good = _matrix(tmp_path, f"{user}:Careful")
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"cell 1/1 registration-race/{user}:Careful: clean" in good.stderr.splitlines()


def test_explore_and_replay_in_the_cli(user: str, tmp_path: Path) -> None:
    ref = f"{user}:NeverCommits"
    base = ("-m", "odp_async.cli", "explore", "registration-race", "-p", ref, "--json")
    proc = _run(tmp_path, *base, "--chooser", "random", "--schedules", "2", "--max-steps", "3000")
    assert proc.returncode == 5, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "inconclusive"
    # a token of an unfinished run replays as inconclusive (exit 5), never "no violation"
    script = (
        "import sys\n"
        "from odp_async.explore import Target, encode_token\n"
        "from odp_async.sim import RandomChooser\n"
        "t = Target.resolve('registration-race', sys.argv[1])\n"
        "ex = t.run(RandomChooser(0), max_steps=3000)\n"
        "print(encode_token(t, ex.sim.schedule, ex, 3000))\n"
    )
    (tmp_path / "tok.py").write_text(script)
    made = _run(tmp_path, "tok.py", ref)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    text = _run(tmp_path, "-m", "odp_async.cli", "replay", token)
    assert text.returncode == 5, text.stdout + text.stderr
    assert "inconclusive: the run reached the step bound of 3000 steps" in text.stdout
    assert "no violation" not in text.stdout
    drawn = _run(tmp_path, "-m", "odp_async.cli", "replay", token, "--text", "--width", "120")
    assert drawn.returncode == 5, drawn.stdout + drawn.stderr
    assert f"timeline registration-race/{ref}: inconclusive (" in drawn.stdout
    as_json = _run(tmp_path, "-m", "odp_async.cli", "replay", token, "--json")
    assert as_json.returncode == 5, as_json.stderr
    data = json.loads(as_json.stdout)
    assert (data["verdict"], data["unfinished"]) == ("inconclusive", True)


def test_the_pytest_plugin_fails_the_spinner_as_inconclusive(user: str, tmp_path: Path) -> None:
    (tmp_path / "test_user_spin.py").write_text(PYTEST_FILE.format(module=user))
    proc = _run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user_spin.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "ExplorationInconclusive" in proc.stdout


def test_no_scenario_expects_inconclusive() -> None:
    """``inconclusive`` says nothing of a protocol: a `Scenario` expecting it is refused
    (a file's ``[expected]`` too: tests/scenarios/test_files.py)."""
    from odp_async.errors import InvalidArgument
    from odp_async.explore import Verdict
    from odp_async.scenarios import BUILTIN

    race = BUILTIN["registration-race"]
    expected = {"naive": Verdict.INCONCLUSIVE}
    with pytest.raises(InvalidArgument, match=r"'naive'.*expected one of: clean, found"):
        type(race)(race.name, race.summary, race.body, race.actors, expected)


def test_explore_file_rows_say_inconclusive(user: str, tmp_path: Path) -> None:
    """``explore FILE`` naming both protocols, each expected clean: the never-committing
    one's row is ``inconclusive (expected clean)`` (exit 5: no verdict, not a miss), the
    correct one's ``clean``."""
    root = Path(__file__).resolve().parent.parent
    text = (root / "examples" / "registration-race.toml").read_text().split("[expected]")[0]
    refs = [f"{user}:NeverCommits", f"{user}:Careful"]
    listed = ", ".join(json.dumps(r) for r in refs)
    text = text.replace("[scenario]\n", f"[scenario]\nprotocols = [{listed}]\n", 1)
    text += "[expected]\n" + "".join(f'{json.dumps(r)} = "clean"\n' for r in refs)
    (tmp_path / "mine.toml").write_text(text)
    args = ("-m", "odp_async.cli", "explore", "mine.toml", "--chooser", "random")
    proc = _run(tmp_path, *args, "--schedules", "2", "--max-steps", "3000", "--json")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    rows = {row["protocol"]: row for row in json.loads(proc.stdout)["rows"]}
    assert (rows[refs[0]]["verdict"], rows[refs[0]]["matches"]) == ("inconclusive", False)
    assert (rows[refs[1]]["verdict"], rows[refs[1]]["matches"]) == ("clean", True)
