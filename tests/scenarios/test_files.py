"""Scenario files: every example matches its Python twin, every mistake is named.

The examples in ``examples/`` are the built-in scenarios written as TOML.  A file that
keeps its twin's setup order, actor order, operations and gates creates the same tasks
reaching the same checkpoints, so under the same chooser both make the *same schedule*
(asserted here, which is stronger than the same verdict the brief asks for).
"""

from __future__ import annotations

import pathlib
import re
import textwrap

import pytest

from odp_async._runtime.choosers import Chooser, FifoChooser, RandomChooser, ScriptChooser
from odp_async.errors import InvalidArgument
from odp_async.explore.target import Execution, Target
from odp_async.odp import PROTOCOLS
from odp_async.scenarios import BUILTIN, ScenarioUsageError, Verdict, files, verdict_of
from odp_async.scenarios.files import ScenarioFileError, load_scenario, read_scenario

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))
SEEDS = range(10)
MAX_STEPS = 20_000


def run(path: pathlib.Path, protocol: str, chooser: Chooser) -> Execution:
    target = Target(load_scenario(path), protocol, {}, str(path))
    return target.run(chooser, max_steps=MAX_STEPS)


def run_builtin(name: str, protocol: str, chooser: Chooser) -> Execution:
    return Target(BUILTIN[name], protocol, {}, name).run(chooser, max_steps=MAX_STEPS)


# --- the examples ---------------------------------------------------------------------------


def test_every_builtin_has_an_example() -> None:
    names = {load_scenario(p).name for p in EXAMPLE_FILES}
    assert names == set(BUILTIN)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_loads_as_its_twin_says(path: pathlib.Path) -> None:
    scenario = load_scenario(path)
    twin = BUILTIN[scenario.name]
    assert path.stem == scenario.name
    assert scenario.needs_world
    assert scenario.actors == twin.actors
    assert scenario.summary == twin.summary
    assert scenario.script == twin.script
    assert scenario.script_unfollowed == twin.script_unfollowed
    for protocol in PROTOCOLS:
        assert scenario.expected_for(protocol) is twin.expected_for(protocol)
        assert scenario.script_expected_for(protocol) is twin.script_expected_for(protocol)
    for actor in scenario.actors:
        assert f"  {actor}" in scenario.description
    assert read_scenario(path).protocols == tuple(PROTOCOLS)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_runs_as_its_twin(path: pathlib.Path) -> None:
    """Same verdict, and the same schedule and step count, under the twin's script and
    under RandomChooser seeds 0..9, for every protocol."""
    name = load_scenario(path).name
    twin = BUILTIN[name]
    for protocol in PROTOCOLS:
        if twin.script:
            chooser, twin_chooser = ScriptChooser(twin.script), ScriptChooser(twin.script)
            mine = run(path, protocol, chooser)
            theirs = run_builtin(name, protocol, twin_chooser)
            assert chooser.is_done == twin_chooser.is_done
            assert verdict_of(mine.violations) is verdict_of(theirs.violations)
            assert mine.verdict is twin.script_expected_for(protocol), protocol
            assert mine.sim.schedule == theirs.sim.schedule
        for seed in SEEDS:
            mine = run(path, protocol, RandomChooser(seed))
            theirs = run_builtin(name, protocol, RandomChooser(seed))
            where = f"{protocol} seed {seed}"
            assert verdict_of(mine.violations) is verdict_of(theirs.violations), where
            assert mine.sim.schedule == theirs.sim.schedule, where
            assert mine.sim.steps == theirs.sim.steps, where
            assert [v.kind for v in mine.violations] == [v.kind for v in theirs.violations]


def test_outcomes_are_keyed_by_actor_and_op() -> None:
    path = EXAMPLES / "registration-race.toml"
    execution = run(path, "odp2014-ctx", ScriptChooser(BUILTIN["registration-race"].script))
    assert execution.sim.value == {
        "setup.0": "ok",
        "setup.1": "ok",
        "setup.2": "ok",
        "setup.3": "ok",
        "madvise.0": "ok",
        "register.0": "ok",
        "fault.0": "resolved",
        "dma.0": "ok",
    }


