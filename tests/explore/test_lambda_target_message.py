"""A lambda returning a coroutine is not an async function: refused with the object
shown once and the fix (`async def`); an async closure explores with jobs=1, as the
README says (new-user trial, item 2).  User code in tmp_path."""

from __future__ import annotations

import pytest

from odp_async.errors import InvalidArgument
from odp_async.explore import check
from tests._usermod import lost_update_source
from tests.conftest import UserModule


def test_a_lambda_is_refused_naming_it_once(user_module: UserModule) -> None:
    user = user_module(lost_update_source("alpha", "beta"), "user_lambda")
    target = lambda: user.lost_update()  # noqa: E731 - the trial's spelling
    with pytest.raises(InvalidArgument) as raised:
        check(target, jobs=1, schedules=10)
    message = str(raised.value)
    assert message.count(repr(target)) == 1
    assert "`async def` function" in message
    assert "\n" not in message


def test_an_async_closure_explores_with_jobs_1(user_module: UserModule) -> None:
    user = user_module(lost_update_source("alpha", "beta"), "user_closure")

    async def closure() -> None:
        await user.lost_update()

    result = check(closure, jobs=1, schedules=200, seed=1)
    assert result.failure is not None
    assert result.failure.token is None


def test_a_named_reference_still_shows_what_it_names() -> None:
    with pytest.raises(InvalidArgument, match=r"^odp_async.scenarios.classic:CLASSIC is \{"):
        check("odp_async.scenarios.classic:CLASSIC")
