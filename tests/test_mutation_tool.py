"""The mutation script (tools/mutation.sh) refuses a bad module group with one line."""

from __future__ import annotations

import json
import os
import re
import shutil
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


# tools/mutation_results.py: mutmut's results kept in the repository.

_SOURCE = """def f(x):
    return x + 1


class C:
    def g(self, y):
        return y * 2
"""


def _tool(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutation_results.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def _project(tmp_path: Path) -> dict[str, object]:
    """A source file and the ``.meta`` mutmut would have left for it after a run."""
    hashing = pytest.importorskip("mutmut.mutation.file_mutation")
    source = tmp_path / "odp_async" / "check.py"
    source.parent.mkdir(parents=True)
    source.write_text(_SOURCE)
    hashes = hashing.compute_function_hashes(_SOURCE)
    assert set(hashes) == {"x_f", "xǁCǁg"}
    meta = {
        "exit_code_by_key": {
            "odp_async.check.x_f__mutmut_1": 1,
            "odp_async.check.x_f__mutmut_2": 0,
            "odp_async.check.x_f__mutmut_3": None,
            "odp_async.check.xǁCǁg__mutmut_1": 3,
            "odp_async.check.xǁCǁg__mutmut_2": 36,
        },
        "hash_by_function_name": hashes,
        "type_check_error_by_key": {},
        "durations_by_key": {"odp_async.check.x_f__mutmut_1": 0.5},
        "estimated_durations_by_key": {},
    }
    path = tmp_path / "mutants" / "odp_async" / "check.py.meta"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(meta, ensure_ascii=False))
    return meta


def _meta(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "mutants" / "odp_async" / "check.py.meta"
    loaded: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def test_saved_results_restore_into_a_fresh_mutants_dir(tmp_path: Path) -> None:
    """save, then (on a fresh machine: no mutants/) restore: mutmut finds every result and
    the hash that keeps it; saving again writes the same bytes."""
    meta = _project(tmp_path)
    saved = _tool(tmp_path, "save", "results.json")
    assert saved.returncode == 0, saved.stderr
    assert "saved 4 results of 5 mutants" in saved.stdout
    first = (tmp_path / "results.json").read_bytes()
    shutil.rmtree(tmp_path / "mutants")
    restored = _tool(tmp_path, "restore", "results.json")
    assert restored.returncode == 0, restored.stderr
    assert "restored 4 results" in restored.stdout
    back = _meta(tmp_path)
    assert back["exit_code_by_key"] == meta["exit_code_by_key"]
    assert back["hash_by_function_name"] == meta["hash_by_function_name"]
    # mutmut's loader pops these five keys and refuses any other
    assert set(back) == set(meta)
    assert _tool(tmp_path, "save", "results.json").returncode == 0
    assert (tmp_path / "results.json").read_bytes() == first


def test_a_function_changed_since_the_save_loses_its_results(tmp_path: Path) -> None:
    """Only the changed function's results are dropped, and its hash too, so mutmut
    resets it and runs its mutants again; the unchanged one keeps its results."""
    _project(tmp_path)
    assert _tool(tmp_path, "save", "results.json").returncode == 0
    shutil.rmtree(tmp_path / "mutants")
    (tmp_path / "odp_async" / "check.py").write_text(_SOURCE.replace("x + 1", "x + 2"))
    restored = _tool(tmp_path, "restore", "results.json")
    assert restored.returncode == 0, restored.stderr
    assert "restored 2 results" in restored.stdout
    assert "dropped 2 of functions changed since" in restored.stdout
    back = _meta(tmp_path)
    assert back["exit_code_by_key"] == {
        "odp_async.check.xǁCǁg__mutmut_1": 3,
        "odp_async.check.xǁCǁg__mutmut_2": 36,
    }
    assert set(back["hash_by_function_name"]) == {"xǁCǁg"}  # type: ignore[arg-type]


def test_a_stale_result_already_in_mutants_is_dropped_too(tmp_path: Path) -> None:
    """mutants/ kept from an earlier run on older code: the changed function's results
    there are reset before anything lists the unchecked mutants."""
    _project(tmp_path)
    assert _tool(tmp_path, "save", "results.json").returncode == 0
    (tmp_path / "odp_async" / "check.py").write_text(_SOURCE.replace("y * 2", "y * 3"))
    assert _tool(tmp_path, "restore", "results.json").returncode == 0
    codes = _meta(tmp_path)["exit_code_by_key"]
    assert codes == {
        "odp_async.check.x_f__mutmut_1": 1,
        "odp_async.check.x_f__mutmut_2": 0,
        "odp_async.check.x_f__mutmut_3": None,
        "odp_async.check.xǁCǁg__mutmut_1": None,
        "odp_async.check.xǁCǁg__mutmut_2": None,
    }


def test_the_score_is_printed_from_the_saved_file_alone(tmp_path: Path) -> None:
    _project(tmp_path)
    assert _tool(tmp_path, "save", "results.json").returncode == 0
    shutil.rmtree(tmp_path / "mutants")
    shutil.rmtree(tmp_path / "odp_async")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "mutation_score.py"),
            "--results",
            "results.json",
            "odp_async.check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    assert "| odp_async.check | 2 | 1 | 0 | 1 | 0 | 1 | 50.0% of 4 |" in proc.stdout


