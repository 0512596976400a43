"""Fuzz the command line with hostile input: scenario files, replay tokens and argument
lists (issue 15, part 2).  Whatever comes in, `main(argv)` answers with an exit code
the command promises, never 3 (internal), never a traceback, and a usage error is one
line on stderr.  Every generated case is bounded (a few schedules, a small step bound)
so each runs in milliseconds; Hypothesis runs derandomized (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from odp_async.cli import main
from odp_async.explore import explore

from ._support import check_outcome, reencode, token_parts, toml_document, with_header

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))


def fuzz(examples: int) -> settings:
    """The profile's settings (derandomized) with `examples` cases; capsys is reset by
    each case's own `readouterr`."""
    return settings(
        max_examples=examples,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


pytestmark = pytest.mark.timeout(120)

# --- hostile values -------------------------------------------------------------------------

#: Stand-ins replaced, after serializing, by text no serializer writes (deep nesting).
DEEP_ARRAYS, DEEP_TABLES = "@@DEEP-ARRAYS@@", "@@DEEP-TABLES@@"

hostile_ints = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**47, 2**63, 2**64, 10**20, (1 << 20) + 1, 10**400]),
    st.integers(-(2**70), 2**70),
)
hostile_floats = st.one_of(
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e300, -0.0, 0.5]),
    st.floats(allow_nan=True, allow_infinity=True),
)
hostile_text = st.one_of(
    st.sampled_from(["", "\x00", "a\nb", "\x1b[2J", "naive", "found", "x" * 300, "dontneed"]),
    st.text(max_size=12),
)
scalars = st.one_of(st.booleans(), hostile_ints, hostile_floats, hostile_text)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
) | st.sampled_from([DEEP_ARRAYS, DEEP_TABLES])


def deepen(text: str, depth: int) -> str:
    return text.replace(json.dumps(DEEP_ARRAYS), "[" * depth + "]" * depth).replace(
        json.dumps(DEEP_TABLES), "{a = " * depth + "1" + "}" * depth
    )


# --- scenario files ---------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of a parsed TOML document (tables and arrays)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _mutate(doc: Any, path: tuple[Any, ...], how: str, new: Any) -> Any:
    if not path:
        return new if how == "replace" else doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "replace":
        parent[last] = new
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = new
    elif how == "add" and isinstance(parent, list):
        parent.append(new)
    return doc


@st.composite
def scenario_texts(draw: st.DrawFn) -> str:
    """A scenario file: an example with a structured mutation (a value replaced by a
    hostile one, a key deleted or added), an example's text cut or spliced, or random
    TOML or text."""
    kind = draw(st.sampled_from(["structured"] * 5 + ["textual", "random-doc", "random-text"]))
    if kind == "random-text":
        return draw(st.text(max_size=200))
    if kind == "random-doc":
        doc = draw(st.dictionaries(st.sampled_from(["scenario", "setup", "actor", "x"]), values))
        return deepen(toml_document(doc), draw(st.sampled_from([20, 400, 1000, 3000])))
    example = draw(st.sampled_from(EXAMPLE_FILES))
    text = example.read_text()
    if kind == "textual":
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 40))
        insert = draw(st.sampled_from(["", "[", "]", "{", "}", "=", '"', "\x00", "\n[[actor]]\n"]))
        return text[:at] + insert + text[at + cut :]
    doc = tomllib.loads(text)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        doc = _mutate(doc, path, how, draw(values))
        if not isinstance(doc, dict):
            return deepen(toml_document({"x": doc}), 50)
    return deepen(toml_document(doc), draw(st.sampled_from([20, 400, 1000, 3000])))


