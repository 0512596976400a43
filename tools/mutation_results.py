"""Keep mutmut's per-mutant results in the repository (``tools/mutation-results.json``).

mutmut 3 keeps its results only in ``mutants/`` (gitignored): per source file, a
``mutants/PATH.meta`` JSON with ``exit_code_by_key`` (mutant name -> exit code, None when
not run yet) and ``hash_by_function_name`` (function -> hash of its code).  When mutmut
regenerates a file's mutants it keeps a function's results only if the function's hash is
the one in the ``.meta`` file, and resets the others.

Usage (``tools/mutation.sh`` runs both):

- ``python tools/mutation_results.py save [FILE]``: every ``mutants/**/*.py.meta`` ->
  FILE (default ``tools/mutation-results.json``): per file, per function, its hash and
  the exit codes of its mutants ``__mutmut_1`` .. ``__mutmut_N`` in order (null: not
  run).  Sorted, one function a line.
- ``python tools/mutation_results.py restore [FILE]``: FILE -> ``mutants/``.  A
  function's results are restored only if its code still has the saved hash (computed by
  mutmut's own ``compute_function_hashes``, so mutmut agrees); a function whose code
  changed, or that is gone, gets no results, and mutmut, finding no hash for it, resets
  it and runs its mutants again.  A ``.meta`` already in ``mutants/`` is kept, its
  unchecked mutants filled from FILE where the hashes match, and its results of functions
  changed since dropped, so ``mutation_score.py --list "not checked"`` is right before
  mutmut runs.

``save`` may run while mutmut runs (it only reads ``mutants/``); ``restore`` must not.

Errors (a missing or malformed FILE, a ``.meta`` that is not mutmut's) are one line on
stderr, exit 2.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT = Path("tools/mutation-results.json")
MUTANTS = Path("mutants")
FORMAT = "odp_async mutation results 1"

#: file -> function -> (hash, exit codes of mutants 1..N)
Results = dict[str, dict[str, tuple[str, list[int | None]]]]


class ResultsError(Exception):
    """A results file or a ``.meta`` file that cannot be read (one line)."""


def _split(key: str) -> tuple[str, int]:
    """``odp_async.check.xǁCǁf__mutmut_3`` -> (``xǁCǁf``, 3)."""
    head, sep, number = key.rpartition("__mutmut_")
    if not sep or not number.isdigit():
        raise ResultsError(f"not a mutmut mutant name: {key!r}")
    return head.rpartition(".")[2], int(number)


def _module(path: str) -> str:
    """``odp_async/odp/ucontext.py`` -> ``odp_async.odp.ucontext``."""
    parts = Path(path).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _metas(root: Path) -> Iterator[tuple[str, Path]]:
    for meta in sorted((root / MUTANTS).glob("**/*.py.meta")):
        yield meta.relative_to(root / MUTANTS).as_posix()[: -len(".meta")], meta


def _read_meta(meta: Path) -> dict[str, Any]:
    # mutmut rewrites a .meta after each mutant: a save during a run may catch one half
    # written, so a read is tried again a few times.
    for attempt in range(5):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            break
        except (OSError, ValueError) as e:
            if attempt == 4:
                raise ResultsError(f"cannot read {meta}: {e}") from None
            time.sleep(0.5)
    if not isinstance(data, dict) or not isinstance(data.get("exit_code_by_key"), dict):
        raise ResultsError(f"{meta} is not a mutmut .meta file (no exit_code_by_key)")
    return data


def from_metas(root: Path) -> Results:
    """The results of every ``.meta`` under ``root/mutants``."""
    results: Results = {}
    for path, meta in _metas(root):
        data = _read_meta(meta)
        hashes = data.get("hash_by_function_name", {})
        codes: dict[str, dict[int, int | None]] = {}
        for key, code in data["exit_code_by_key"].items():
            function, number = _split(key)
            codes.setdefault(function, {})[number] = code
        functions: dict[str, tuple[str, list[int | None]]] = {}
        for function, by_number in codes.items():
            if sorted(by_number) != list(range(1, len(by_number) + 1)):
                raise ResultsError(f"{meta}: the mutants of {function} are not numbered 1..N")
            if function not in hashes:
                raise ResultsError(f"{meta}: no hash for {function}")
            functions[function] = (hashes[function], [by_number[n] for n in sorted(by_number)])
        if functions:
            results[path] = functions
    return results


def dumps(results: Results) -> str:
    """Deterministic, compact, one function a line (small diffs)."""
    lines = ["{", f'"format": {json.dumps(FORMAT)},', '"files": {']
    files = sorted(results)
    for i, path in enumerate(files):
        lines.append(f"{json.dumps(path)}: {{")
        functions = sorted(results[path])
        for j, function in enumerate(functions):
            hash_, codes = results[path][function]
            entry = json.dumps([hash_, codes], separators=(",", ":"))
            comma = "," if j < len(functions) - 1 else ""
            lines.append(f"{json.dumps(function, ensure_ascii=False)}: {entry}{comma}")
        lines.append("}" + ("," if i < len(files) - 1 else ""))
    lines += ["}", "}", ""]
    return "\n".join(lines)


def load(file: Path) -> Results:
    """The results saved in ``file``."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ResultsError(f"cannot read {file}: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ResultsError(f"{file} is not a mutation results file ({FORMAT!r})")
    results: Results = {}
    for path, functions in data["files"].items():
        results[path] = {}
        for function, entry in functions.items():
            ok = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
            if not ok or not isinstance(entry[1], list):
                raise ResultsError(f"{file}: bad entry for {path} {function}")
            results[path][function] = (entry[0], entry[1])
    return results


