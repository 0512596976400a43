"""Packaging from every channel: the sdist is complete (its own tests pass unpacked), the
wheel ships the example scenario files, ``odp-async examples`` lists and copies them."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from odp_async.cli import main
from odp_async.example_files import copy_examples, examples_dir, list_examples

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.toml"))


# --- odp-async examples --------------------------------------------------------------------


def test_examples_lists_every_file_with_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == EXAMPLES
    race = next(line for line in lines if line.split()[0] == "registration-race.toml")
    assert "madvise(DONTNEED) under mmap_sem read runs while B registers" in race
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # each has a summary


def test_examples_copy_copies_them_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mine"
    assert main(["examples", "--copy", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == EXAMPLES
    assert (target / "registration-race.toml").read_bytes() == (
        ROOT / "examples" / "registration-race.toml"
    ).read_bytes()
    capsys.readouterr()

    (target / "fault-vs-munmap.toml").write_text("# my edits\n")
    assert main(["examples", "--copy", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "already exists; not overwriting it" in err
    assert (target / "fault-vs-munmap.toml").read_text() == "# my edits\n"  # untouched

    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(["examples", "--copy", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_the_library_api_of_the_examples(tmp_path: Path) -> None:
    assert examples_dir() == ROOT / "examples"  # a checkout: the source tree's copy
    assert [e.name for e in list_examples()] == EXAMPLES
    copied = copy_examples(tmp_path / "a" / "b")
    assert [p.name for p in copied] == EXAMPLES


# --- the sdist and the wheel ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, then the wheel built from that sdist (what ``python -m build`` does)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


@pytest.mark.packaging
def test_the_sdist_holds_examples_docs_tests_benchmarks_and_the_license(dist: Path) -> None:
    with tarfile.open(_only(dist, "*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for name in [
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "docs/registration-race.png",
        "examples/README.md",
        "tests/conftest.py",
        "tests/test_packaging.py",
        "benchmarks/bench_sync.py",
        "odp_async/explore/pytest_plugin.py",
        *(f"examples/{e}" for e in EXAMPLES),
    ]:
        assert name in names, name
    assert not any("__pycache__" in n or n.startswith(".venv") for n in names)


@pytest.mark.packaging
def test_the_wheel_ships_the_examples_the_plugin_and_the_license(dist: Path) -> None:
    with zipfile.ZipFile(_only(dist, "*.whl")) as wheel:
        names = set(wheel.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entries = wheel.read(entry_points).decode()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = wheel.read(metadata).decode()
    assert sorted(n.split("/")[-1] for n in names if n.startswith("odp_async/examples/")) == [
        "README.md",
        *EXAMPLES,
    ]
    assert "[pytest11]\nodp_async = odp_async.explore.pytest_plugin" in entries
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in meta
    # The explorer's code walks read CPython 3.11 bytecode (README, "Python 3.11 only"):
    # another version must not install it and get wrong verdicts.
    assert "Requires-Python: <3.12,>=3.11" in meta


def _env(path: Path) -> dict[str, str]:
    # The unpacked copy first on the path: it, not this checkout, is what runs.
    return {**os.environ, "PYTHONPATH": str(path)}


@pytest.mark.packaging
def test_the_installed_wheel_finds_its_examples(dist: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(_only(dist, "*.whl")) as wheel:
        wheel.extractall(site)
    run = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "examples"],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "registration-race.toml" in run.stdout
    where = subprocess.run(
        [sys.executable, "-c", "from odp_async.example_files import *; print(examples_dir())"],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert Path(where.stdout.strip()) == site / "odp_async" / "examples"


@pytest.mark.packaging
def test_the_unpacked_sdist_passes_its_own_tests(dist: Path, tmp_path: Path) -> None:
    with tarfile.open(_only(dist, "*.tar.gz")) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    where = subprocess.run(
        [sys.executable, "-c", "import odp_async; print(odp_async.__file__)"],
        cwd=tree,
        env=_env(tree),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(tree)
    subset = [
        "tests/test_public_api.py",
        "tests/test_condition.py::test_wait_returns_holding_the_lock_after_a_notify",
        "tests/scenarios/test_files.py::test_every_builtin_has_an_example",
        "tests/scenarios/test_files.py::test_example_loads_as_its_twin_says",
        "tests/test_packaging.py::test_examples_lists_every_file_with_its_summary",
        "tests/test_readme_plugin_sections.py::test_the_packaging_snippets_run",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *subset],
        cwd=tree,
        env=_env(tree),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    assert "failed" not in run.stdout
