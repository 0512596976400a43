"""``explore(load_scenario(path), ...)``: the failure has no token, and the reason says
to pass the path instead, which gets one (new-user trial 10, defect 5).  The scenario
file is written to tmp_path."""

from __future__ import annotations

from pathlib import Path

from odp_async.explore import explore
from odp_async.scenarios.files import load_scenario

FILE = """
[scenario]
name = "user-teardown"
protocols = ["odp2014"]

[setup]
ops = [
    { op = "mm_option", option = "notifier_teardown", value = "no-release" },
    { op = "mmap", start = 0x0, pages = 4 },
    { op = "subscribe", sub = "kvm", kind = "kvm" },
]

[[actor]]
name = "madvise"
ops = [{ op = "madvise", start = 0x0, pages = 4 }]

[[actor]]
name = "driver"
ops = [
    { op = "queue_work", work = "teardown", ops = [{ op = "unsubscribe", sub = "kvm" }] },
    { op = "flush_work", work = "teardown" },
]
"""


def test_a_loaded_scenario_says_pass_the_path_and_the_path_gets_a_token(
    tmp_path: Path,
) -> None:
    path = tmp_path / "user_teardown.toml"
    path.write_text(FILE)
    loaded = explore(load_scenario(path), protocol="odp2014", schedules=300, seed=0)
    assert loaded.failure is not None
    assert loaded.failure.token is None
    why = loaded.failure.no_token
    assert why is not None
    assert "pass the file's path instead" in why, why
    assert "module-level variable" not in why
    by_path = explore(str(path), protocol="odp2014", schedules=300, seed=0)
    assert by_path.failure is not None
    assert by_path.failure.token is not None
