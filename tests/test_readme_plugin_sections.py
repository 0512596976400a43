"""The README's snippets about Condition, the pytest plugin and packaging, run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from odp_async.cli import main

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _blocks(section: str, language: str) -> list[str]:
    """The fenced blocks of `language` ("" for a bare fence), in order."""
    blocks: list[str] = []
    fence: str | None = None  # the language of the open block
    lines: list[str] = []
    for line in section.splitlines(keepends=True):
        if not line.startswith("```"):
            lines.append(line)
        elif fence is None:
            fence, lines = line[3:].strip(), []
        else:
            if fence == language:
                blocks.append("".join(lines))
            fence = None
    return blocks


def _commands(block: str) -> list[list[str]]:
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_the_condition_snippet_runs() -> None:
    (code,) = [b for b in _blocks(_section("The primitives"), "python") if "Condition" in b]
    exec(compile(code, "README.md", "exec"), {})


def test_the_plugin_snippets_run(pytester: pytest.Pytester) -> None:
    section = _section("Explored tests in pytest (the plugin)")
    test_module, conftest = _blocks(section, "python")
    (commands,) = _blocks(section, "sh")
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_counter=test_module)
    for command in _commands(commands):
        assert command[0] == "pytest"
        result = pytester.runpytest(*command[1:])
        assert result.ret == pytest.ExitCode.OK, command
        result.assert_outcomes(passed=1)
    # the profile the conftest snippet registers is known (collect only: it is long)
    result = pytester.runpytest("--odp-profile=soak", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    # the replay line has the shape the failure message prints
    (example,) = [b for b in _blocks(section, "") if "--odp-replay=" in b]
    assert re.fullmatch(r"pytest '[^']+::[^']+' --odp-replay=odp2\.\S+\n", example)


def test_the_packaging_snippets_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (commands,) = _blocks(_section("Packaging"), "sh")
    for command in _commands(commands):
        assert command[0] == "odp-async"
        assert main(command[1:]) == 0, command
    out = capsys.readouterr().out
    assert "registration-race.toml" in out
    assert (tmp_path / "my-scenarios" / "registration-race.toml").is_file()