def test_a_bad_results_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("[1]")
    for args in (["restore", "results.json"], ["bogus"]):
        proc = _tool(tmp_path, *args)
        assert proc.returncode == 2
        assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_the_script_restores_before_mutmut_and_saves_after(tmp_path: Path) -> None:
    """tools/mutation.sh in a copy of the project, with a stand-in for mutmut that records
    what it found in mutants/ and leaves one more result: the saved results reach it, and
    its results reach the saved file, even when it fails."""
    _project(tmp_path)
    (tmp_path / "tools").mkdir()
    for name in ("mutation.sh", "mutation_results.py", "mutation_score.py"):
        shutil.copy(ROOT / "tools" / name, tmp_path / "tools" / name)
    assert _tool(tmp_path, "save").returncode == 0  # tools/mutation-results.json
    shutil.rmtree(tmp_path / "mutants")
    fake = tmp_path / "fake_mutmut.py"
    fake.write_text(
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "meta = Path('mutants/odp_async/check.py.meta')\n"
        "data = json.loads(meta.read_text())\n"
        "Path('seen.json').write_text(json.dumps([sys.argv[1:], data['exit_code_by_key']]))\n"
        "data['exit_code_by_key']['odp_async.check.x_f__mutmut_3'] = 1\n"
        "meta.write_text(json.dumps(data))\n"
        "sys.exit(int(os.environ.get('FAKE_FAIL', '0')))\n"
    )
    mutmut = tmp_path / "mutmut"
    mutmut.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    mutmut.chmod(0o755)
    env = {**os.environ, "MUTMUT": str(mutmut), "PYTHON": sys.executable, "ONLY": "not checked"}
    script = str(tmp_path / "tools" / "mutation.sh")
    proc = subprocess.run(
        ["sh", script, "odp", "check", "mm", "sync"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    args, seen = json.loads((tmp_path / "seen.json").read_text())
    assert args == ["run", "--max-children", "2"]  # every group: mutmut picks the unchecked
    assert seen["odp_async.check.x_f__mutmut_1"] == 1
    assert seen["odp_async.check.x_f__mutmut_3"] is None
    assert "| odp_async.check | 3 | 1 | 0 | 1 | 0 | 0 | 60.0% of 5 |" in proc.stdout
    saved = (tmp_path / "tools" / "mutation-results.json").read_text()
    assert '"x_f": ["' in saved
    assert ",[1,0,1]]" in saved
    # a failing mutmut still saves what it left
    meta = tmp_path / "mutants" / "odp_async" / "check.py.meta"
    data = json.loads(meta.read_text())
    data["exit_code_by_key"]["odp_async.check.x_f__mutmut_3"] = None
    meta.write_text(json.dumps(data))
    shutil.rmtree(tmp_path / "mutants")
    (tmp_path / "tools" / "mutation-results.json").write_text(
        saved.replace(",[1,0,1]]", ",[1,0,null]]")
    )
    env["FAKE_FAIL"] = "1"
    proc = subprocess.run(
        ["sh", script, "check"], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert proc.returncode == 1
    args, _ = json.loads((tmp_path / "seen.json").read_text())
    assert args == ["run", "--max-children", "2", "odp_async.check.x_f__mutmut_3"]
    assert ",[1,0,1]]" in (tmp_path / "tools" / "mutation-results.json").read_text()


def test_the_readme_table_is_printed_from_the_committed_results() -> None:
    """The README's mutation figures are what `mutation_score.py --results` prints from
    the committed tools/mutation-results.json (no mutants/ needed)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "mutation_score.py"),
            "--results",
            str(ROOT / "tools" / "mutation-results.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    table = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("|"))
    assert table.count("\n") == 5, proc.stdout
    assert table in (ROOT / "README.md").read_text()


def test_mutation_score_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    """No ``mutants/`` and no ``--results``, an unknown option, or a module with no
    mutant: one line and exit 2, not a table of zeros; ``--help`` prints the usage."""

    def score(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "tools" / "mutation_score.py"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )

    results = str(ROOT / "tools" / "mutation-results.json")
    for args, line in [
        (
            (),
            "mutation_score.py: no mutants/ here: run tools/mutation.sh first, or read the "
            "saved results with --results tools/mutation-results.json",
        ),
        (
            ("--results", results, "--bogus"),
            "mutation_score.py: unknown option '--bogus' (see --help)",
        ),
        (
            ("--results", results, "odp_async.nope"),
            "mutation_score.py: no mutant of module 'odp_async.nope'",
        ),
    ]:
        proc = score(*args)
        assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (2, "", [line]), args
    usage = score("--help")
    assert usage.returncode == 0
    assert usage.stdout.startswith("Print the mutation score per module")


def test_every_survivor_is_listed_with_its_reason() -> None:
    """tools/mutation-survivors.md names exactly the survivors of the committed results,
    each with a reason: a kill recorded since, or a new survivor, makes the list wrong
    until it is brought up to date."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "mutation_score.py"),
            "--results",
            str(ROOT / "tools" / "mutation-results.json"),
            "--list",
            "survived",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    survivors = set(proc.stdout.split())
    text = (ROOT / "tools" / "mutation-survivors.md").read_text()
    listed = dict(re.findall(r"^- `(odp_async\.[^`]+)`: (.+)$", text, re.M))
    assert set(listed) ^ survivors == set()
    assert all(len(why) >= 30 for why in listed.values())
    readme = " ".join((ROOT / "README.md").read_text().split())
    not_killed = sum(why.startswith("NOT EQUIVALENT") for why in listed.values())
    assert f"{len(listed)} survivors" in readme
    assert f"{not_killed} are not equivalent" in readme
