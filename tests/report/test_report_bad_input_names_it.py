"""Bad input to the report's API: a one-line `InvalidArgument` that names the bad value
(not "recorded without a trace" for what is no execution at all)."""

from __future__ import annotations

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore.target import Execution
from odp_async.report import Timeline, render_html
from odp_async.report.states import step_states


@pytest.mark.parametrize("bad", ["run.json", None, 42])
def test_what_is_no_execution_is_named(bad: object) -> None:
    for call in (Timeline.from_execution, step_states, render_html):
        with pytest.raises(InvalidArgument, match="expected an Execution") as err:
            call(bad)  # type: ignore[operator]
        assert repr(bad) in str(err.value)
        assert "\n" not in str(err.value)


def test_a_target_that_is_no_target_is_named(race_execution: Execution) -> None:
    with pytest.raises(InvalidArgument, match=r"target must be a Target or None, got 'x' \(str\)"):
        step_states(race_execution, "x")  # type: ignore[arg-type]
