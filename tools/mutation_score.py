"""Print the mutation score per module from mutmut 3's results (``mutants/**/*.py.meta``).

Usage: ``python tools/mutation_score.py [MODULE_PREFIX ...]`` after ``tools/mutation.sh``;
``python tools/mutation_score.py --list STATUS [MODULE_PREFIX ...]`` prints the names of
the mutants in that status instead ("not checked", "survived", ...), one a line, for
``mutmut run NAME ...`` (``tools/mutation.sh`` with ``ONLY=...``).
``--results FILE`` (first) reads the results saved in the repository
(``tools/mutation-results.json``, written by ``tools/mutation_results.py save``) instead of
``mutants/``: the README's figures are checked from that file alone.
A mutant counts as killed when a test failed (exit 1 or 3); "timeout" ones made the
tests run past mutmut's time limit (counted apart, not as killed); "survived" are mutants
every selected test passed; "no tests" are mutants no selected test runs; "not checked"
were not run (yet).  The score is killed / checked.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from mutation_results import ResultsError, exit_codes, load

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests"}
TIMEOUT = {36, 24, -24, 152, 255}
STATUSES = ("killed", "survived", "no tests", "timeout", "other", "not checked")


def _from_mutants() -> Iterator[tuple[str, int | None]]:
    for meta in sorted(Path("mutants").glob("odp_async/**/*.py.meta")):
        yield from json.loads(meta.read_text())["exit_code_by_key"].items()


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    listed: str | None = None
    codes: Iterator[tuple[str, int | None]] = _from_mutants()
    if argv[:1] != ["--results"] and not Path("mutants").is_dir():
        print(
            "mutation_score.py: no mutants/ here: run tools/mutation.sh first, or read the "
            "saved results with --results tools/mutation-results.json",
            file=sys.stderr,
        )
        return 2
    if argv[:1] == ["--results"]:
        if len(argv) < 2:
            print("mutation_score.py: --results needs a file", file=sys.stderr)
            return 2
        try:
            codes = exit_codes(load(Path(argv[1])))
        except ResultsError as e:
            print(f"mutation_score.py: {e}", file=sys.stderr)
            return 2
        argv = argv[2:]
    if argv[:1] == ["--list"]:
        if len(argv) < 2 or argv[1] not in STATUSES:
            print(f"mutation_score.py: --list needs one of {', '.join(STATUSES)}", file=sys.stderr)
            return 2
        listed, argv = argv[1], argv[2:]
    unknown = next((a for a in argv if a.startswith("-")), None)
    if unknown is not None:
        print(f"mutation_score.py: unknown option {unknown!r} (see --help)", file=sys.stderr)
        return 2
    prefixes = argv or ["odp_async.odp", "odp_async.check", "odp_async.sync", "odp_async.mm"]
    counts: dict[str, Counter[str]] = {p: Counter() for p in prefixes}
    for name, code in codes:
        module = name.split(".x", 1)[0]
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                if code is None:
                    status = "not checked"
                elif code in TIMEOUT:
                    status = "timeout"
                else:
                    status = STATUS.get(code, "other")
                counts[p][status] += 1
                if status == listed:
                    print(name)
    if listed is not None:
        return 0
    if argv and not any(counts.values()):  # a typo, not a table of zeros
        named = ", ".join(map(repr, argv))
        print(f"mutation_score.py: no mutant of module {named}", file=sys.stderr)
        return 2
    print("| module | killed | survived | no tests | timeout | other | not checked | score |")
    print("|---|---|---|---|---|---|---|---|")
    for p, c in counts.items():
        total = sum(c.values())
        checked = total - c["not checked"]
        score = f"{100 * c['killed'] / checked:.1f}%" if checked else "-"
        print(
            f"| {p} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['timeout']} "
            f"| {c['other']} | {c['not checked']} | {score} of {checked} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