def test_the_documented_example_is_a_working_scenario(tmp_path: pathlib.Path) -> None:
    """The example in the module docstring loads and runs as registration-race does."""
    doc = files.__doc__
    assert doc is not None
    block = doc.split("loads this one too)::\n", 1)[1].split("\n    The setup is", 1)[0]
    path = tmp_path / "documented.toml"
    path.write_text(textwrap.dedent(block))
    scenario = load_scenario(path)
    twin = BUILTIN["registration-race"]
    assert scenario.script == twin.script
    for protocol in ("naive", "odp2014-ctx"):
        mine = run(path, protocol, ScriptChooser(twin.script))
        theirs = run_builtin(twin.name, protocol, ScriptChooser(twin.script))
        assert mine.sim.schedule == theirs.sim.schedule
        assert mine.verdict is theirs.verdict is twin.expected_for(protocol)


# --- a scenario a user writes -----------------------------------------------------------------

USER = """\
# A user's own race: mremap moves B's pages away while a fault on B is in flight.
[scenario]
name = "mremap-vs-fault"
summary = "a fault on B races an mremap that moves B's pages away"
protocols = ["naive", "odp2014", "interval-seq"]

[setup]
ops = [
    { op = "mmap", start = 0x0, pages = 8 },
    { op = "populate", start = 0x0, pages = 8 },
    { op = "register", mr = "B", start = 0x0, pages = 8 },
]

[[actor]]
name = "fault"
ops = [{ op = "fault", mr = "B", address = 0x2000, write = true }]

[[actor]]
name = "mremap"
ops = [
    { op = "mremap", start = 0x0, pages = 8, to = 0x100000 },
    { op = "cpu_fault", address = 0x102000, write = true },
]

[[actor]]
name = "dma"
after = ["fault"]
ops = [{ op = "dma", mr = "B", address = 0x2000 }]

[expected]
naive = "found"

[script]
steps = [["fault", "B.umem_mutex"], ["mremap"], ["fault"], ["dma"]]
"""


@pytest.fixture
def user_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "mremap-vs-fault.toml"
    path.write_text(USER)
    return path


def test_user_scenario_round_trip(user_file: pathlib.Path) -> None:
    loaded = read_scenario(user_file)
    scenario = loaded.scenario
    assert loaded.protocols == ("naive", "odp2014", "interval-seq")
    assert scenario.name == "mremap-vs-fault"
    assert scenario.actors == ("fault", "mremap", "dma")
    assert scenario.expected_for("naive") is Verdict.FOUND
    assert scenario.expected_for("interval-seq") is Verdict.CLEAN
    assert "mremap [0x0, 0x8000) to 0x100000" in scenario.description
    assert "dma (after fault):" in scenario.description

    # The script shows the bug under naive; the fix keeps the same schedule clean.
    chooser = ScriptChooser(scenario.script)
    scripted = run(user_file, "naive", chooser)
    assert chooser.is_done
    assert scripted.verdict is Verdict.FOUND
    assert {v.kind for v in scripted.violations} >= {"stale-translation"}
    assert run(user_file, "interval-seq", ScriptChooser(scenario.script)).verdict is Verdict.CLEAN

    # Explore: random schedules find naive's bug, and never anything under the fixes.
    target = Target.resolve(scenario, "naive")
    verdicts = [target.run(RandomChooser(s), max_steps=MAX_STEPS).verdict for s in range(30)]
    assert Verdict.FOUND in verdicts
    for protocol in ("odp2014", "interval-seq"):
        target = Target(scenario, protocol, {}, str(user_file))
        for seed in range(30):
            execution = target.run(RandomChooser(seed), max_steps=MAX_STEPS)
            assert execution.verdict is Verdict.CLEAN, (protocol, seed, execution.violations)
            assert execution.sim.value["mremap.1"] == "ok"  # type: ignore[index]


