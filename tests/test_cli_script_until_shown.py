"""A scenario file's ``[script]`` ``until`` text matches a checkpoint label as every step
list, timeline and the README show it (``fault(B, 0x4000, commit)``), not only as its
Python ``str`` (``"('fault', 'B', 16384, 'commit')"``); a step no label holds lists the
labels in the shown form, to copy (trial: the shown form matched nothing).  The file is
a user's, written to tmp_path; the CLI runs in a fresh process."""

from __future__ import annotations

from pathlib import Path

import pytest

from odp_async._runtime.choosers import ScriptChooser
from odp_async.cli import ExitCode
from odp_async.sim import run
from tests.test_cli_script import cli, write

#: The label the fault pauses at before it commits, as shown and as ``str``.
_SHOWN = "fault(B, 0x4000, commit)"
_STR = "('fault', 'B', 16384, 'commit')"


@pytest.mark.parametrize("until", [_SHOWN, _STR, "0x4000, commit"])
def test_an_until_in_either_form_is_followed(tmp_path: Path, until: str) -> None:
    path = write(tmp_path, until=until)
    done = cli(tmp_path, "explore", path, "-p", "naive", "--chooser", "script")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert done.stdout.startswith(
        "my-fault-vs-munmap/naive: found under the script, as expected ("
    ), done.stdout


def test_an_until_no_label_holds_lists_the_labels_as_shown(tmp_path: Path) -> None:
    path = write(tmp_path, until="fault(B, 0x4000, comit)")
    done = cli(tmp_path, "explore", path, "-p", "naive", "--chooser", "script")
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    (error,) = done.stderr.splitlines()
    assert (
        "(it was paused at: 'fault(B, 0x4000)', \"RWLock 'mmap_sem'\", "
        "'fault(B, 0x4000, commit)', \"Mutex 'B.umem_mutex'\", 'fault(B, 0x4000, update)')"
    ) in error
    assert _STR not in error


async def _dma_page() -> None:
    from odp_async import checkpoint

    await checkpoint(("dma", "B", 20))
    await checkpoint("done")


def test_a_page_number_matches_as_its_address_too() -> None:
    """The timeline shows ``('dma', 'B', 20)`` as ``dma(B, 0x14000)``, the step list as
    ``dma(B, 20)``: either is followed."""
    for until in ("dma(B, 0x14000)", "dma(B, 20)"):
        chooser = ScriptChooser([("main", until), ("main", "done")])
        run(_dma_page, chooser=chooser)
        assert chooser.finish() is None, until
