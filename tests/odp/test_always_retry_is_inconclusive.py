"""README "Verdicts": a protocol whose fault retries with no invalidation in flight (a
`must_retry` that always answers True) charges no refusal, so its runs reach the step
bound: `inconclusive`, never a pass and never `starvation` (new-user trial).  The
protocol is a user's module outside the package."""

from __future__ import annotations

import types
from collections.abc import Callable

from odp_async.explore import explore
from odp_async.scenarios import Verdict

UserModule = Callable[..., types.ModuleType]

ALWAYS_RETRY = """
from odp_async.odp.protocols.kvm_seq import KvmSeq


class AlwaysRetry(KvmSeq):
    name = "always-retry"
    summary = "every fault attempt must retry"

    def must_retry(self, umem, rng, token):
        return True
"""


def test_a_fault_that_always_retries_is_inconclusive(user_module: UserModule) -> None:
    mod = user_module(ALWAYS_RETRY, "alwaysretry")
    result = explore(
        "registration-race", mod.AlwaysRetry, chooser="random", schedules=2, max_steps=3000
    )
    assert result.failure is None
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.unfinished == 2
