"""The portfolio chooser: fixed shares, the default, deterministic for any jobs and start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from odp_async.explore import ExploreConfig
from odp_async.explore.executors import InlineExecutor
from odp_async.explore.portfolio import (
    MEMBERS,
    PATTERN,
    Probes,
    dpor_ordinal,
    member_at,
    ordinal,
    seeded_chooser,
    shares,
)
from odp_async.explore.runner import check, explore, explore_target
from odp_async.explore.sweep import SweepChooser
from odp_async.explore.target import Target
from odp_async.explore.testing import explore_test
from odp_async.explore.tokens import decode_token, encode_token
from odp_async.odp.protocols import PROTOCOLS
from odp_async.scenarios import BUILTIN, Verdict


def test_the_default_is_the_portfolio() -> None:
    assert ExploreConfig().chooser == "portfolio"
    assert check.__kwdefaults__["chooser"] == "portfolio"
    assert explore_test.__kwdefaults__["chooser"] == "portfolio"


def test_fixed_shares_and_dpor_ordinals() -> None:
    got = shares()
    assert set(got) == set(MEMBERS)
    assert got["dpor"] == pytest.approx(2 / 9)
    for name in ("random", "sweep", "pct-d1", "pct-d2", "pct-d3", "pct-d4", "pct-d5"):
        assert got[name] == pytest.approx(1 / 9)
    seen = 0
    before: dict[str, int] = {}
    for i in range(5 * len(PATTERN)):
        member = member_at(i)
        assert member is PATTERN[i % len(PATTERN)]
        assert dpor_ordinal(i) == seen
        assert ordinal(i) == before.get(member.name, 0)
        seen += member.kind == "dpor"
        before[member.name] = before.get(member.name, 0) + 1


#: Every built-in cell expected to fail, and the seeds each is tried with.
FAILING_CELLS = [
    (name, protocol)
    for name, scenario in BUILTIN.items()
    for protocol in PROTOCOLS
    if scenario.expected_for(protocol) is not Verdict.CLEAN
]


#: The cells no single member finds quickly in every seed (bench_portfolio.py).
HARD_CELLS = [
    ("registration-race", "odp2014"),
    ("stray-end-corruption", "odp2014"),
    ("truncate-during-registration", "odp2014"),
    ("dereg-during-notifier", "naive"),
    ("storm-register-during", "interval-seq"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_builtin_failing_cell_found_within_10000(seed: int) -> None:
    # every cell in seed 0; the hard ones in more seeds (a modest runtime)
    for name, protocol in FAILING_CELLS if seed == 0 else HARD_CELLS:
        result = explore(name, protocol, schedules=10_000, seed=seed, shrink=False)
        assert result.failure is not None, f"{name}/{protocol} seed {seed}: missed"
        assert result.verdict is BUILTIN[name].expected_for(protocol), (name, protocol)
        assert result.found_by in MEMBERS


@pytest.mark.parametrize("seed", range(8))
def test_ctx_dereg_during_end_found_in_every_seed(seed: int) -> None:
    # pct at depth 3 alone never finds it (it needs depth 4); the portfolio must.
    result = explore(
        "ctx-dereg-during-end", "odp2014-ctx", schedules=10_000, seed=seed, shrink=False
    )
    assert result.verdict is Verdict.DEADLOCK
    assert result.failure is not None
    assert result.failure.index <= 10_000


def test_pct_depth_3_alone_misses_ctx_dereg_during_end() -> None:
    # the gap the portfolio closes (a modest budget: no schedule finds it at any); one of
    # the random probe runs that size pct's k deadlocks, and is the failure then (a bug
    # the search ran into is never a pass: tests/explore/test_probe_failure.py)
    result = explore("ctx-dereg-during-end", "odp2014-ctx", chooser="pct", depth=3, schedules=300)
    assert result.schedules == 300
    assert result.failure is not None
    assert (result.failure.index, result.found_by) == (0, "random-probe")


def _summary(result: object) -> tuple[object, ...]:
    r = result
    failure = r.failure  # type: ignore[attr-defined]
    return (
        r.schedules,  # type: ignore[attr-defined]
        r.failing,  # type: ignore[attr-defined]
        r.found_by,  # type: ignore[attr-defined]
        None if failure is None else (failure.index, failure.schedule, failure.token),
    )


@pytest.mark.parametrize("stop_on_first", [True, False])
def test_same_results_serial_inline_executor_and_jobs(stop_on_first: bool) -> None:
    config = ExploreConfig(schedules=600, seed=3, shrink=False, stop_on_first=stop_on_first)
    target = Target.resolve("fault-vs-munmap", "naive")
    serial = explore_target(target, config)
    inline = explore_target(target, config, executor=InlineExecutor())
    pooled = explore_target(target, config.evolve(jobs=2))
    # with stop_on_first, chunks already running when the failure came may add a few
    # schedules (and failures) past it, as for random: the first failure is the same
    skip = 2 if stop_on_first else 0
    assert _summary(serial)[skip:] == _summary(inline)[skip:] == _summary(pooled)[skip:]
    assert serial.failure is not None
    if not stop_on_first:
        # the dpor share ran (in the parent) and found failures too
        members = {member_at(i - 1).name for i in serial.failing}
        assert "dpor" in members
        assert len(members) > 2


def test_start_shards_one_search() -> None:
    target = Target.resolve("classic:lost-update")
    base = ExploreConfig(schedules=40, seed=5, shrink=False, stop_on_first=False)
    whole = explore_target(target, base)
    a = explore_target(target, base.evolve(schedules=17))
    b = explore_target(target, base.evolve(start=17, schedules=23))
    assert whole.failing == tuple(sorted(a.failing + b.failing))
    # the dpor share of the second shard resumed its search at the right execution
    assert {member_at(i - 1).kind for i in b.failing} >= {"dpor"}
    assert whole.schedules == a.schedules + b.schedules == 40


def test_a_dpor_find_names_dpor() -> None:
    result = explore("classic:twostage", shrink=False)
    assert result.failure is not None
    assert member_at(result.failure.index - 1).name == result.found_by == "dpor"
    assert result.failure.found_by == "dpor"
    assert "found by dpor" in result.failure.describe()


def test_a_complete_dpor_share_says_complete() -> None:
    # dpor completes twostage_fixed in 4 traces: its slots (2 in every 9) end by index 27
    clean = explore("classic:twostage_fixed", schedules=100)
    assert clean.failure is None
    assert clean.complete
    short = explore("classic:twostage_fixed", schedules=8)  # 2 dpor slots: not every trace
    assert short.failure is None
    assert not short.complete
    buggy = explore("classic:account", schedules=400, stop_on_first=False)
    assert buggy.failure is not None
    assert not buggy.complete


def test_the_token_names_the_member_and_old_tokens_still_decode() -> None:
    result = explore("ctx-dereg-during-end", "odp2014-ctx", schedules=2000, seed=1)
    failure = result.failure
    assert failure is not None
    assert failure.token
    assert failure.shrunk_token
    assert decode_token(failure.token).found_by == result.found_by
    assert decode_token(failure.shrunk_token).found_by == result.found_by
    target = Target.resolve("ctx-dereg-during-end", "odp2014-ctx")
    old = encode_token(target, failure.schedule, failure.execution, 50_000)
    assert decode_token(old).found_by is None  # a version 2 token without the field


USER_MODULE = """
from odp_async import checkpoint, task_group


