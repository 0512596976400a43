"""Explored tests whose schedules share state the test reaches past its arguments: a
closure or ``functools.partial`` fixture, class attributes (of a fixture's class, of
the test's own class, of a metaclass), a module's attribute, an enum member's value,
an ``lru_cache`` result, a function's attribute (trial 21a, f3 and f3c); and the
plugin's ``stall`` and ``time`` settings (f6).  Each runs in a fresh pytest process, as
a user writes it."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

HELPER_MOD = textwrap.dedent(
    """
    import functools

    _STATE = {"n": 0}
    CONSTANT = {"n": 0}

    @functools.lru_cache(maxsize=None)
    def get_box():
        return {"n": 0}

    @functools.lru_cache(maxsize=None)
    def warm_constant():
        return (1, 2)

    warm_constant()  # filled at import: the runs only read it

    class Meta(type):
        registry = {"n": 0}

    class WithMeta(metaclass=Meta):
        pass
    """
)

# Each test is correct in any one run; each leaves state the next run starts from.
LEAKS = textwrap.dedent(
    """
    import enum
    import functools
    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test
    import helper_mod


    class ClsAttr:
        count = 0


    @pytest.fixture
    def clsattr():
        return ClsAttr()


    @pytest.fixture
    def closure():
        box = [0]
        return lambda: box


    @pytest.fixture
    def partial_box():
        return functools.partial(lambda d: d, {"n": 0})


    class Mode(enum.Enum):
        A = [0]


    async def body(get, put):
        assert get() == 0, f"leftover: {get()}"
        put(get() + 1)
        await oa.checkpoint()


    @explore_test(schedules=5)
    async def test_cls_attr(clsattr):
        await body(lambda: type(clsattr).count, lambda v: setattr(type(clsattr), "count", v))


    @explore_test(schedules=5)
    async def test_closure(closure):
        await body(lambda: closure()[0], lambda v: closure().__setitem__(0, v))


    @explore_test(schedules=5)
    async def test_partial(partial_box):
        await body(lambda: partial_box()["n"], lambda v: partial_box().__setitem__("n", v))


    class TestSelf:
        n = 0

        @explore_test(schedules=5)
        async def test_self_cls(self):
            await body(lambda: TestSelf.n, lambda v: setattr(TestSelf, "n", v))


    @explore_test(schedules=5)
    async def test_module_attr():
        await body(
            lambda: helper_mod._STATE["n"], lambda v: helper_mod._STATE.__setitem__("n", v)
        )


    @explore_test(schedules=5)
    async def test_enum_value():
        await body(lambda: Mode.A.value[0], lambda v: Mode.A.value.__setitem__(0, v))


    @explore_test(schedules=5)
    async def test_lru():
        await body(
            lambda: helper_mod.get_box()["n"],
            lambda v: helper_mod.get_box().__setitem__("n", v),
        )


    @explore_test(schedules=5)
    async def test_func_attr():
        await body(lambda: getattr(body, "n", 0), lambda v: setattr(body, "n", v))


    @explore_test(schedules=5)
    async def test_metaclass_attr():
        await body(
            lambda: helper_mod.WithMeta.registry["n"],
            lambda v: helper_mod.WithMeta.registry.__setitem__("n", v),
        )
    """
)

#: (test, the path the message names to what changed)
LEAKED = [
    (
        "test_cls_attr",
        "fixture 'clsattr' changed between the test's runs "
        "(clsattr.<class ClsAttr>.count was 0 before the first run, 1 after run 1)",
    ),
    (
        "test_closure",
        "fixture 'closure' changed between the test's runs (closure.<closure box>[0] was 0",
    ),
    (
        "test_partial",
        "fixture 'partial_box' changed between the test's runs (partial_box.args[0]['n'] was 0",
    ),
    ("TestSelf::test_self_cls", "changed between the test's runs (TestSelf.n was 0"),
    (
        "test_module_attr",
        "module global 'helper_mod' changed between the test's runs (helper_mod._STATE['n'] was 0",
    ),
    ("test_enum_value", "module global 'Mode' changed between the test's runs (Mode."),
    # a memo cache only gaining entries is no change, so the entry the first run adds and
    # the second mutates is caught by the end probe (the first schedule run again)
    ("test_lru", "the same schedule ran differently before the exploration"),
    ("test_func_attr", ".n was absent before the first run, 1 after run 1"),
    ("test_metaclass_attr", "(helper_mod.WithMeta.<metaclass Meta>.registry['n'] was 0"),
]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--odp-database=none", *args)


def test_state_a_run_leaves_past_the_arguments_is_named_not_judged(
    pytester: pytest.Pytester,
) -> None:
    # trial 21a f3: each was a false failure ("found after 1 schedules") whose token
    # then gave ReplayMismatch; the watch now reads what the run reaches
    pytester.makepyfile(helper_mod=HELPER_MOD, test_leaks=LEAKS)
    result = _run(pytester, "-rf")
    result.assert_outcomes(failed=len(LEAKED))
    output = result.stdout.str()
    assert "ExplorationFailed" not in output, output
    assert "--odp-replay=" not in output, output
    assert "leftover" not in output, output
    for test, says in LEAKED:
        lines = [line for line in output.splitlines() if f"test_leaks.py::{test}:" in line]
        assert lines, (test, output)
        assert all("ExplorationInconclusive" in line for line in lines), (test, lines)
        assert any(says in line for line in lines), (test, says, lines)


FALSE_PASS = textwrap.dedent(
    """
    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @pytest.fixture
    def warm():
        state = [False]
        return lambda: state


    async def racy(is_warm, set_warm):
        box = {"n": 0}

        async def inc():
            if is_warm():
                box["n"] += 1
            else:
                v = box["n"]
                await oa.checkpoint()   # a lost update, only on the cold path
                box["n"] = v + 1

        async with oa.task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        set_warm()
        assert box["n"] == 2, f"lost update: {box['n']}"


    @explore_test(schedules=200, chooser="dfs")
    async def test_closure_fixture_dfs(warm):
        await racy(lambda: warm()[0], lambda: warm().__setitem__(0, True))


    @explore_test(schedules=200)
    async def test_closure_fixture_portfolio(warm):
        await racy(lambda: warm()[0], lambda: warm().__setitem__(0, True))
    """
)


def test_a_leak_that_hides_a_bug_is_never_a_pass(pytester: pytest.Pytester) -> None:
    # trial 21a f3c: the first schedule warmed the closure, every later one took the
    # atomic path, and the test passed with a real lost update in it
    pytester.makepyfile(test_warm=FALSE_PASS)
    result = _run(pytester)
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert output.count("fixture 'warm' changed between the test's runs") >= 2, output


USED_WELL = textwrap.dedent(
    """
    import functools
    import pytest
    import odp_async as oa
    from odp_async.explore.testing import explore_test
    import helper_mod


    class Config:
        workers = 2

        def count(self):
            return self.workers


    @pytest.fixture
    def make_box():
        return lambda: {"x": 0}


    @pytest.fixture
    def add():
        return functools.partial(lambda step, v: v + step, 1)


    async def work(box, add, lock):
        async with lock:
            v = box["x"]
            await oa.checkpoint()
            box["x"] = add(v)


    @explore_test(schedules=50)
    async def test_helpers_read_only(make_box, add):
        box = make_box()
        lock = oa.Mutex("m")
        n = Config().count() + len(helper_mod.CONSTANT) - 1 + len(helper_mod.warm_constant()) - 2
        async with oa.task_group() as tg:
            for _ in range(n):
                tg.start_soon(work, box, add, lock)
        assert box["x"] == n
    """
)


def test_code_and_state_only_read_still_pass(pytester: pytest.Pytester) -> None:
    # the wider watch reads helpers, classes, modules and caches: reading is no change
    pytester.makepyfile(helper_mod=HELPER_MOD, test_used_well=USED_WELL)
    result = _run(pytester)
    result.assert_outcomes(passed=1)


STALLS = textwrap.dedent(
    """
    import time
    import odp_async as oa
    from odp_async.explore.testing import explore_test


    @explore_test(schedules=5, stall=0.5)
    async def test_stalls_by_decorator():
        await oa.checkpoint()
        time.sleep(10_000)


    @explore_test(schedules=5)
    async def test_stalls_by_option():
        await oa.checkpoint()
        time.sleep(10_000)


    @explore_test(schedules=10**9, chooser="random", time=0.3)
    async def test_a_time_budget():
        await oa.checkpoint()
    """
)


def test_stall_and_time_are_settings_of_the_plugin(pytester: pytest.Pytester) -> None:
    # trial 21a f6: `stall` was an unknown setting, and a stalled test took 60 s
    pytester.makepyfile(test_stalls=STALLS)
    by_decorator = _run(pytester, "-k", "decorator or budget")
    by_decorator.assert_outcomes(failed=1, passed=1)
    by_option = _run(pytester, "-k", "option", "--odp-stall=0.5")
    by_option.assert_outcomes(failed=1)
    for result, test, line in (
        (by_decorator, "test_stalls_by_decorator", 9),
        (by_option, "test_stalls_by_option", 15),
    ):
        output = result.stdout.str()
        assert f"test_stalls.py::{test}: inconclusive: " in output, output
        assert "stalled (0 schedules ended before it)" in output, output
        assert "has not returned after 0.5 s" in output, output
        assert f"test_stalls.py:{line} in {test}" in output, output


def test_an_unknown_setting_names_stall_and_time() -> None:
    from odp_async.errors import InvalidArgument
    from odp_async.explore.testing import explore_test

    with pytest.raises(InvalidArgument, match=r"did you mean 'stall'.*stall, time, replay"):
        explore_test(stal=1)


def test_bad_stall_and_time_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stalls=STALLS)
    for option, says in (
        ("--odp-stall=soon", "--odp-stall: expected a number of seconds, got 'soon'"),
        ("--odp-time=0", "--odp-time must be a number of seconds > 0, got '0'"),
        ("--odp-schedules=0", "--odp-schedules must be a positive int, got '0'"),
    ):
        result = _run(pytester, option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert says in result.stderr.str(), result.stderr.str()


UNSEEN_LEAK = textwrap.dedent(
    """
    import odp_async as oa
    from odp_async.explore.testing import explore_test
    import helper_mod

    NAME = "_ST" + "ATE"  # a name computed at run time: the watch cannot follow it


    def state():
        return getattr(helper_mod, NAME)


    @explore_test(schedules=200, chooser="dfs")
    async def test_warmed_through_a_computed_name():
        box = {"n": 0}

        async def inc():
            if state()["n"]:
                box["n"] += 1
            else:
                v = box["n"]
                await oa.checkpoint()   # a lost update, only on the cold path
                box["n"] = v + 1

        async with oa.task_group() as tg:
            tg.start_soon(inc)
            tg.start_soon(inc)
        state()["n"] = 1
        assert box["n"] == 2, f"lost update: {box['n']}"
    """
)


def test_a_leak_the_watch_cannot_see_is_caught_by_its_effect(pytester: pytest.Pytester) -> None:
    # s19 (f3c, the kind): the same schedule, run before the exploration and after it,
    # runs otherwise when a run left state the next one reads, seen or not
    pytester.makepyfile(helper_mod=HELPER_MOD, test_unseen=UNSEEN_LEAK)
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "ExplorationInconclusive" in output, output
    assert "the same schedule ran differently before the exploration" in output, output
    assert "lost update" not in output, output


LAZY_MOD = textwrap.dedent(
    """
    import functools
    import re

    _PAT = None


    def pattern():
        global _PAT
        if _PAT is None:
            _PAT = re.compile(r"[0-9]+")
        return _PAT


    @functools.lru_cache(maxsize=None)
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)


    @functools.cache
    def config():
        return {"workers": 2}
    """
)

LAZY_USED = textwrap.dedent(
    """
    import odp_async as oa
    from odp_async.explore.testing import explore_test
    import lazy_mod


    async def locked_incs(order):
        lock, st = oa.Mutex("l"), {"x": 0}

        async def inc(name):
            async with lock:
                v = st["x"]
                await oa.checkpoint()
                st["x"] = v + 1
                order.append(name)

        async with oa.task_group() as tg:
            for i in range(lazy_mod.config()["workers"]):
                tg.start_soon(inc, str(i))
        return st["x"]


    @explore_test(schedules=30, chooser="dfs")
    async def test_lazy_regex_global():
        assert lazy_mod.pattern().match("42")
        assert await locked_incs([]) == 2


    @explore_test(schedules=30, chooser="dfs")
    async def test_lru_pure_helper():
        order = []
        assert await locked_incs(order) == 2
        # the argument depends on the schedule: later runs add entries to the cache
        assert lazy_mod.fib(10 + int(order[0])) in (55, 89)
    """
)


def test_memo_caches_of_correct_tests_pass_and_a_lazy_global_is_inconclusive(
    pytester: pytest.Pytester,
) -> None:
    # verify21 v3: a pure helper's memo cache (filled by the first run, gaining entries
    # in later ones) is not state the runs share.  A global set on first use is: only
    # the first run starts without it, so a race in that initialisation (two tasks both
    # seeing None across an await) would never be explored again; inconclusive, never a
    # pass taken from the warm state
    pytester.makepyfile(lazy_mod=LAZY_MOD, test_lazy=LAZY_USED)
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "test_lru_pure_helper PASSED" in output, output
    assert "module global" in output, output
    assert "_PAT" in output, output


C_STATE = textwrap.dedent(
    """
    import array
    import random
    import odp_async as oa
    from odp_async.explore.testing import explore_test

    RNG = random.Random(0)


    class Samples(array.array):
        pass


    SAMPLES = Samples("i", [0])


    @explore_test(schedules=20, chooser="dfs")
    async def test_module_rng():
        RNG.random()
        await oa.checkpoint()


    @explore_test(schedules=20, chooser="dfs")
    async def test_subclass_of_a_c_type():
        SAMPLES[0] += 1
        await oa.checkpoint()
    """
)


def test_state_in_a_c_base_of_a_python_class_is_seen(pytester: pytest.Pytester) -> None:
    # verify21 v2: a `random.Random` and a Python subclass of `array.array` keep their
    # state in a C base (a heap type of a C module): a run moving it was a pass
    pytester.makepyfile(test_c_state=C_STATE)
    result = _run(pytester)
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "module global 'RNG' changed between the test's runs (RNG.<state>" in output, output
    assert "module global 'SAMPLES' changed between the test's runs (SAMPLES.<state>" in output
