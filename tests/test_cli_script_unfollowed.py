"""``[script] unfollowed``: the protocols whose fix makes a scenario's script impossible
(new-user trial: the shipped registration-race.toml and truncate-during-registration.toml
exited 2 under ``--chooser script``, with an error for each of the three protocols that
close the window, and a file had no way to say so).  A run under a listed protocol that
leaves the script is expected, never a verdict; one that follows it, or that runs into a
violation the protocol is not expected to have, is a mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import InvalidArgument
from odp_async.explore.scripted import run_script
from odp_async.explore.target import Target
from odp_async.scenarios import BUILTIN, Scenario
from odp_async.scenarios.files import read_scenario
from tests.test_cli_script import ROOT, cli, write

EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("name", ["registration-race", "truncate-during-registration"])
def test_the_shipped_files_with_protocols_that_close_the_window(tmp_path: Path, name: str) -> None:
    done = cli(tmp_path, "explore", str(EXAMPLES / f"{name}.toml"), "--chooser", "script")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[-1] == "7/7 protocols as expected under the script"
    cannot = [line.split(": ")[0] for line in lines if "cannot follow the script" in line]
    assert cannot == [f"{name}/range-list", f"{name}/hmm-pool", f"{name}/interval-seq"]
    assert sum(line.startswith("not followed: script step ") for line in lines) == 3
    # --json says which were expected not to follow
    done = cli(
        tmp_path, "explore", str(EXAMPLES / f"{name}.toml"), "--chooser", "script", "--json"
    )
    assert done.returncode == ExitCode.OK, done.stderr
    rows = {row["protocol"]: row for row in json.loads(done.stdout)["rows"]}
    assert rows["interval-seq"]["expected"] == "unfollowed"
    assert (rows["interval-seq"]["followed"], rows["interval-seq"]["matches"]) == (False, True)
    assert rows["interval-seq"]["verdict"] is None  # no verdict under the script
    assert (rows["kvm-seq"]["expected"], rows["kvm-seq"]["followed"]) == ("clean", True)
    # the Python twin says the same
    assert BUILTIN[name].script_unfollowed == {"range-list", "hmm-pool", "interval-seq"}


def test_a_listed_protocol_that_follows_the_script_is_a_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, expected='unfollowed = ["kvm-seq"]')
    done = cli(tmp_path, "explore", path, "--chooser", "script")
    assert done.returncode == ExitCode.VIOLATION, done.stdout + done.stderr
    assert (
        "my-fault-vs-munmap/kvm-seq: clean under the script, expected it not to be followed ("
        in done.stdout
    )
    assert done.stdout.splitlines()[-1] == "2/3 protocols as expected under the script"


def test_a_listed_protocol_still_answers_for_what_its_run_found(tmp_path: Path) -> None:
    """naive under a mistyped step leaves the script at once and runs on oldest first:
    listed, its clean run is as expected; a run that found a violation naive is not
    expected to have would be a mismatch (checked on the run's record)."""
    path = write(tmp_path, until="B.umem_mutx", expected='unfollowed = ["naive"]')
    done = cli(tmp_path, "explore", path, "-p", "naive", "--chooser", "script")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    head, why = done.stdout.splitlines()[:2]
    assert head.startswith("my-fault-vs-munmap/naive: cannot follow the script, as expected (")
    assert why.startswith("not followed: script step 0 ['fault', 'B.umem_mutx'] was not reached")
    # the protocols not listed still name the typo, and exit 2
    done = cli(tmp_path, "explore", path, "--chooser", "script")
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    assert len(done.stderr.splitlines()) == 2  # kvm-seq and the user's MyKvm
    # the record: a listed protocol's off-script run with an unexpected verdict
    scenario = read_scenario(tmp_path / path, protocols=("naive",)).scenario
    run = run_script(Target.resolve(scenario, "naive"), max_steps=10_000)
    assert run.unfollowed is not None
    assert (run.expect_unfollowed, run.matches) == (True, True)
    for verdict, matches in (("clean", True), ("found", True), ("deadlock", False)):
        other = type(run)(
            run.target,
            run.execution,
            type(run.verdict)(verdict),
            run.expected,
            run.unfollowed,
            run.token,
            expect_unfollowed=True,
        )
        assert other.matches is matches, verdict


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'unfollowed = ["kvm-sq"]',
            "script.unfollowed[0]: expected one of the file's protocols (naive, kvm-seq, "
            "userprotos:MyKvm), got 'kvm-sq' (did you mean 'kvm-seq'?)",
        ),
        ('unfollowed = "kvm-seq"', "script.unfollowed: expected an array of protocol names"),
        ('unfollowed = ["kvm-seq", "kvm-seq"]', "script.unfollowed[1]: 'kvm-seq' is listed twice"),
        (
            'unfollowed = ["naive"]\nexpected = { naive = "clean" }',
            "script.unfollowed[0]: 'naive' also has a verdict in script.expected",
        ),
        (
            'unfollowed = ["naive", "kvm-seq", "userprotos:MyKvm"]',
            "script.unfollowed: every protocol of the file is listed",
        ),
    ],
)
def test_a_bad_list_is_one_line_naming_it(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, expected=line)
    done = cli(tmp_path, "explore", path, "--chooser", "script")
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    (error,) = done.stderr.splitlines()
    assert message in error


def test_a_list_without_steps_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, expected='unfollowed = ["naive"]')
    text = (tmp_path / path).read_text()
    steps = 'steps = [["fault", "B.umem_mutex"], ["munmap"], ["fault"], ["dma"]]'
    (tmp_path / path).write_text(text.replace(steps, "steps = []"))
    done = cli(tmp_path, "explore", path, "--chooser", "script")
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    (error,) = done.stderr.splitlines()
    assert error == (
        "odp-async: error: mine.toml: script.unfollowed: names protocols that cannot follow "
        "the script, but script.steps is empty"
    )


def test_a_python_scenario_checks_its_list() -> None:
    twin = BUILTIN["registration-race"]
    with pytest.raises(InvalidArgument, match="'interval-seq' has a verdict expected under"):
        Scenario(
            twin.name,
            twin.summary,
            twin.body,
            twin.actors,
            script=twin.script,
            script_expected={"interval-seq": twin.expected_for("interval-seq")},
            script_unfollowed={"interval-seq"},
        )
    with pytest.raises(InvalidArgument, match="script_unfollowed names protocols, but there"):
        Scenario(twin.name, twin.summary, twin.body, twin.actors, script_unfollowed={"naive"})
    # one name given bare would be the set of its letters
    with pytest.raises(InvalidArgument, match="got the str 'naive'"):
        Scenario(
            twin.name,
            twin.summary,
            twin.body,
            twin.actors,
            script=twin.script,
            script_unfollowed="naive",
        )
    with pytest.raises(InvalidArgument, match=r"takes protocol names \(each a str\), got 3"):
        Scenario(
            twin.name,
            twin.summary,
            twin.body,
            twin.actors,
            script=twin.script,
            script_unfollowed=[3],  # type: ignore[list-item]
        )
