"""``odp-async show FILE`` keeps its columns when names are long.

New-user report: a scenario file naming a protocol longer than 13 characters
(``svmseq:SvmSeqNoRecheck``) pushed that row's verdict out of the column, and an actor of
ten or more ops shifted the ops from ``10.`` on.  The verdict column now starts past the
longest protocol name and the op numbers are right-aligned.

A user's protocol module and scenario file in tmp_path, ``show`` in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests._usermod import pythonpath_env

PROTOCOLS = """
from odp_async.odp.protocols.odp2014 import Odp2014


class Odp2014WithAVeryLongName(Odp2014):
    name = "odp2014-with-a-very-long-name"
"""

SCENARIO = """
[scenario]
name = "long-names"
summary = "long protocol names and an actor of many ops"
protocols = ["naive", "showcols:Odp2014WithAVeryLongName"]

[setup]
ops = [{{ op = "mmap", start = 0x0, pages = 16 }}]

[[actor]]
name = "a-rather-long-actor-name"
ops = [{ops}]

[expected]
naive = "found"
"showcols:Odp2014WithAVeryLongName" = "clean"
"""


def test_show_aligns_long_protocol_names_and_many_ops(tmp_path: Path) -> None:
    (tmp_path / "showcols.py").write_text(PROTOCOLS)
    ops = ", ".join(
        f'{{ op = "populate", start = {hex(page * 0x1000)}, pages = 1 }}' for page in range(12)
    )
    (tmp_path / "long.toml").write_text(SCENARIO.format(ops=ops))
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "show", "long.toml"],
        capture_output=True,
        text=True,
        env=pythonpath_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    verdicts = lines[lines.index("expected verdicts:") + 1 :]
    assert [line.split() for line in verdicts] == [
        ["naive", "found"],
        ["showcols:Odp2014WithAVeryLongName", "clean"],
    ]
    assert len({line.rindex(" ") for line in verdicts}) == 1, verdicts  # one column
    assert verdicts[1].startswith("  showcols:Odp2014WithAVeryLongName  clean")

    numbered = [line for line in lines if line.startswith("    ") and "populate" in line]
    assert len(numbered) == 12
    assert numbered[0].startswith("     0. populate")
    assert numbered[11].startswith("    11. populate")
    assert len({line.index("populate") for line in numbered}) == 1, numbered
