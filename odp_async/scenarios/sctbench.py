"""SCTBench-style programs (Thomson, Donaldson and Betts, "Concurrency Testing Using
Controlled Schedulers: An Empirical Study", TOPC 2016), written against the public API.

Contract
    Each program is an async function of no arguments built from `task_group`,
    `checkpoint`, `Mutex` and `SharedCell` only; its bug shows as an `AssertionError`
    (verdict ``found``) or a deadlock.  As in SCTBench, every shared access is a
    scheduling point: data lives in `SharedCell`\\ s, read and written with `load` and
    `store` (a checkpoint declaring the access, then the access) or with `get`/`set`
    inside a step that starts at a `Mutex` acquire.  Threads are started by ``main``
    with a scheduling point between two starts (``threads created at scheduling
    points``), so a started thread may run before the next one exists.

    - ``account``: deposit and withdraw under a lock; the checker's assertion is wrong
      once both are done and it runs last.
    - ``lazy01``: two adders under a lock; the checker fails when it runs after both.
    - ``deadlock01``: two threads take locks a and b in opposite orders.
    - ``carter01``: a deadlock that needs one thread to see the other's flag first.
    - ``circular_buffer``: the producer publishes a slot before filling it.
    - ``stack``: the popper trusts a flag that stays set after the stack empties.
    - ``twostage`` / ``twostage_N``: writers update two values in two locked stages;
      the reader checks ``data2 == data1 + 1`` between them (``N`` writers, the reader
      started last).
    - ``wronglock``: one thread guards a counter with the wrong lock.
    - ``reorder_N``: ``N - 1`` setters write ``a = 1`` then ``b = -1``; a checker sees
      ``a == 1`` with ``b == 0``.

    ``*_fixed`` variants (``account``, ``lazy01``, ``twostage``, ``reorder_3``) have the
    bug removed: every schedule passes.

See also
    `odp_async.scenarios.classic`, `benchmarks/bench_dpor.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .._runtime import checkpoint, task_group
from .._runtime.footprint import Footprint
from ..shared import SharedCell
from ..sync import Mutex
from .model import Scenario, Verdict

__all__ = ["SCTBENCH", "TWOSTAGE_SIZES", "REORDER_SIZES"]

Body = Callable[[], Awaitable[Any]]
Thread = Callable[[], Coroutine[Any, Any, None]]

TWOSTAGE_SIZES = (10, 20, 50, 100)
REORDER_SIZES = (3, 5, 10, 20)


async def _start(threads: list[tuple[str, Thread]]) -> None:
    """Start each thread, with a scheduling point of ``main`` between two starts."""
    async with task_group() as tg:
        for k, (name, fn) in enumerate(threads):
            if k:
                await checkpoint(Footprint())
            tg.start_soon(fn, name=name)


def account(*, fixed: bool = False) -> Body:
    async def main() -> None:
        m = Mutex("m")
        x, y, z = 1, 2, 4
        balance = SharedCell(x, "balance")
        deposit_done = SharedCell(False, "deposit_done")
        withdraw_done = SharedCell(False, "withdraw_done")

        async def deposit() -> None:
            async with m:
                balance.set(balance.get() + y)
                deposit_done.set(True)

        async def withdraw() -> None:
            async with m:
                balance.set(balance.get() - z)
                withdraw_done.set(True)

        async def check_result() -> None:
            async with m:
                if deposit_done.get() and withdraw_done.get():
                    expected = x + y - z if fixed else (x - y) - z
                    value = balance.get()
                    assert value == expected, f"balance {value} != {expected}"

        await _start([("check", check_result), ("deposit", deposit), ("withdraw", withdraw)])

    return main


def lazy01(*, fixed: bool = False) -> Body:
    async def main() -> None:
        m = Mutex("m")
        data = SharedCell(0, "data")

        async def add1() -> None:
            async with m:
                data.set(data.get() + 1)

        async def add2() -> None:
            async with m:
                data.set(data.get() + 2)

        async def check() -> None:
            async with m:
                value = data.get()
                assert fixed or value < 3, f"data reached {value}"

        await _start([("t3", check), ("t1", add1), ("t2", add2)])

    return main


def deadlock01() -> Body:
    async def main() -> None:
        a, b = Mutex("a"), Mutex("b")
        counter = SharedCell(0, "counter")

        async def t1() -> None:
            async with a, b:
                counter.set(counter.get() + 1)

        async def t2() -> None:
            async with b, a:
                counter.set(counter.get() - 1)

        await _start([("t1", t1), ("t2", t2)])

    return main


def carter01() -> Body:
    async def main() -> None:
        m, n = Mutex("m"), Mutex("n")
        flag = SharedCell(0, "flag")

        async def t1() -> None:
            async with m:
                flag.set(1)
            async with n, m:
                pass

        async def t2() -> None:
            async with m:
                seen = flag.get()
                if seen:
                    # Only once t1 published its flag does t2 take n while holding m.
                    async with n:
                        pass

        await _start([("t1", t1), ("t2", t2)])

    return main


def circular_buffer(size: int = 3) -> Body:
    async def main() -> None:
        buffer = [SharedCell(-1, f"buffer[{i}]") for i in range(size)]
        next_ = SharedCell(0, "next")
        received: list[int] = []

        async def producer() -> None:
            for i in range(size):
                slot = await next_.load()
                await next_.store(slot + 1)  # bug: published before the slot is filled
                await buffer[slot].store(i)

        async def consumer() -> None:
            first = 0
            for _ in range(2 * size):
                if first >= size:
                    break
                if first < await next_.load():
                    value = await buffer[first].load()
                    assert value == first, f"slot {first} read {value} before it was filled"
                    received.append(value)
                    first += 1

        await _start([("producer", producer), ("consumer", consumer)])

    return main


def stack(size: int = 2) -> Body:
    async def main() -> None:
        m = Mutex("m")
        items = SharedCell[tuple[int, ...]]((), "stack")
        flag = SharedCell(False, "flag")

        async def pusher() -> None:
            for i in range(size):
                async with m:
                    items.set((*items.get(), i))
                    flag.set(True)

        async def popper() -> None:
            for _ in range(size):
                async with m:
                    if flag.get():
                        content = items.get()
                        assert content, "pop from an empty stack: the flag was stale"
                        items.set(content[:-1])

        await _start([("pusher", pusher), ("popper", popper)])

    return main


def twostage(writers: int = 1, *, fixed: bool = False) -> Body:
    async def main() -> None:
        m1, m2 = Mutex("m1"), Mutex("m2")
        data1 = SharedCell(0, "data1")
        data2 = SharedCell(0, "data2")

        async def writer() -> None:
            if fixed:
                async with m1, m2:
                    data1.set(1)
                    data2.set(data1.get() + 1)
                return
            async with m1:
                data1.set(1)
            async with m2:
                data2.set(data1.get() + 1)

        async def reader() -> None:
            if fixed:
                async with m1, m2:
                    t1 = data1.get()
                    t2 = data2.get()
                assert t1 == 0 or t2 == t1 + 1
                return
            async with m1:
                t1 = data1.get()
                if t1 == 0:
                    return
            async with m2:
                t2 = data2.get()
            assert t2 == t1 + 1, f"reader saw data1={t1} but data2={t2}"

        threads: list[tuple[str, Thread]] = [(f"writer{k}", writer) for k in range(writers)]
        await _start([*threads, ("reader", reader)])

    return main


def wronglock(others: int = 2) -> Body:
    async def main() -> None:
        right, wrong = Mutex("dataLock"), Mutex("thisLock")
        value = SharedCell(0, "dataValue")

        async def func_a() -> None:
            async with right:
                x = value.get()
            async with right:
                now = value.get()
                value.set(now + 1)
                assert now == x, f"dataValue changed from {x} to {now} under dataLock"

        async def func_b() -> None:
            async with wrong:
                value.set(value.get() + 1)

        threads: list[tuple[str, Thread]] = [("A", func_a)]
        threads += [(f"B{k}", func_b) for k in range(others)]
        await _start(threads)

    return main


def reorder(n: int, *, fixed: bool = False) -> Body:
    async def main() -> None:
        m = Mutex("m")
        a = SharedCell(0, "a")
        b = SharedCell(0, "b")

        async def setter() -> None:
            if fixed:
                async with m:
                    a.set(1)
                    b.set(-1)
                return
            await a.store(1)
            await b.store(-1)

        async def checker() -> None:
            if fixed:
                async with m:
                    pair = (a.get(), b.get())
            else:
                pair = (await a.load(), await b.load())
            assert pair in ((0, 0), (1, -1)), f"checker saw (a, b) = {pair}"

        threads: list[tuple[str, Thread]] = [(f"set{k}", setter) for k in range(n - 1)]
        await _start([*threads, ("check", checker)])

    return main


def _scenario(name: str, summary: str, body: Body, verdict: Verdict | None) -> Scenario:
    expected = {"-": verdict} if verdict is not None else {}
    # Every shared value lives in a SharedCell or a Mutex: the programs may say so.
    return Scenario(name, summary, body, ("main",), expected, needs_world=False, noted_only=True)


def _all() -> dict[str, Scenario]:
    found, dead = Verdict.FOUND, Verdict.DEADLOCK
    items = [
        _scenario("account", "the checker's assertion fails after both", account(), found),
        _scenario("account_fixed", "account with the right assertion", account(fixed=True), None),
        _scenario("lazy01", "the checker runs after both adders", lazy01(), found),
        _scenario("lazy01_fixed", "lazy01 without the assertion", lazy01(fixed=True), None),
        _scenario("deadlock01", "locks a and b in opposite orders", deadlock01(), dead),
        _scenario("carter01", "a deadlock after a flag is seen", carter01(), dead),
        _scenario("circular_buffer", "a slot published before filled", circular_buffer(), found),
        _scenario("stack", "a stale flag lets the popper underflow", stack(), found),
        _scenario("twostage", "a reader between two stages", twostage(1), found),
        _scenario("twostage_fixed", "both stages under both locks", twostage(1, fixed=True), None),
        _scenario("wronglock", "a counter guarded by the wrong lock", wronglock(), found),
        _scenario("reorder_3_fixed", "setters under a lock", reorder(3, fixed=True), None),
    ]
    for n in TWOSTAGE_SIZES:
        items.append(_scenario(f"twostage_{n}", f"{n} writers and a reader", twostage(n), found))
    for n in REORDER_SIZES:
        items.append(
            _scenario(f"reorder_{n}", f"{n - 1} setters and a checker", reorder(n), found)
        )
    return {s.name: s for s in items}


#: The programs by name (registered as ``classic:<name>``).
SCTBENCH: dict[str, Scenario] = _all()
