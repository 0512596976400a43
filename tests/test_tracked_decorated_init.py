"""`odp_async.tracked` keeps a decorator on ``__init__``: a class whose ``__init__`` is
wrapped with ``functools.wraps`` (a user's logging or validation decorator, mutmut's
trampoline) runs the wrapper, not the function under it, with exactly the arguments the
caller gave: the wrapped function's defaults are not passed as if given (mutmut's
mutated defaults never took effect, and a decorator could not tell them apart)."""

from __future__ import annotations

from tests.conftest import UserModule

DECORATED = """
import functools
import attrs
from odp_async.tracked import tracked

CALLS = []

def logged(init):
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        CALLS.append((type(self).__name__, args, kwargs))
        init(self, *args, **kwargs)
    return wrapper

@tracked
class Account:
    __slots__ = ("balance", "owner")

    @logged
    def __init__(self, owner, *, balance=0):
        self.owner = owner
        self.balance = balance

@tracked
class Savings(Account):  # tracked too, no __init__ of its own
    __slots__ = ()

class Plain(Account):  # undecorated
    __slots__ = ()
"""


def test_a_decorated_init_runs_its_decorator(user_module: UserModule) -> None:
    mod = user_module(DECORATED, "decorated_init")
    a = mod.Account("ann", balance=5)
    s = mod.Savings("sue")
    p = mod.Plain("pat", balance=2)
    assert (a.owner, a.balance, s.owner, s.balance, p.owner, p.balance) == (
        "ann",
        5,
        "sue",
        0,
        "pat",
        2,
    )
    assert mod.CALLS == [
        ("Account", ("ann",), {"balance": 5}),
        ("Savings", ("sue",), {}),  # no default passed on as if the caller gave it
        ("Plain", ("pat",), {"balance": 2}),
    ]