def test_an_unordered_use_of_an_mr_is_a_usage_error_of_the_file(tmp_path: pathlib.Path) -> None:
    """The static check only knows B is registered somewhere; without an `after`, a
    fault that runs first finds no B: the file's mistake, raised out of the run as a
    `ScenarioUsageError` (never the protocol's violation)."""
    text = USER.replace('name = "dma"\nafter = ["fault"]', 'name = "dma"')
    text = text.replace('    { op = "register", mr = "B", start = 0x0, pages = 8 },\n', "")
    register = '{ op = "register", mr = "B", start = 0x0, pages = 8 }'
    text += f'\n[[actor]]\nname = "reg"\nops = [{register}]\n'
    path = tmp_path / "unordered.toml"
    path.write_text(text)
    with pytest.raises(ScenarioUsageError) as caught:
        run(path, "naive", FifoChooser())
    assert str(caught.value) == (
        f"{path}: actor[0].ops[0]: fault MR B at 0x2000 write ran before any register of "
        "MR B did; expected an 'after' that orders them"
    )


# --- every mistake, named ---------------------------------------------------------------------


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: pathlib.Path, old: str, new: str) -> ScenarioFileError:
    assert old in USER, old
    path = write(tmp_path, USER.replace(old, new, 1))
    with pytest.raises(ScenarioFileError) as info:
        load_scenario(path)
    assert isinstance(info.value, InvalidArgument)
    assert str(info.value).startswith(str(path)), str(info.value)
    return info.value


