"""Apply `tools/dpor_model_claims.py` output to the pins and the README's DPOR table.

    python tools/apply_dpor_model_claims.py OUT [OUT ...]

Each OUT is what ``dpor_model_claims.py`` printed (Markdown rows ``| cell | claim | s |``).
For every cell in them whose claim is final (``complete: ...`` or ``violation at ...``) it
rewrites that cell's pin in ``tests/explore/test_dpor_model_claims.py`` (`CHEAP` or `FULL`;
a cell without one, say one that completes for the first time, gets one at `FULL`'s end)
and its row of the README table (claim and seconds), and prints each claim that changed.
A row cut by the clock (``not complete``) is reported and left alone.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "tests" / "explore" / "test_dpor_model_claims.py"
README = ROOT / "README.md"
_ROW = re.compile(r"^\| ([a-z0-9-]+/[a-z0-9-]+) \| ([^|]+?) \| (\d+) \|$", re.M)


def main(outs: list[str]) -> int:
    measured: dict[str, tuple[str, str]] = {}
    for out in outs:
        for cell, claim, secs in _ROW.findall(Path(out).read_text()):
            measured[cell] = (claim, secs)
    pins = PINS.read_text()
    readme = README.read_text()
    head, table = readme.split("### DPOR over the ODP model", 1)
    for cell, (claim, secs) in sorted(measured.items()):
        if not claim.startswith(("complete:", "violation at")):
            print(f"{cell}: {claim} (cut short: not applied)")
            continue
        pin = re.compile(rf'^(\s+"{re.escape(cell)}": )"([^"]*)",$', re.M)
        found = pin.search(pins)
        if found is None:
            # A cell that completes for the first time: pinned in `FULL`, at its end.
            end = pins.index("\n}\n", pins.index("\nFULL = {"))
            pins = pins[:end] + f'\n    "{cell}": "{claim}",' + pins[end:]
            print(f"{cell}: newly pinned: {claim}")
        else:
            if found[2] != claim:
                print(f"{cell}: {found[2]} -> {claim}")
            pins = pins[: found.start()] + f'{found[1]}"{claim}",' + pins[found.end() :]
        row = re.compile(rf"^\| {re.escape(cell)} \| [^|]+ \| \d+ \|$", re.M)
        if row.search(table) is None:
            print(f"{cell}: no README row", file=sys.stderr)
        table = row.sub(f"| {cell} | {claim} | {secs} |", table, count=1)
    PINS.write_text(pins)
    README.write_text(head + "### DPOR over the ODP model" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
