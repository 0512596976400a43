"""`odp_async.sim.run` refuses a bad keyword with `InvalidArgument` naming the value, as
`check()` and `ExploreConfig` do: never an `AttributeError` from inside the driver, never
an unbounded step bound."""

from __future__ import annotations

import pytest

from odp_async import sim
from odp_async.errors import InvalidArgument
from tests.conftest import UserModule

PROGRAM = """
from odp_async import checkpoint, task_group


async def two_workers():
    async def w():
        for _ in range(3):
            await checkpoint("w")

    async with task_group() as tg:
        tg.start_soon(w, name="w1")
        tg.start_soon(w, name="w2")
    return "done"
"""


@pytest.mark.parametrize(
    ("keywords", "needle"),
    [
        ({"chooser": "random"}, "chooser must be None or a Chooser"),
        ({"chooser": 3}, "got 3 (int)"),
        ({"max_steps": 10**12}, "max_steps must be at most 2000000000"),
        ({"max_steps": 0}, "max_steps must be a positive int, got 0"),
        ({"max_steps": True}, "max_steps must be a positive int, got True"),
        ({"max_steps": 1.5}, "got 1.5"),
        ({"seed": "7"}, "seed must be an int"),
        ({"seed": 2**64}, "seed must be an int of at most 64 bits"),
        ({"seed": True}, "seed must be an int"),
        ({"trace": "yes"}, "trace must be a bool, got 'yes'"),
        ({"on_stop": 5}, "on_stop must be None or a callable, got 5"),
    ],
)
def test_a_bad_keyword_is_refused_by_name(
    user_module: UserModule, keywords: dict[str, object], needle: str
) -> None:
    mod = user_module(PROGRAM, "simargs")
    with pytest.raises(InvalidArgument) as caught:
        sim.run(mod.two_workers, **keywords)  # type: ignore[arg-type]
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_good_keywords_still_run(user_module: UserModule) -> None:
    mod = user_module(PROGRAM, "simargs")
    assert sim.run(mod.two_workers, seed=2**64 - 1, max_steps=2 * 10**9).unwrap() == "done"
    assert sim.run(mod.two_workers, chooser=sim.RandomChooser(3), trace=True).unwrap() == "done"
    assert sim.run(mod.two_workers, on_stop=lambda: None).unwrap() == "done"