CASES = [
    pytest.param(
        '[scenario]\nname = "mremap-vs-fault"',
        '[scenarios]\nname = "mremap-vs-fault"',
        "scenarios",
        ["scenarios: unknown key 'scenarios'", "did you mean 'scenario'?"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        '{ op = "fault", mr = "B", address = 0x2000, write = true }',
        '{ op = "fault", mr = "B", adress = 0x2000, write = true }',
        "actor[0].ops[0].adress",
        ["unknown key 'adress' for op 'fault'", "did you mean 'address'?"],
        id="unknown-op-key",
    ),
    pytest.param(
        'name = "dma"\nafter',
        'name = "dma"\nbefore = []\nafter',
        "actor[2].before",
        ["unknown key 'before'; expected one of: name, after, ops"],
        id="unknown-actor-key",
    ),
    pytest.param(
        '{ op = "mmap", start = 0x0, pages = 8 }',
        '{ op = "mmap", start = 0x0, pages = "8" }',
        "setup.ops[0].pages",
        ["expected a page count (an integer >= 1), got '8' (string)"],
        id="wrong-type",
    ),
    pytest.param(
        "write = true }]",
        'write = "yes" }]',
        "actor[0].ops[0].write",
        ["expected true or false, got 'yes' (string)"],
        id="wrong-type-bool",
    ),
    pytest.param(
        '{ op = "populate", start = 0x0, pages = 8 }',
        '{ op = "populate", start = 0x0 }',
        "setup.ops[1].pages",
        ["missing required key of op 'populate'"],
        id="missing-key",
    ),
    pytest.param(
        'name = "mremap-vs-fault"\n',
        "",
        "scenario.name",
        ["missing required key"],
        id="missing-name",
    ),
    pytest.param(
        '{ op = "fault",',
        '{ op = "faul",',
        "actor[0].ops[0].op",
        ["unknown operation 'faul'", "mmap, munmap", "did you mean 'fault'?"],
        id="unknown-op",
    ),
    pytest.param(
        'after = ["fault"]',
        'after = ["faults"]',
        "actor[2].after[0]",
        ["no actor named 'faults'; expected one of: fault, mremap, dma"],
        id="after-names-a-missing-actor",
    ),
    pytest.param(
        'ops = [{ op = "dma", mr = "B", address = 0x2000 }]',
        'ops = [{ op = "dma", mr = "C", address = 0x2000 }]',
        "actor[2].ops[0].mr",
        ["no 'register' op in the setup or any actor registers MR 'C'", "(B)"],
        id="unregistered-mr",
    ),
    pytest.param(
        '{ op = "mmap", start = 0x0, pages = 8 },',
        '{ op = "mmap", start = 0x0, pages = 8, file = "data" },',
        "setup.ops[0].file",
        ["no file named 'data' in setup.files; expected one of: none declared"],
        id="undeclared-file",
    ),
    pytest.param(
        '{ op = "cpu_fault", address = 0x102000, write = true }',
        '{ op = "cpu_fault", address = 0x202000, write = true }',
        "actor[1].ops[1].address",
        ["0x202000 is not inside the mappings", "[0x0, 0x8000), [0x100000, 0x108000)"],
        id="address-outside-every-vma",
    ),
    pytest.param(
        '{ op = "register", mr = "B", start = 0x0, pages = 8 }',
        '{ op = "register", mr = "B", start = 0x0, pages = 9 }',
        "setup.ops[2].start",
        ["register MR B [0x0, 0x9000): the range [0x0, 0x9000) is not inside", "[0x0, 0x8000)"],
        id="mr-range-outside-every-vma",
    ),
    pytest.param(
        '{ op = "dma", mr = "B", address = 0x2000 }',
        '{ op = "dma", mr = "B", address = 0x8000 }',
        "actor[2].ops[0].address",
        ["[0x8000, 0x9000) is outside MR B ([0x0, 0x8000))"],
        id="address-outside-the-mr",
    ),
    pytest.param(
        '{ op = "mremap", start = 0x0, pages = 8, to = 0x100000 }',
        '{ op = "mremap", start = 0x0, pages = 8, to = 0x100800 }',
        "actor[1].ops[0].to",
        ["got 0x100800, which is misaligned (0x800 bytes into a 0x1000-byte page)"],
        id="misaligned",
    ),
    pytest.param(
        'naive = "found"\n',
        'naive = "broken"\n',
        "expected.naive",
        ["unknown verdict 'broken' (string); expected one of: clean, found, deadlock, starvation"],
        id="unknown-verdict",
    ),
    pytest.param(
        'naive = "found"\n',
        'naive = "inconclusive"\n',
        "expected.naive",
        ["unknown verdict 'inconclusive' (string); expected one of: clean, found, deadlock"],
        id="inconclusive-is-no-expectation",
    ),
    pytest.param(
        'naive = "found"\n',
        'odp-2014 = "found"\n',
        "expected.odp-2014",
        ["unknown protocol 'odp-2014'", "did you mean 'odp2014'?"],
        id="unknown-protocol-in-expected",
    ),
    pytest.param(
        'protocols = ["naive", "odp2014", "interval-seq"]',
        'protocols = ["naive", "odp2015", "interval-seq"]',
        "scenario.protocols[1]",
        ["unknown protocol 'odp2015'; expected one of: naive, odp2014"],
        id="unknown-protocol",
    ),
    pytest.param(
        'protocols = ["naive", "odp2014", "interval-seq"]',
        'protocols = ["odp2014", "interval-seq"]',
        "expected.naive",
        ["protocol 'naive' is not in scenario.protocols (odp2014, interval-seq)"],
        id="expected-outside-protocols",
    ),
    pytest.param(
        'name = "mremap"',
        'name = "fault"',
        "actor[1].name",
        ["duplicate actor name 'fault' (actor[0] has it)"],
        id="duplicate-actor",
    ),
    pytest.param(
        'name = "fault"\nops',
        'name = "fault"\nafter = ["dma"]\nops',
        "actor[0].after",
        ["cycle", "fault waits for dma waits for fault"],
        id="cycle",
    ),
    pytest.param(
        'name = "fault"\nops',
        'name = "fault"\nafter = ["fault"]\nops',
        "actor[0].after[0]",
        ["actor 'fault' cannot wait for itself"],
        id="self-wait",
    ),
    pytest.param(
        'name = "mremap"',
        'name = "main"',
        "actor[1].name",
        ["actor name 'main' is reserved"],
        id="reserved-actor-name",
    ),
    pytest.param(
        '["mremap"], ["fault"]',
        '["mremap"], ["faults"]',
        "script.steps[2][0]",
        ["no actor named 'faults'"],
        id="script-names-a-missing-actor",
    ),
    pytest.param(
        '["mremap"], ["fault"]',
        '["mremap"], "fault"',
        "script.steps[2]",
        ['expected [actor] or [actor, "until text"]', "got 'fault' (string)"],
        id="script-step-shape",
    ),
    pytest.param(
        'ops = [{ op = "fault", mr = "B", address = 0x2000, write = true }]',
        'ops = [{ op = "wait", completion = "go" }]',
        "actor[0].ops[0].completion",
        ["no operation completes 'go'"],
        id="wait-never-completed",
    ),
    pytest.param(
        'ops = [{ op = "dma", mr = "B", address = 0x2000 }]',
        "ops = []",
        "actor[2].ops",
        ["expected at least one operation, got []"],
        id="empty-ops",
    ),
]


@pytest.mark.parametrize(("old", "new", "key", "fragments"), CASES)
def test_mistakes_name_the_key_the_value_and_what_was_expected(
    tmp_path: pathlib.Path, old: str, new: str, key: str, fragments: list[str]
) -> None:
    error = error_of(tmp_path, old, new)
    message = str(error)
    assert error.key == key
    assert message.startswith(f"{error.path}: {key}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_a_range_an_actor_maps_is_fine(tmp_path: pathlib.Path) -> None:
    """The static check counts every actor's mmap/mremap, not only the setup's."""
    ok = USER.replace("address = 0x102000", "address = 0x107000")
    read_scenario(write(tmp_path, ok))
    mapped_late = USER.replace(
        '{ op = "cpu_fault", address = 0x102000, write = true }',
        '{ op = "mmap", start = 0x200000, pages = 1 }, { op = "madvise", start = 0x200000, '
        "pages = 1 }",
    )
    read_scenario(write(tmp_path, mapped_late))


def test_setup_ops_see_only_earlier_setup_mappings(tmp_path: pathlib.Path) -> None:
    mmap = '    { op = "mmap", start = 0x0, pages = 8 },\n'
    populate = '    { op = "populate", start = 0x0, pages = 8 },\n'
    text = USER.replace(mmap + populate, populate + mmap)
    assert text != USER
    with pytest.raises(ScenarioFileError, match=r"setup\.ops\[0\]\.start: .*earlier setup"):
        load_scenario(write(tmp_path, text))


def test_syntax_error_names_the_line(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, USER.replace('summary = "a fault', 'summary "a fault', 1))
    with pytest.raises(ScenarioFileError) as info:
        load_scenario(path)
    message = str(info.value)
    assert info.value.line == 4
    assert message.startswith(f"{path}, line 4, column 9: TOML syntax error: "), message
    assert 'summary "a fault on B' in message  # the offending line is quoted


def test_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(InvalidArgument, match=re.escape(f"{path}: no such scenario file")):
        load_scenario(path)
    with pytest.raises(InvalidArgument, match="is a directory"):
        load_scenario(tmp_path)


def test_not_utf8(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[scenario]\nname = "caf\xe9"\n')
    with pytest.raises(ScenarioFileError, match=r"not UTF-8 text \(byte 22\)"):
        load_scenario(path)


def test_a_write_fault_on_a_read_only_mr(tmp_path: pathlib.Path) -> None:
    error = error_of(
        tmp_path,
        '{ op = "register", mr = "B", start = 0x0, pages = 8 }',
        '{ op = "register", mr = "B", start = 0x0, pages = 8, writable = false }',
    )
    assert error.key == "actor[0].ops[0].write"
    assert "registered read-only" in str(error)


def test_wait_in_setup(tmp_path: pathlib.Path) -> None:
    error = error_of(
        tmp_path,
        '    { op = "mmap", start = 0x0, pages = 8 },\n',
        '    { op = "wait", completion = "x" },\n    { op = "mmap", start = 0x0, pages = 8 },\n',
    )
    assert error.key == "setup.ops[0].op"
    assert "wait forever" in str(error)
