"""The races of the 2014 review thread, replayed deterministically under the sim.

Each test follows a fixed script (a readable list of ``(task, until)`` steps that the
`ScriptChooser` turns into a fixed choice list), checks that the script was followed to
its end where it must be, and checks the checker's verdict per protocol.  The recorded
choice list of the run is then replayed with `ReplayChooser` and must give the same
violations at the same steps.
"""

from __future__ import annotations

import pytest

from odp_async._runtime.choosers import ReplayChooser, ScriptChooser
from odp_async.odp import PROTOCOLS
from odp_async.scenarios import BUILTIN, Verdict, verdict_of
from odp_async.world import WorldRun, run_world

ALL = list(PROTOCOLS)


def scripted(name: str, protocol: str, **options: object) -> tuple[WorldRun, ScriptChooser]:
    scenario = BUILTIN[name]
    chooser = ScriptChooser(scenario.script)
    run = run_world(scenario.body, protocol=protocol, options=dict(options), chooser=chooser)
    assert run.sim.error is None, run.sim.error
    return run, chooser


def test_registration_count_goes_negative_without_the_clamp() -> None:
    """2014-09-07: madvise starts; B registers; madvise ends -> B's count is -1."""
    run, chooser = scripted("registration-count", "odp2014", clamp=False)
    assert chooser.is_done
    assert run.kinds == ("unbalanced-notifier",)
    assert "went to -1" in run.violations[0].detail
    assert run.violations[0].tasks == ("madvise",)


def test_odp2014_clamps_the_count_and_warns() -> None:
    run, chooser = scripted("registration-count", "odp2014")
    assert chooser.is_done
    assert run.violations == ()
    warnings = [e.detail for e in run.events if e.kind == "warning"]
    assert warnings == ["B: got notifier end call without a previous start call"]


def test_stray_end_corrupts_under_odp2014() -> None:
    """2014-09-11: the clamped count lets a fault commit inside a later invalidation, and
    the device reads the freed frame."""
    run, chooser = scripted("stray-end-corruption", "odp2014")
    assert chooser.is_done
    assert run.kinds == ("stale-translation", "stale-dma")
    stale = run.violations[0]
    assert stale.addresses == (28 * 4096,)
    assert stale.tasks == ("I2",)
    assert "unmapped while B still translates" in stale.detail


@pytest.mark.parametrize("protocol", ["odp2014-ctx", "range-list", "kvm-seq", "interval-seq"])
def test_the_same_schedule_is_clean_under_the_fixes(protocol: str) -> None:
    run, _ = scripted("stray-end-corruption", protocol)
    assert run.violations == ()
    assert run.sim.value is not None
    assert run.sim.value["fault"] == "resolved"  # type: ignore[index]
    assert run.sim.value["dma"] == "ok"  # type: ignore[index]


def test_with_munmap_as_the_later_invalidation_it_is_only_an_accounting_error() -> None:
    """munmap holds mmap_sem for write across its start..end, so the fault's gup waits
    for it: the stray end is clamped (a warning), and nothing stale is installed."""
    run, chooser = scripted("stray-end-munmap", "odp2014")
    assert chooser.is_done
    assert run.violations == ()
    assert any(e.kind == "warning" for e in run.events)
    assert run.sim.value["fault"] == "failed"  # type: ignore[index]


def test_the_pool_deadlock_names_the_cycle() -> None:
    run, _ = scripted("fixed-pool-deadlock", "hmm-pool")
    assert run.sim.outcome == "deadlock"
    assert run.kinds == ("deadlock",)
    assert run.sim.deadlock is not None
    assert run.sim.deadlock.describe().startswith(
        "munmap waits for Mutex 'hugefile.i_mmap' held by truncate; "
        "truncate waits for SlotPool 'hmm pool' (0 free) held by munmap"
    )


@pytest.mark.parametrize("protocol", [p for p in ALL if p != "hmm-pool"])
def test_the_pool_schedule_does_not_deadlock_without_the_pool(protocol: str) -> None:
    run, chooser = scripted("fixed-pool-deadlock", protocol)
    assert chooser.is_done
    assert run.sim.outcome == "ok"


@pytest.mark.parametrize("protocol", ALL)
def test_exit_during_faults(protocol: str) -> None:
    """No fault succeeds after release, no callback touches a deregistered region."""
    run, _ = scripted("exit-during-faults", protocol)
    if protocol == "naive":
        assert "use-after-release" in run.kinds
        assert "stale-translation" in run.kinds
    else:
        # A fault may still finish first (kvm-seq's commit holds mmu_lock, which release
        # then waits for); what must not happen is a success after the release.
        assert run.violations == ()


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("protocol", [p for p in ALL if p != "naive"])
def test_exit_during_faults_under_random_schedules(protocol: str, seed: int) -> None:
    run = run_world(BUILTIN["exit-during-faults"].body, protocol=protocol, seed=seed)
    assert run.sim.error is None
    assert run.violations == ()


def test_naive_is_caught_by_fault_vs_munmap() -> None:
    run, chooser = scripted("fault-vs-munmap", "naive")
    assert chooser.is_done
    assert run.kinds[0] == "stale-translation"
    assert run.violations[0].tasks == ("fault",)


@pytest.mark.parametrize("protocol", [p for p in ALL if p != "naive"])
def test_fault_vs_munmap_is_clean_elsewhere(protocol: str) -> None:
    run, _ = scripted("fault-vs-munmap", protocol)
    assert run.violations == ()


@pytest.mark.parametrize(
    ("name", "protocol"),
    [
        ("stray-end-corruption", "odp2014"),
        ("registration-race", "odp2014"),
        ("exit-during-faults", "naive"),
        ("fixed-pool-deadlock", "hmm-pool"),
    ],
)
def test_the_recorded_choice_list_replays_the_same_violations(name: str, protocol: str) -> None:
    first, _ = scripted(name, protocol)
    again = run_world(
        BUILTIN[name].body, protocol=protocol, chooser=ReplayChooser(first.sim.schedule)
    )
    assert again.violations == first.violations
    assert again.sim.steps == first.sim.steps


@pytest.mark.parametrize("name", [n for n, s in BUILTIN.items() if s.script])
@pytest.mark.parametrize("protocol", ALL)
def test_every_scripted_scenario_meets_its_expectation(name: str, protocol: str) -> None:
    run, _ = scripted(name, protocol)
    assert verdict_of(run.violations) is BUILTIN[name].script_expected_for(protocol), [
        str(v) for v in run.violations
    ]


def test_the_merged_ctx_code_without_the_seq_bump_has_a_window() -> None:
    """odp2014-ctx as merged (activation does not bump seq): a fault that read seq while B
    was inactive and gup'd before the zap commits right after B's activation."""
    scenario = BUILTIN["registration-race"]
    script = (
        ("madvise", "after start"),
        ("register", None),
        ("fault", "B.umem_mutex"),
        ("madvise", None),
        ("fault", None),
        ("dma", None),
    )
    for bump, expected in ((False, Verdict.FOUND), (True, Verdict.CLEAN)):
        chooser = ScriptChooser(script)
        run = run_world(
            scenario.body,
            protocol="odp2014-ctx",
            options={"activation_bumps_seq": bump},
            chooser=chooser,
        )
        assert verdict_of(run.violations) is expected, (bump, [str(v) for v in run.violations])
    assert chooser.is_done
