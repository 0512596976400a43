"""The static pictures: verdict titles, labelled bars, legend, cycle arrows, SVG, no clipping."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from odp_async.errors import InvalidArgument
from odp_async.report import Timeline, render_png, render_svg, write_picture
from odp_async.report.layout import COLOURS, layout

_SVG = "{http://www.w3.org/2000/svg}"


def _svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg.split("\n", 1)[1])
    return [t.text or "" for t in root.iter(f"{_SVG}text")]


def test_the_title_states_the_verdict(race: Timeline, lock_order: Timeline) -> None:
    assert race.verdict == "stale-translation, stale-dma"
    assert lock_order.verdict == "deadlock"
    title = _svg_texts(render_svg(race))[0]
    assert title.startswith("registration-race/odp2014: stale-translation, stale-dma")
    assert ": ok" not in title


def test_every_bar_is_labelled_and_every_key_spelled_out(race: Timeline) -> None:
    d = layout(race, 900)
    bars = [r for r in d.rects if r.role == "span"]
    labels = [t for t in d.texts if t.role == "bar"]
    assert len(bars) == len(labels) > 10
    keys = " ".join(t.text for t in d.texts if t.role == "key")
    names = {span.name for span in race.folded().spans}
    for label in labels:
        # a label is a bar's full name or a key spelled out below the legend
        assert label.text in names or f"{label.text} = " in keys, label.text
    assert "mmap_sem" in keys
    assert "B.umem_mutex" in keys


def test_the_setup_is_folded(race: Timeline) -> None:
    d = layout(race, 1400)
    names = [t.text for t in d.texts if t.role == "bar"]
    assert "mmap_sem x16" in names
    assert len([r for r in d.rects if r.role == "span"]) < len(race.spans)


def test_every_colour_and_the_hatching_are_in_the_legend(lock_order: Timeline) -> None:
    d = layout(lock_order, 800)
    fills = {r.fill for r in d.rects if r.role == "span"}
    swatches = {r.fill for r in d.rects if r.role == "swatch"}
    assert fills <= swatches
    assert any(r.hatch for r in d.rects if r.role == "span")
    assert any(r.hatch for r in d.rects if r.role == "swatch")
    legend = " ".join(t.text for t in d.texts if t.role == "legend")
    assert "hatched" in legend
    assert "waits for" in legend
    assert set(COLOURS.values()) & fills


def test_a_deadlock_draws_its_cycle(lock_order: Timeline, tmp_path: Path) -> None:
    assert [(e.waiter, e.holder) for e in lock_order.cycle] == [(1, 2), (2, 1)]
    d = layout(lock_order, 800)
    arrows = [line for line in d.lines if line.role == "cycle" and line.arrow]
    assert len(arrows) == 2
    # each arrow ends at its holder's lane
    heads = sorted(a.y2 for a in arrows)
    assert heads[0] != heads[1]
    svg = render_svg(lock_order, width_px=800)
    assert svg.count('marker-end="url(#arrowhead)"') >= 2
    assert {"a", "b"} <= set(_svg_texts(svg))


@pytest.mark.parametrize("width", [400, 800, 1400])
def test_no_text_leaves_the_frame(race: Timeline, lock_order: Timeline, width: int) -> None:
    for tl in (race, lock_order):
        d = layout(tl, width)
        for t in d.texts:
            left, right = t.extent
            assert left >= 0, (t.text, left)
            assert right <= d.width, (t.text, right, d.width)


@pytest.mark.parametrize("width", [400, 800])
def test_no_text_is_clipped_in_the_png(lock_order: Timeline, race: Timeline, width: int) -> None:
    from odp_async.report.png import draw_figure

    for tl in (lock_order, race):
        fig = draw_figure(layout(tl, width))
        renderer = fig.canvas.get_renderer()
        w, h = fig.canvas.get_width_height()
        for text in fig.axes[0].texts:
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0, text.get_text()
            assert box.x1 <= w, text.get_text()
            assert box.y0 >= 0, text.get_text()
            assert box.y1 <= h, text.get_text()


def test_svg_parses_and_the_extension_picks_the_format(race: Timeline, tmp_path: Path) -> None:
    svg_path, png_path = tmp_path / "x.svg", tmp_path / "x.png"
    write_picture(race, svg_path)
    write_picture(race, png_path)
    root = ET.parse(svg_path).getroot()
    assert root.tag == f"{_SVG}svg"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = _svg_texts(svg_path.read_text())
    assert any("stale-translation" in t for t in texts)
    assert "madvise" in texts
    assert "inv0" in texts
    # another extension is refused by name, never PNG bytes under it; fmt= overrides
    with pytest.raises(InvalidArgument, match=r"\.png or \.svg, got '.*x\.jpg'"):
        write_picture(race, tmp_path / "x.jpg")
    assert not (tmp_path / "x.jpg").exists()
    write_picture(race, tmp_path / "x.pic", fmt="svg")
    assert ET.parse(tmp_path / "x.pic").getroot().tag == f"{_SVG}svg"


def test_without_matplotlib_a_png_names_the_extra(tmp_path: Path) -> None:
    program = f"""
import sys
sys.modules["matplotlib"] = None
from odp_async.report import PlotExtraMissing, Timeline, write_picture, render_png
from odp_async.explore.target import Target
from odp_async.sim import RandomChooser
t = Target.resolve("classic:lock-order")
tl = Timeline.from_execution(t.run(RandomChooser(0), max_steps=1000, trace=True))
write_picture(tl, {str(tmp_path / "ok.svg")!r})   # SVG needs nothing
try:
    render_png(tl, {str(tmp_path / "no.png")!r})
except PlotExtraMissing as e:
    assert isinstance(e, ImportError)
    print(e)
"""
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    message = out.stdout.strip()
    assert "\n" not in message
    assert "odp_async[plot]" in message
    assert (tmp_path / "ok.svg").exists()
    assert not (tmp_path / "no.png").exists()


def test_the_cli_without_matplotlib_is_one_line(tmp_path: Path, race: Timeline) -> None:
    from odp_async.cli import main  # noqa: F401  (importable without matplotlib too)

    program = """
import sys
sys.modules["matplotlib"] = None
from odp_async.cli import main
from odp_async.explore.target import Target
from odp_async.explore.tokens import encode_token
from odp_async.sim import RandomChooser
t = Target.resolve("classic:lock-order")
ex = t.run(RandomChooser(0), max_steps=1000)
sys.exit(main(["replay", encode_token(t, ex.sim.schedule, ex, 1000), "--png", sys.argv[1]]))
"""
    out = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "odp_async[plot]" in out.stderr


def test_render_png_still_draws(race: Timeline, tmp_path: Path) -> None:
    assert render_png(race, tmp_path / "r.png", width_px=700)[0] == 700
