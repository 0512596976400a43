"""Scenario files with issue 10's operations (item 10): subscribers (KVM-style, HMM-mirror,
your own ``module:Class``) and their faults, work items queued / flushed / cancelled from an
actor, and the notifier core's variants (``mm_option``).  Each file explores; a failure it
finds replays from a fresh process through the CLI (``replay TOKEN --scenario-file``); a
mistake in it is a one-line error naming the bad value."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from odp_async.cli import ExitCode
from odp_async.explore import explore
from odp_async.scenarios.files import ScenarioFileError, read_scenario
from tests._usermod import forget, pythonpath_env, write_user_module

USER_SUBSCRIBER = """
from odp_async.addr import AddrRange
from odp_async.subscribers import Subscriber


class Forgetful(Subscriber):
    \"\"\"Mirrors pages on fault and never drops them on an invalidation.\"\"\"

    async def invalidate_range_start(self, inv):
        pass

    async def invalidate_range_end(self, inv):
        pass

    async def release(self):
        self.zap_all()

    async def fault(self, address, *, write=False):
        pages = await self.mm.get_user_pages(AddrRange.pages(address >> 12, 1), write=write)
        self.install(pages)
        self.mm.put_pages(pages)
        return "resolved"
"""

KVM_TEARDOWN = """
[scenario]
name = "kvm-teardown"
summary = "a KVM-style subscriber torn down while a madvise runs its start"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mm_option", option = "notifier_teardown", value = "VARIANT" },
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "populate", start = 0x0, pages = 4 },
    { op = "subscribe", sub = "kvm", kind = "kvm" },
]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x0, pages = 4 }]

[[actor]]
name = "driver"
ops = [{ op = "unsubscribe", sub = "kvm" }]
"""

MIRRORS = """
[scenario]
name = "mirrors"
summary = "an HMM mirror and your own subscriber fault while a madvise runs"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "populate", start = 0x0, pages = 4 },
    { op = "subscribe", sub = "hmm", kind = "hmm" },
    { op = "subscribe", sub = "mine", kind = "USERMOD:Forgetful" },
]

[[actor]]
name = "hmm"
ops = [
    { op = "sub_fault", sub = "hmm", address = 0x1000, write = true },
    { op = "sub_access", sub = "hmm", address = 0x1000 },
]

[[actor]]
name = "mine"
ops = [{ op = "sub_fault", sub = "mine", address = 0x2000, write = true }]

[[actor]]
name = "madvise"
after = ["mine"]
ops = [{ op = "madvise", start = 0x0, pages = 4 }]

[[actor]]
name = "access"
after = ["madvise"]
ops = [{ op = "sub_access", sub = "mine", address = 0x2000 }]
"""

WORK = """
[scenario]
name = "work-items"
summary = "a driver queues work items, flushes one and cancels another"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "register", mr = "A", start = 0x0, pages = 4 },
]

