"""The HTML report's pending-step text uses a labelled Footprint's label (a SharedCell's
``load 'name'``), and falls back to the footprint itself."""

from __future__ import annotations

from odp_async._runtime.footprint import Footprint
from odp_async.report.states import _label


def test_a_labelled_footprint_shows_its_label() -> None:
    assert _label(Footprint.write("x")).startswith("a step touching ")
    labelled = Footprint(writes=frozenset({"x"}), label="store 'x'")
    assert _label(labelled) == "store 'x'"
    assert _label("a string label") == ""