def exit_codes(results: Results) -> Iterator[tuple[str, int | None]]:
    """(mutant name, exit code) for every mutant of ``results``, in mutmut's names."""
    for path, functions in results.items():
        module = _module(path)
        for function, (_, codes) in functions.items():
            for number, code in enumerate(codes, start=1):
                yield f"{module}.{function}__mutmut_{number}", code


def _current_hashes(root: Path, path: str) -> dict[str, str]:
    # mutmut's own hash (the one it compares to reset a changed function); only the
    # mutation extra installs mutmut, and only restoring needs it.
    from mutmut.mutation.file_mutation import compute_function_hashes

    try:
        source = (root / path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return compute_function_hashes(source)


def restore(root: Path, results: Results) -> tuple[int, int]:
    """Write ``results`` into ``root/mutants``; returns (results restored, results dropped
    because their function changed or is gone)."""
    restored = dropped = 0
    for path in sorted(set(results) | {p for p, _ in _metas(root)}):
        current = _current_hashes(root, path)
        saved = results.get(path, {})
        meta = root / MUTANTS / (path + ".meta")
        if meta.exists():
            data = _read_meta(meta)
        else:
            data = {
                "exit_code_by_key": {},
                "hash_by_function_name": {},
                "type_check_error_by_key": {},
                "durations_by_key": {},
                "estimated_durations_by_key": {},
            }
        hashes: dict[str, str] = data.setdefault("hash_by_function_name", {})
        codes: dict[str, int | None] = data["exit_code_by_key"]
        module = _module(path)
        # What mutants/ already holds of a function changed since is stale.
        for function, hash_ in list(hashes.items()):
            if current.get(function) != hash_:
                del hashes[function]
                for key in codes:
                    if _split(key)[0] == function and codes[key] is not None:
                        codes[key] = None
                        dropped += 1
        for function, (hash_, saved_codes) in saved.items():
            if current.get(function) != hash_:
                dropped += sum(code is not None for code in saved_codes)
                continue
            if hashes.get(function, hash_) != hash_:
                continue
            hashes[function] = hash_
            for number, code in enumerate(saved_codes, start=1):
                key = f"{module}.{function}__mutmut_{number}"
                if codes.get(key) is None:
                    codes[key] = code
                    restored += code is not None
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(data, indent=4, ensure_ascii=False), encoding="utf-8")
    return restored, dropped


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("save", "restore") or len(argv) > 2:
        print("usage: mutation_results.py save|restore [FILE]", file=sys.stderr)
        return 2
    file = Path(argv[1]) if len(argv) > 1 else DEFAULT
    root = Path.cwd()
    try:
        if argv[0] == "save":
            results = from_metas(root)
            if not results:
                print(
                    "mutation_results.py: no mutants/**/*.py.meta: nothing saved", file=sys.stderr
                )
                return 0
            text = dumps(results)
            old = file.read_text(encoding="utf-8") if file.exists() else None
            file.write_text(text, encoding="utf-8")
            checked = sum(code is not None for _, code in exit_codes(results))
            total = sum(1 for _ in exit_codes(results))
            note = " (unchanged)" if old == text else ""
            print(
                f"mutation_results.py: saved {checked} results of {total} mutants to {file}{note}"
            )
        else:
            if not file.exists():
                print(f"mutation_results.py: no {file}: nothing restored", file=sys.stderr)
                return 0
            restored, dropped = restore(root, load(file))
            print(
                f"mutation_results.py: restored {restored} results from {file}; dropped "
                f"{dropped} of functions changed since"
            )
    except ResultsError as e:
        print(f"mutation_results.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
