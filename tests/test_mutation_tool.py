"""The mutation script (tools/mutation.sh) refuses a bad module group with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mutation_script_names_a_bad_group() -> None:
    proc = subprocess.run(
        ["sh", str(ROOT / "tools" / "mutation.sh"), "bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "tools/mutation.sh: unknown module group 'bogus' (odp, check, sync, mm, all)"
    ]
    assert proc.stdout == ""


def test_mutation_score_reads_mutmut_results(tmp_path: Path) -> None:
    meta = tmp_path / "mutants" / "odp_async" / "check.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"odp_async.check.xǁCǁf__mutmut_1": 1, "odp_async.check.xǁCǁf__mutmut_2": 0}
    meta.write_text('{"exit_code_by_key": ' + json.dumps(codes) + "}")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutation_score.py"), "odp_async.check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    assert "| odp_async.check | 1 | 1 | 0 | 0 | 0 | 0 | 50.0% of 2 |" in proc.stdout


def test_mutation_score_lists_the_mutants_of_one_status(tmp_path: Path) -> None:
    """``--list STATUS``: the names `ONLY=... tools/mutation.sh` hands to mutmut."""
    meta = tmp_path / "mutants" / "odp_async" / "sync.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"odp_async.sync.x_f__mutmut_1": None, "odp_async.sync.x_f__mutmut_2": 0}
    meta.write_text('{"exit_code_by_key": ' + json.dumps(codes) + "}")

    def listed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "tools" / "mutation_score.py"), "--list", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )

    assert listed("not checked", "odp_async.sync").stdout == "odp_async.sync.x_f__mutmut_1\n"
    assert listed("survived").stdout == "odp_async.sync.x_f__mutmut_2\n"
    assert listed("killed", "odp_async.mm").stdout == ""
    bad = listed("dead")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "mutation_score.py: --list needs one of "
        "killed, survived, no tests, timeout, other, not checked"
    ]


def test_tests_that_read_the_tracking_are_skipped_under_mutmut_only() -> None:
    """mutmut's trampolines are closures, which `odp_async.tracked` counts as untracked
    state: under mutmut (``MUTANT_UNDER_TEST`` set, empty for its clean run) the tests of
    ``NOT_UNDER_MUTMUT`` are skipped; the names there name tests that exist."""
    from tests.conftest import NOT_UNDER_MUTMUT

    for nodeid in NOT_UNDER_MUTMUT:
        path, _, name = nodeid.partition("::")
        assert f"def {name}(" in (ROOT / path).read_text(), nodeid
    test = "tests/model/test_tracked_coverage.py::test_a_built_world_has_nothing_untracked"
    env = {k: v for k, v in os.environ.items() if k != "MUTANT_UNDER_TEST"}
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-rs",
        f"{test}[naive]",
    ]
    under = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**env, "MUTANT_UNDER_TEST": ""},
        check=False,
    )
    assert "1 skipped" in under.stdout, under.stdout
    assert "mutmut's trampolines are closures" in under.stdout
    plain = subprocess.run(
        args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, check=False
    )
    assert "1 passed" in plain.stdout, plain.stdout


def test_under_mutmut_every_test_gets_the_longer_per_test_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Under mutmut (``MUTANT_UNDER_TEST`` set: ``stats``, empty for its clean run, or a
    mutant's name) each test gets `MUTMUT_TIMEOUT`, first among its markers, so a test
    slowed by load fails no run and kills no mutant; a plain run keeps its limit."""
    from tests import conftest

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid
            self.marks: list[tuple[str, tuple[object, ...], bool]] = []

        def add_marker(self, mark: pytest.MarkDecorator, append: bool = True) -> None:
            self.marks.append((mark.name, mark.args, append))

    monkeypatch.chdir(tmp_path)  # no mutmut-stats.json: no reordering
    for under in ("stats", "odp_async.mm.x_f__mutmut_1", "", None):
        if under is None:
            monkeypatch.delenv("MUTANT_UNDER_TEST")
        else:
            monkeypatch.setenv("MUTANT_UNDER_TEST", under)
        items = [Item("tests/test_a.py::test_a")]
        conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
        expected = [] if under is None else [("timeout", (conftest.MUTMUT_TIMEOUT,), False)]
        assert items[0].marks == expected, under