async def racy_counter(tasks: int) -> None:
    box = {"n": 0}

    async def bump() -> None:
        seen = box["n"]
        await checkpoint("read")
        box["n"] = seen + 1

    async with task_group() as tg:
        for _ in range(tasks):
            tg.start_soon(bump)
    assert box["n"] == tasks, f"lost update: {box['n']}"
"""


def test_user_function_portfolio_find_replays_in_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "portfolio_usermod.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = check("portfolio_usermod:racy_counter", 3, schedules=500, seed=7)
    failure = result.failure
    assert failure is not None
    assert failure.shrunk_token is not None
    assert result.config.chooser == "portfolio"
    assert result.found_by in MEMBERS
    code = (
        "import sys\n"
        "from odp_async.explore.tokens import decode_token, replay_token\n"
        "token = sys.argv[1]\n"
        "execution = replay_token(token)\n"
        "print(decode_token(token).found_by, execution.failure.kind)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, failure.shrunk_token],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(), "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [result.found_by, failure.violation.kind]


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_portfolio_snippet_runs_from_a_user_module(tmp_path: Path) -> None:
    section = "\n### The default portfolio, a time budget, a minimal shrink\n"
    body = README.read_text().split(section, 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", body, re.S)
    (tmp_path / "readme_portfolio.py").write_text(block)
    proc = subprocess.run(
        [sys.executable, "-c", "import readme_portfolio"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**_env(), "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    first, second, claim, counts = proc.stdout.splitlines()
    index, member = first.split()
    assert int(index) >= 1
    assert member in MEMBERS
    assert second == "1 True"
    # the correct program: complete, stopped where the dpor member completed
    assert claim == "complete: 90 traces, no violation"
    assert counts == "406 90"


def test_the_cli_explores_with_the_portfolio_by_default() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "odp_async.cli", "explore", "classic:twostage", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # a violation
    data = json.loads(proc.stdout)
    assert data["chooser"] == "portfolio"
    assert data["found_by"] == "dpor"
    assert data["failure"]["schedule_index"] == 7
    assert "with portfolio" in proc.stderr


NONDETERMINISTIC = """
from odp_async import checkpoint, task_group