@fuzz(700)
@given(text=scenario_texts(), command=st.integers(0, 9))
def test_scenario_files(
    text: str, command: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fuzzed.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    if command < 6:
        argv, allowed = ["show", str(path)], {0, 2}
    elif command < 8:
        argv, allowed = ["show", str(path), "--json"], {0, 2}
    else:
        argv = ["explore", str(path), "-p", "naive", "--schedules", "2"]
        argv += ["--max-steps", "3000", "--no-shrink"]
        allowed = {0, 1, 2}
    code = main(argv)
    _, err = capsys.readouterr()
    event(f"exit {code}")
    check_outcome(code, err, allowed)


# --- tokens -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens() -> list[str]:
    """Valid tokens to mutate: a built-in scenario, a general program, a scenario file."""
    found = []
    for scenario, protocol in (
        ("registration-race", "naive"),
        ("classic:lost-update", None),
        (str(EXAMPLES / "registration-race.toml"), "naive"),
    ):
        result = explore(scenario, protocol, schedules=200)
        assert result.failure is not None
        found.append(result.failure.shrunk_token or result.failure.token)
    return found


FIELDS = ("s", "p", "o", "m", "k", "t", "v", "a", "i", "f", "g", "zz")
RAW_JSON = ["1e400", "-1e400", "NaN", "Infinity", "1" * 5000, "[" * 5000 + "]" * 5000]


@st.composite
def token_inputs(draw: st.DrawFn, tokens: list[str]) -> str:
    """A token: a valid one with a mutated header (re-encoded with a valid checksum), a
    mutated schedule, or random text."""
    kind = draw(st.sampled_from(["field"] * 5 + ["raw", "drop", "schedule", "random"]))
    if kind == "random":
        junk = draw(st.text(max_size=60))
        return draw(st.sampled_from([junk, f"odp2.{junk}.0", reencode("odp2", junk, b"")]))
    token = draw(st.sampled_from(tokens))
    version, header, packed = token_parts(token)
    if kind == "schedule":
        return reencode(version, header, draw(st.binary(max_size=40)))
    field = draw(st.sampled_from(FIELDS))
    if kind == "drop":
        return with_header(token, {}, drop=(field,))
    if kind == "raw":
        fields = json.loads(header)
        fields[field] = "@@RAW@@"
        raw = json.dumps(fields).replace('"@@RAW@@"', draw(st.sampled_from(RAW_JSON)))
        return reencode(version, raw, packed)
    new = draw(values)
    if new in (DEEP_ARRAYS, DEEP_TABLES):
        new = "x"
    return with_header(token, {field: new})


@fuzz(900)
@given(data=st.data(), command=st.sampled_from(["replay"] * 6 + ["replay-json", "shrink"]))
def test_tokens(
    data: st.DataObject,
    command: str,
    tokens: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = data.draw(token_inputs(tokens))
    argv = ["replay", token, "--json"] if command == "replay-json" else [command, token]
    code = main(argv)
    _, err = capsys.readouterr()
    event(f"exit {code}")
    check_outcome(code, err, {0, 1, 2, 4})


# --- argument lists -----------------------------------------------------------------------------

numbers = st.sampled_from(
    ["0", "-1", "1", "2", "99999999999999999999", "100000", "1e3", "x", "", "nan", "1000000001"]
)
seconds = st.sampled_from(["inf", "-inf", "nan", "1e300", "1e20", "-1", "0", "0.2", "x", ""])
scenario_names = st.sampled_from(
    [
        "registration-race",
        "classic:lost-update",
        "classic:lock-order",
        "registration-racee",
        "classic:nope",
        "nope.toml",
        "mod:thing",
        ":",
        "",
        "a\nb.toml",
        str(EXAMPLES / "registration-race.toml"),
    ]
)
protocols = st.sampled_from(["naive", "odp2014", "hmm-pool", "nope", "mod:Class", ":", ""])
options = st.sampled_from(
    [
        "clamp=false",
        "clamp=maybe",
        "pool_size=0",
        "pool_size=-5",
        "pool_size=99999999999999999999",
        "nope=1",
        "=",
        "x",
        "literal_order=1",
    ]
)


@st.composite
def argument_lists(draw: st.DrawFn, tmp: str) -> list[str]:
    """A command line drawn from the real commands and options, with hostile values.
    Budgets that would make a case slow are only ever drawn small or out of range."""
    command = draw(
        st.sampled_from(
            [
                "explore",
                "explore",
                "run",
                "matrix",
                "show",
                "replay",
                "list",
                "examples",
                "bogus",
                "",
            ]
        )
    )
    argv = [command]
    if command in ("explore", "run", "show"):
        argv.append(draw(scenario_names))
    if command in ("explore", "run") and draw(st.booleans()):
        argv += ["-p", draw(protocols)]
        argv += [x for _ in range(draw(st.integers(0, 2))) for x in ("-o", draw(options))]
    small = st.sampled_from(["-1", "0", "1", "2", "1000000001", "99999999999999999999", "x"])
    if command == "explore":
        argv += [
            "--schedules",
            draw(small),
            "--max-steps",
            draw(st.sampled_from(["-1", "0", "1", "50", "3000", "1000000001", "10" * 30, "x"])),
        ]
        for flag, strategy in (
            ("--chooser", st.sampled_from(["random", "pct", "dfs", "bogus", ""])),
            ("--seed", st.sampled_from(["0", "-1", str(2**64), str(-(2**64)), "1" * 5000])),
            ("--jobs", numbers),
            ("--depth", numbers),
            ("--preemptions", st.sampled_from(["-1", "0", "1", "1001", "99999999999999999999"])),
            ("--max-preemptions", st.sampled_from(["0", "1", "2", "1001"])),
            ("--progress-every", seconds),
        ):
            if draw(st.booleans()):
                argv += [flag, draw(strategy)]
        argv += ["--no-shrink"]
    elif command == "run":
        argv += ["--timeout", draw(seconds)]
        if draw(st.booleans()):
            argv += ["--backend", draw(st.sampled_from(["trio", "asyncio", "curio", ""]))]
    elif command == "matrix":
        argv += ["--scenario", draw(st.sampled_from(["registration-race", "nope", "x.toml"]))]
        argv += ["-p", draw(st.sampled_from(["naive", "nope"]))]
        argv += ["--budget", draw(small), "--jobs", draw(numbers)]
        if draw(st.booleans()):
            argv += ["--seed", draw(st.sampled_from(["0", str(2**64), "x"]))]
    elif command == "replay":
        argv.append(draw(st.sampled_from(["odp2.x.0", "", "odp9.a.b"])))
        if draw(st.booleans()):
            argv += ["--width", draw(numbers)]
    elif command == "examples" and draw(st.booleans()):
        argv += ["--copy", draw(st.sampled_from(["/proc/no-such/dir", os.path.join(tmp, "ex")]))]
    if draw(st.booleans()):
        argv.append(draw(st.sampled_from(["--json", "--bogus", "-h", "--", "extra"])))
    return argv


@fuzz(900)
@given(data=st.data())
def test_argument_lists(
    data: st.DataObject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = data.draw(argument_lists(str(tmp_path)))
    code = main(argv)
    _, err = capsys.readouterr()
    event(f"exit {code}")
    check_outcome(code, err, {0, 1, 2})