[[actor]]
name = "driver"
ops = [
    { op = "queue_work", work = "zap", ops = [{ op = "madvise", start = 0x0, pages = 4 }] },
    { op = "queue_work", work = "zap", ops = [{ op = "madvise", start = 0x0, pages = 4 }] },
    { op = "cancel_work", work = "zap" },
    { op = "queue_work", work = "locker", ops = [LOCKER] },
    { op = "flush_work", work = "locker" },
]
"""


@pytest.fixture
def usermod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = write_user_module(tmp_path, USER_SUBSCRIBER, "filesub", monkeypatch)
    yield name
    forget(name)


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _replays_in_a_fresh_process(path: Path, token: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "replay", token, "--scenario-file", str(path)],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        timeout=300,
    )
    assert done.returncode == ExitCode.VIOLATION, done.stderr


def test_subscribe_kvm_unsubscribe_and_mm_option(tmp_path: Path) -> None:
    broken = _file(tmp_path, "kvm.toml", KVM_TEARDOWN.replace("VARIANT", "no-release"))
    result = explore(str(broken), protocol="odp2014", schedules=500, shrink=False)
    assert result.failure is not None
    assert result.failure.violation.kind == "use-after-free"
    assert result.failure.token is not None
    _replays_in_a_fresh_process(broken, result.failure.token, tmp_path)
    fixed = _file(tmp_path, "kvm-fixed.toml", KVM_TEARDOWN.replace("VARIANT", "unregister"))
    assert explore(str(fixed), protocol="odp2014", schedules=500).failure is None


def test_subscribe_hmm_and_a_user_subscriber_with_their_faults(
    tmp_path: Path, usermod: str
) -> None:
    path = _file(tmp_path, "mirrors.toml", MIRRORS.replace("USERMOD", usermod))
    result = explore(str(path), protocol="odp2014", schedules=200, shrink=False)
    assert result.failure is not None
    assert result.failure.violation.kind in ("stale-translation", "stale-dma")
    assert "mine" in result.failure.violation.detail
    assert result.failure.token is not None
    _replays_in_a_fresh_process(path, result.failure.token, tmp_path)


def test_work_items_from_an_actor(tmp_path: Path) -> None:
    # a work item that keeps the lock it took is the file's mistake (trial 18b, finding 4)
    held = _file(tmp_path, "work.toml", WORK.replace("LOCKER", '{ op = "lock", mr = "A" }'))
    with pytest.raises(ScenarioFileError, match="work 'locker' locks MR A") as info:
        read_scenario(held)
    assert info.value.key == "actor[0].ops[3].ops[0].op"
    balanced = WORK.replace("LOCKER", '{ op = "lock", mr = "A" }, { op = "unlock", mr = "A" }')
    assert (
        explore(str(_file(tmp_path, "w2.toml", balanced)), "odp2014", schedules=300).failure
        is None
    )


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        ('kind = "kvm"', 'kind = "xen"', "setup.ops[3].kind", "unknown subscriber kind 'xen'"),
        ('kind = "kvm"', 'kind = "nope_mod_x:K"', "setup.ops[3].kind", "'nope_mod_x'"),
        ('value = "VARIANT"', 'value = "2012"', "setup.ops[0].value", "unknown value '2012'"),
        ('option = "notifier_teardown"', 'option = "speed"', "setup.ops[0].option", "'speed'"),
        ('sub = "kvm" }]', 'sub = "vm" }]', "actor[1].ops[0].sub", "subscribes 'vm'"),
    ],
)
def test_bad_values_are_one_line_errors(
    tmp_path: Path, old: str, new: str, key: str, fragment: str
) -> None:
    text = KVM_TEARDOWN.replace("VARIANT", "unregister") if "VARIANT" not in old else KVM_TEARDOWN
    assert old in text
    path = _file(tmp_path, "bad.toml", text.replace(old, new, 1))
    with pytest.raises(ScenarioFileError) as info:
        read_scenario(path)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_flush_of_a_work_never_queued_and_work_ops_differing(tmp_path: Path) -> None:
    text = WORK.replace("LOCKER", '{ op = "lock", mr = "A" }, { op = "unlock", mr = "A" }')
    with pytest.raises(ScenarioFileError, match="no 'queue_work' op queues work 'lockr'"):
        read_scenario(
            _file(
                tmp_path,
                "a.toml",
                text.replace('flush_work", work = "locker', 'flush_work", work = "lockr'),
            )
        )
    differing = text.replace(
        'pages = 4 }] },\n    { op = "cancel', 'pages = 2 }] },\n    { op = "cancel', 1
    )
    with pytest.raises(ScenarioFileError, match="queued with other ops"):
        read_scenario(_file(tmp_path, "b.toml", differing))


def test_the_readme_scenario_file_snippet_finds_its_bug(tmp_path: Path) -> None:
    """The ```toml snippet of README's "## Scenario files" section, as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Scenario files") :]
    snippet = section[
        section.index("```toml\n") + len("```toml\n") : section.index(
            "\n```\n", section.index("```toml")
        )
    ]
    path = _file(tmp_path, "teardown.toml", snippet)
    result = explore(str(path), protocol="odp2014", schedules=500, shrink=False)
    assert result.failure is not None
    assert result.failure.violation.kind == "use-after-free"


def test_a_fault_through_a_subscriber_without_one_is_a_one_line_error(tmp_path: Path) -> None:
    text = (
        KVM_TEARDOWN.replace("VARIANT", "unregister")
        .replace('kind = "kvm"', 'kind = "odp_async.subscribers:Subscriber"')
        .replace(
            '{ op = "unsubscribe", sub = "kvm" }', '{ op = "sub_fault", sub = "kvm", address = 0 }'
        )
    )
    with pytest.raises(ScenarioFileError) as info:
        read_scenario(_file(tmp_path, "nofault.toml", text))
    assert info.value.key == "actor[1].ops[0].op"
    assert "has no fault() method" in str(info.value)
    assert "\n" not in str(info.value)
    not_a_class = text.replace("odp_async.subscribers:Subscriber", "odp_async.mm:HPAGE_PAGES")
    with pytest.raises(ScenarioFileError, match="which is not a class with"):
        read_scenario(_file(tmp_path, "notclass.toml", not_a_class))
