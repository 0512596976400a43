"""What the README and the explore docstring say about an uncaught `ExploreInterrupted`
(exit status 1, not 130) and the idiom that exits 130, checked in fresh processes; and
the README's pointer to the ``nonblock_failure_rule`` explanation (new-user trial 10,
defect 8).  The scripts are written to tmp_path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import odp_async.explore.runner
from tests._usermod import pythonpath_env

README = Path(__file__).resolve().parents[2] / "README.md"

SCRIPT = """
import os
import signal
import sys

from odp_async import checkpoint
from odp_async.errors import ExploreInterrupted
from odp_async.explore import explore


async def stopped():
    await checkpoint("about to stop")
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, while the explored code runs
    await checkpoint("stopped")


def main():
    explore(stopped, schedules=10)


if "--idiom" in sys.argv:
    try:
        main()
    except ExploreInterrupted as e:
        print(e.result.interrupted)
        sys.exit(130)
else:
    main()
"""


def test_uncaught_exits_1_and_the_documented_idiom_exits_130(tmp_path: Path) -> None:
    script = tmp_path / "s9_interrupted.py"
    script.write_text(SCRIPT)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *argv],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=pythonpath_env(tmp_path),
        )

    uncaught = run()
    assert uncaught.returncode == 1, uncaught.stderr
    assert "ExploreInterrupted" in uncaught.stderr
    caught = run("--idiom")
    assert caught.returncode == 130, caught.stderr
    assert caught.stdout.strip() == "True"
    readme = " ".join(README.read_text().split())
    idiom = "except ExploreInterrupted as e: print(e.result); sys.exit(130)"
    assert idiom in readme
    assert "exits with status 1, not 130" in readme
    doc = " ".join((odp_async.explore.runner.__doc__ or "").split())
    assert "exit status 1, not 130" in doc


def test_the_readme_points_below_to_the_nonblock_rule() -> None:
    text = README.read_text()
    pointer = text.index(
        '`nonblock_failure_rule` (`"today"` / `"2018"`, see **A subscriber** below)'
    )
    assert text.index("**A subscriber.**") > pointer
    assert text.index('nonblock_failure_rule = "2018"', pointer) > text.index("**A subscriber.**")
