"""The quick tour's sample `explore` output is today's output: every line of the README
block but the time and the elided middle of the token, as `odp-async explore
registration-race -p odp2014 --chooser pct` prints it (new-user trial, item 4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from odp_async.cli import ExitCode, main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
_TIME = re.compile(r"\d+\.\d+s\)$")


def _tour_block() -> list[str]:
    after = README.split("describes the shrunk run:\n\n```\n", 1)[1]
    return after.split("```", 1)[0].splitlines()


def test_the_tour_sample_is_what_explore_prints(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explore", "registration-race", "-p", "odp2014", "--chooser", "pct"])
    out = capsys.readouterr().out.splitlines()
    assert code == ExitCode.VIOLATION
    shown = _tour_block()
    assert len(shown) == len(out), "\n".join(out)
    for readme_line, real in zip(shown, out, strict=True):
        if "..." in readme_line and readme_line.startswith("replay: "):
            head, tail = readme_line.split("...")
            assert real.startswith(head), real
            assert real.endswith(tail), real
        else:
            assert _TIME.sub("s)", readme_line) == _TIME.sub("s)", real)
