"""Text width (terminal or --width), folded setup, one way to name a place; the replay
command's picture and report options."""

from __future__ import annotations

import runpy
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from odp_async.cli import main
from odp_async.explore.target import Execution, Target
from odp_async.explore.tokens import encode_token
from odp_async.report import Timeline, render_text
from odp_async.sim import RandomChooser


def _table_width(text: str) -> int:
    table = text.split("\n\n", 1)[1]
    return max(len(line) for line in table.splitlines() if not line.startswith(">> "))


def test_the_width_follows_the_terminal(race: Timeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    narrow = render_text(race)
    monkeypatch.setenv("COLUMNS", "220")
    wide = render_text(race)
    assert _table_width(narrow) <= 100 < _table_width(wide) <= 220
    assert render_text(race, width=220) == wide


def test_the_setup_is_one_row_and_places_are_addresses(race: Timeline) -> None:
    text = render_text(race, width=200)
    assert "9-23" in text
    assert "(x15)" in text
    assert "dma(B, 0x14000)" in text
    assert "dma(B, 20)" not in text
    assert text.splitlines()[0].startswith(
        "timeline registration-race/odp2014: stale-translation, stale-dma"
    )


@pytest.fixture(scope="module")
def race_token(race_execution: Execution) -> str:
    target = Target.resolve("registration-race", "odp2014")
    return encode_token(target, race_execution.sim.schedule, race_execution, 20_000)


def test_replay_writes_svg_by_option_or_extension(
    race_token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = tmp_path / "a.svg", tmp_path / "b.svg", tmp_path / "c.png"
    code = main(["replay", race_token, "--svg", str(a), "--png", str(b), "--width", "900"])
    assert code == 1  # the violation
    assert main(["replay", race_token, "--png", str(c)]) == 1
    for path in (a, b):
        root = ET.parse(path).getroot()
        assert root.get("width") == "900"
    assert c.read_bytes()[:4] == b"\x89PNG"
    err = capsys.readouterr().err
    assert f"wrote {a}" in err
    assert f"wrote {b}" in err


def test_replay_writes_the_html_report(race_token: str, tmp_path: Path) -> None:
    path = tmp_path / "race.html"
    assert main(["replay", race_token, "--html", str(path)]) == 1
    page = path.read_text()
    assert "stale-translation, stale-dma" in page
    assert '"regions"' in page


def test_replay_text_width(race_token: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", race_token, "--text", "--width", "90"]) == 1
    out = capsys.readouterr().out
    timeline = out.rstrip("\n").rsplit("\n", 1)[0]  # the last line is the verdict
    assert _table_width(timeline) <= 90
    assert main(["replay", race_token, "--text", "--width", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--width" in err


def test_a_general_program_from_a_user_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_prog.py").write_text(
        "from odp_async import Mutex\n"
        "import odp_async\n"
        "async def program():\n"
        "    lock = Mutex('accounts')\n"
        "    async def worker():\n"
        "        async with lock:\n"
        "            await odp_async.checkpoint('update')\n"
        "    async with odp_async.task_group() as tg:\n"
        "        tg.start_soon(worker, name='w1')\n"
        "        tg.start_soon(worker, name='w2')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_prog  # type: ignore[import-not-found]

    from odp_async.report import write_html
    from odp_async.scenarios import Scenario

    scenario = Scenario("my-prog", "two workers", my_prog.program, ("w1", "w2"), needs_world=False)
    target = Target.resolve(scenario)
    ex = target.run(RandomChooser(3), max_steps=1000, trace=True)
    write_html(ex, tmp_path / "p.html", target=target)
    page = (tmp_path / "p.html").read_text()
    assert "accounts" in page
    assert "clean" in page


def test_the_readme_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("```python\nfrom odp_async.explore.target import Target\n", 1)[1]
    code = "from odp_async.explore.target import Target\n" + block.split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snippet.py").write_text(code)
    runpy.run_path(str(tmp_path / "snippet.py"))
    assert "stale-translation" in (tmp_path / "race.html").read_text()


def test_replay_text_and_picture_widths_are_separate(
    race_token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--text --width 120 --svg F``: 120 columns of text and a default-width picture;
    ``--picture-width`` sets the pixels (new-user trial 10, defect 6)."""
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    assert main(["replay", race_token, "--text", "--width", "120", "--svg", str(a)]) == 1
    out = capsys.readouterr().out
    assert _table_width(out.rstrip("\n").rsplit("\n", 1)[0]) <= 120
    assert ET.parse(a).getroot().get("width") == "1400"
    argv = ["replay", race_token, "--text", "--width", "100", "--svg", str(b)]
    assert main([*argv, "--picture-width", "700"]) == 1
    assert ET.parse(b).getroot().get("width") == "700"
    capsys.readouterr()
    assert main(["replay", race_token, "--svg", str(b), "--picture-width", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--picture-width" in err