CALLS = [0]


async def shifting() -> None:
    # each call starts one more task than the last (2 to 5: always a choice, whichever
    # call the dpor share's first run is): no run replays another's choices
    CALLS[0] += 1

    async def step() -> None:
        await checkpoint("step")

    async with task_group() as tg:
        for _ in range(2 + CALLS[0] % 4):
            tg.start_soon(step)
"""


def test_a_program_that_does_not_replay_falls_back_to_random(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "portfolio_shifting.py").write_text(textwrap.dedent(NONDETERMINISTIC))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = check("portfolio_shifting:shifting", schedules=40)
    assert result.failure is None
    assert result.schedules == 40
    assert not result.complete


LATE_READER = """
from odp_async import checkpoint, task_group


async def late_reader(writers: int) -> None:
    box = {"a": 0, "b": 0}

    async def writer() -> None:
        await checkpoint("write a")
        box["a"] = 1
        await checkpoint("write b")
        box["b"] = 1

    async def reader() -> None:
        await checkpoint("read")
        assert box["a"] == box["b"], "the reader saw a writer half done"

    async with task_group() as tg:
        for _ in range(writers):
            tg.start_soon(writer)
            await checkpoint("started one")
        tg.start_soon(reader)
"""


def test_the_sweep_finds_a_late_reader_the_same_for_any_seed_and_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one preemption, in the first writer, then the reader started after 30 writers
    (tmp_path / "portfolio_late.py").write_text(textwrap.dedent(LATE_READER))
    monkeypatch.syspath_prepend(str(tmp_path))
    runs = [
        check("portfolio_late:late_reader", 30, schedules=2000, seed=seed, **extra)
        for seed, extra in [(0, {}), (1, {}), (0, {"jobs": 2}), (2, {"jobs": 2})]
    ]
    (index,) = {r.failure.index for r in runs if r.failure is not None}
    assert [r.found_by for r in runs] == ["sweep"] * 4
    assert member_at(index - 1).name == "sweep"
    failure = runs[0].failure
    assert failure is not None
    assert decode_token(failure.token).found_by == "sweep"
    assert failure.shrunk_token is not None
    code = (
        "import sys\n"
        "from odp_async.explore.tokens import decode_token, replay_token\n"
        "for token in sys.argv[1:]:\n"
        "    execution = replay_token(token)\n"
        "    print(decode_token(token).found_by, execution.failure.kind)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, failure.token, failure.shrunk_token],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(), "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    kind = failure.violation.kind
    assert proc.stdout.split() == ["sweep", kind, "sweep", kind]


def test_twostage_100_is_found_by_the_sweep_in_every_seed() -> None:
    # SCTBench's twostage_100 (threads started at scheduling points): the sweep's 104th
    # schedule, at index 929, in every seed (it is a function of the program alone);
    # bench_portfolio.py shows nothing finds it before
    target = Target.resolve("classic:twostage_100")
    for seed in range(10):
        config = ExploreConfig(seed=seed, start=929, schedules=1, shrink=False)
        result = explore_target(target, config)
        assert result.failure is not None
        assert result.failure.index == 930
        assert result.found_by == "sweep"
        assert result.verdict is Verdict.FOUND


def test_sweep_slots_past_the_sweep_run_random() -> None:
    # classic:account has 6 one-preemption schedules: its 7th sweep slot runs random
    config = ExploreConfig()
    sweep_slots = [i for i in range(200) if member_at(i).name == "sweep"]
    probes = Probes(k=10, sweep=6)
    assert [seeded_chooser(config, i, probes)[0] for i in sweep_slots[:7]] == ["sweep"] * 6 + [
        "random"
    ]
    _, chooser = seeded_chooser(config, sweep_slots[3], probes)
    assert isinstance(chooser, SweepChooser)
    assert chooser.ordinal == ordinal(sweep_slots[3]) == 3


def test_sweep_finds_are_the_same_for_any_executor_jobs_and_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "portfolio_late_shard.py").write_text(textwrap.dedent(LATE_READER))
    monkeypatch.syspath_prepend(str(tmp_path))
    target = Target.resolve("portfolio_late_shard:late_reader", args=(6,))
    base = ExploreConfig(schedules=120, seed=4, shrink=False, stop_on_first=False)
    whole = explore_target(target, base)
    inline = explore_target(target, base, executor=InlineExecutor())
    pooled = explore_target(target, base.evolve(jobs=2))
    a = explore_target(target, base.evolve(schedules=50))
    b = explore_target(target, base.evolve(start=50, schedules=70))
    assert whole.failing == inline.failing == pooled.failing
    assert whole.failing == tuple(sorted(a.failing + b.failing))
    by_member = {member_at(i - 1).name for i in b.failing}
    assert "sweep" in by_member  # the second shard's sweep slots resumed at their ordinal
