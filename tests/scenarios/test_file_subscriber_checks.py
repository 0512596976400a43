"""Issue 10 trial: a scenario file's subscribers are checked when the file is read -- a
name subscribed twice, a class that cannot be built as ``Class(mm, checker, name)`` or
whose callbacks are not ``async def``, a module that is there but fails to import -- each
a one-line error (exit 2 from the CLI) naming the bad value, never a run that "finds" a
``TypeError``.  The library refuses a non-subscriber in `register_notifier`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.errors import InvalidArgument
from odp_async.scenarios.files import ScenarioFileError, read_scenario
from odp_async.world import run_world
from tests._usermod import forget, pythonpath_env, write_user_module

SUBS = """
from odp_async.subscribers import Subscriber


class Fine(Subscriber):
    async def invalidate_range_start(self, inv):
        self.zap(inv.range)

    async def invalidate_range_end(self, inv):
        pass

    async def release(self):
        self.zap_all()


class WrongCtor(Fine):
    def __init__(self, mm):
        super().__init__(mm, None, "wrong")


class SyncCallbacks:
    def __init__(self, mm, checker, name):
        self.name = name

    def invalidate_range_start(self, inv):
        pass

    def invalidate_range_end(self, inv):
        pass

    def release(self):
        pass
"""

BROKEN = """
import nonexistent_dep_of_a_user_module


class X:
    pass
"""

FILE = """
[scenario]
name = "subs"
summary = "a subscriber against a madvise"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "subscribe", sub = "dev", kind = "KIND" },
]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x0, pages = 4 }]
"""


@pytest.fixture
def subs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = write_user_module(tmp_path, SUBS, "trialsubs", monkeypatch)
    yield name
    forget(name)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subs.toml"
    path.write_text(text)
    return path


def _error(path: Path) -> ScenarioFileError:
    with pytest.raises(ScenarioFileError) as info:
        read_scenario(path)
    assert "\n" not in str(info.value)
    return info.value


def test_a_fine_subscriber_file_reads(tmp_path: Path, subs: str) -> None:
    read_scenario(_write(tmp_path, FILE.replace("KIND", f"{subs}:Fine")))


def test_a_name_subscribed_twice_is_refused(tmp_path: Path, subs: str) -> None:
    text = FILE.replace("KIND", f"{subs}:Fine").replace(
        "]\n\n[[actor]]",
        '    { op = "subscribe", sub = "dev", kind = "kvm" },\n]\n\n[[actor]]',
        1,
    )
    e = _error(_write(tmp_path, text))
    assert e.key == "setup.ops[2].sub"
    assert "subscriber 'dev' is subscribed twice (first at setup.ops[1])" in str(e)


def test_a_name_subscribed_again_in_an_actor_is_refused(tmp_path: Path) -> None:
    text = FILE.replace("KIND", "kvm").replace(
        'ops = [{ op = "madvise"',
        'ops = [{ op = "subscribe", sub = "dev", kind = "hmm" }, { op = "madvise"',
    )
    e = _error(_write(tmp_path, text))
    assert e.key == "actor[0].ops[0].sub"
    assert "subscribed twice" in str(e)


def test_a_wrong_constructor_is_refused_naming_the_class(tmp_path: Path, subs: str) -> None:
    e = _error(_write(tmp_path, FILE.replace("KIND", f"{subs}:WrongCtor")))
    assert e.key == "setup.ops[1].kind"
    assert "WrongCtor" in str(e)
    assert "Class(mm, checker, name)" in str(e)
    assert "WrongCtor(mm)" in str(e)


def test_sync_callbacks_are_refused_naming_the_class(tmp_path: Path, subs: str) -> None:
    e = _error(_write(tmp_path, FILE.replace("KIND", f"{subs}:SyncCallbacks")))
    assert "SyncCallbacks" in str(e)
    assert "async def" in str(e)


def test_a_module_that_fails_its_own_import_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = write_user_module(tmp_path, BROKEN, "brokenmod", monkeypatch)
    try:
        e = _error(_write(tmp_path, FILE.replace("KIND", f"{name}:X")))
    finally:
        forget(name)
    assert f"module {name!r} of subscriber" in str(e)
    assert "was found but failed to import" in str(e)
    assert "nonexistent_dep_of_a_user_module" in str(e)
    assert "PYTHONPATH" not in str(e)


def test_a_missing_module_still_points_at_the_path(tmp_path: Path) -> None:
    e = _error(_write(tmp_path, FILE.replace("KIND", "no_such_module_xyz:X")))
    assert "(is it on sys.path / PYTHONPATH?)" in str(e)


def test_the_cli_exits_2_with_one_line(tmp_path: Path, subs: str) -> None:
    path = _write(tmp_path, FILE.replace("KIND", f"{subs}:WrongCtor"))
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", str(path), "--schedules", "5"],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        timeout=300,
    )
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1
    assert "WrongCtor" in done.stderr
    assert "found" not in done.stdout


def test_register_notifier_refuses_sync_callbacks(subs: str) -> None:
    import importlib

    module = importlib.import_module(subs)

    async def body(w: object) -> None:
        await w.mm.register_notifier(module.SyncCallbacks(w.mm, w.checker, "s"))  # type: ignore[attr-defined]

    run = run_world(body)
    assert isinstance(run.sim.error, InvalidArgument)
    assert "async def" in str(run.sim.error)


# --- an op for plain MRs on an implicit MR, and the other way round ---------------------

IMPLICIT = """
[scenario]
name = "imp"
summary = "an implicit MR and a plain one"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 8 },
    { op = "populate", start = 0x0, pages = 8 },
    { op = "register_implicit", mr = "imr", child_pages = 4 },
    { op = "register", mr = "A", start = 0x0, pages = 8 },
]

[[actor]]
name = "dev"
ops = [OP]
"""


@pytest.mark.parametrize(
    ("op", "fragment"),
    [
        ('{ op = "dma", mr = "imr", address = 0x0 }', "expected 'dma_implicit' for it"),
        ('{ op = "fault", mr = "imr", address = 0x0 }', "expected 'fault_implicit' for it"),
        ('{ op = "deregister", mr = "imr" }', "expected 'deregister_implicit' for it"),
        ('{ op = "lock", mr = "imr" }', "'lock' takes an MR registered with 'register'"),
        ('{ op = "dma_implicit", mr = "A", address = 0x0 }', "expected 'dma' for it"),
    ],
)
def test_a_plain_op_on_an_implicit_mr_names_its_twin(
    tmp_path: Path, op: str, fragment: str
) -> None:
    e = _error(_write(tmp_path, IMPLICIT.replace("OP", op)))
    assert e.key == "actor[0].ops[0].op"
    assert fragment in str(e)
