from __future__ import annotations

import struct
from pathlib import Path

import pytest

from odp_async.errors import InvalidArgument
from odp_async.report import Timeline, render_png

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == _SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("width_px", [1400, 900])
def test_registration_race(tmp_path: Path, race: Timeline, width_px: int) -> None:
    from matplotlib.image import imread

    path = tmp_path / "race.png"
    size = render_png(race, path, width_px=width_px)
    assert size == _png_size(path)
    assert size[0] == width_px
    assert size[1] > 300  # five lanes
    pixels = imread(str(path))
    assert pixels.shape[:2] == (size[1], size[0])
    rgb = (pixels[..., :3] * 255).round().astype("uint8").reshape(-1, 3)
    assert len({tuple(p) for p in rgb[:: max(1, len(rgb) // 50_000)]}) > 2


def test_a_deadlock(tmp_path: Path, lock_order: Timeline) -> None:
    path = tmp_path / "lock-order.png"
    width, height = render_png(lock_order, path, width_px=800)
    assert (width, height) == _png_size(path)
    assert width == 800


def test_pyplot_is_left_alone(tmp_path: Path, lock_order: Timeline) -> None:
    import sys

    render_png(lock_order, tmp_path / "a.png", width_px=600)
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert not plt.get_fignums()


def test_an_unwritable_path_is_named(tmp_path: Path, lock_order: Timeline) -> None:
    path = tmp_path / "missing" / "out.png"
    with pytest.raises(InvalidArgument, match="missing") as info:
        render_png(lock_order, path, width_px=600)
    assert str(path) in str(info.value)
    assert info.value.__suppress_context__


def test_a_bad_width_is_refused(tmp_path: Path, lock_order: Timeline) -> None:
    with pytest.raises(InvalidArgument, match="width_px"):
        render_png(lock_order, tmp_path / "x.png", width_px=10)
