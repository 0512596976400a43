"""`odp_async.explore` is the explorer's public face: pinned, and enough on its own."""

from __future__ import annotations

import odp_async.explore as api
from odp_async._runtime.footprint import Footprint
from odp_async.errors import ExploreInterrupted
from tests.test_public_api import PUBLIC as PINNED

PUBLIC = PINNED["odp_async.explore"]  # one pinned list: tests/test_public_api.py


def test_the_explore_api_is_pinned() -> None:
    assert sorted(api.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(api, name), name
    assert api.Footprint is Footprint
    assert api.CHOOSERS == ("portfolio", "random", "pct", "dfs", "dpor")
    assert issubclass(ExploreInterrupted, KeyboardInterrupt)


def test_a_result_and_a_progress_update_are_frozen_values() -> None:
    import attrs
    import pytest

    update = api.ProgressUpdate(1, 2, 0, 0.5)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        update.done = 2  # type: ignore[misc]
