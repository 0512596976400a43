"""The shared `Runner` (tests/conftest.py) turns a live run that never returns into a
failed test (`TimeoutError` after `Runner.hang_limit`), not a stalled suite: a mutant of
a primitive that loses a wake-up is then killed, not timed out (tools/mutation.sh)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from tests.conftest import Runner


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_live_run_that_never_returns_fails_after_the_hang_limit(backend: str) -> None:
    with pytest.raises(TimeoutError):
        Runner(backend, hang_limit=0.05).run(anyio.sleep_forever)


def test_a_live_run_that_returns_gives_its_value(live: Runner) -> None:
    async def main(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x + 1

    assert live.run(main, 41) == 42
