"""`StreamChooser`: schedule ``index`` of an exploration seeded with ``seed``, from a
BLAKE2b counter stream.  Its answers are pinned by their definition (so the stream
cannot change silently), are the same in another process, and the sim's plain loop
(which inlines it) takes the same steps as the general loop; the explorer's random
schedule ``i`` is ``StreamChooser(seed, i)``, and a run log from before it is refused."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from odp_async import sim
from odp_async._runtime.choosers import StreamChooser
from odp_async.errors import InvalidArgument
from odp_async.explore import explore
from odp_async.explore.target import Target

from .test_plain_loop import abba, failing, locks


def _words(seed: int, index: int, blocks: int) -> list[int]:
    out: list[int] = []
    for k in range(blocks):
        digest = hashlib.blake2b(f"{seed}/{index}/{k}".encode()).digest()
        out.extend(struct.unpack("<16I", digest))
    return out


def test_answers_follow_the_definition_across_blocks() -> None:
    c = StreamChooser(3, 7)
    options = [None] * 5
    got = [c.choose(options, None) if k % 2 else c.draw(9, "x") for k in range(40)]
    want = [w % (5 if k % 2 else 9) for k, w in enumerate(_words(3, 7, 3)[:40])]
    assert got == want  # 40 answers: three blocks of 16 words


def test_pinned_answers_and_another_process_agrees() -> None:
    c = StreamChooser(0, 0)
    ours = [c.choose([None] * 5, None) for _ in range(20)]
    assert ours == [1, 2, 0, 2, 0, 0, 3, 1, 0, 0, 2, 2, 4, 3, 0, 3, 1, 4, 1, 0]
    code = (
        "import json\n"
        "from odp_async._runtime.choosers import StreamChooser\n"
        "c = StreamChooser(0, 0)\n"
        "print(json.dumps([c.choose([None] * 5, None) for _ in range(20)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ours


@pytest.mark.parametrize(("seed", "index"), [(True, 0), (0, "1"), (1.5, 0), (0, None)])
def test_bad_arguments_are_refused(seed: Any, index: Any) -> None:
    with pytest.raises(InvalidArgument, match="must be an int"):
        StreamChooser(seed, index)


class General:
    """`StreamChooser`'s answers, asked at every step: this forces the general loop."""

    ask_always = True

    def __init__(self, seed: int, index: int) -> None:
        self.inner = StreamChooser(seed, index)

    def new_execution(self) -> None:
        pass

    def choose(self, runnable: Sequence[Any], last: Any) -> int:
        return self.inner.choose(runnable, last) if len(runnable) > 1 else 0

    def draw(self, n: int, label: object) -> int:
        return self.inner.draw(n, label)


@pytest.mark.parametrize("program", [locks, failing, abba])
def test_the_plain_loop_inlines_it_exactly(program: Any) -> None:
    for index in range(20):
        plain = sim.run(program, chooser=StreamChooser(5, index))
        general = sim.run(program, chooser=General(5, index))
        assert (plain.outcome, plain.schedule, plain.steps, plain.time) == (
            general.outcome,
            general.schedule,
            general.steps,
            general.time,
        )


def test_explore_schedule_i_is_stream_chooser_seed_i() -> None:
    target = Target.resolve("classic:lost-update")
    result = explore(
        "classic:lost-update", chooser="random", seed=11, schedules=30, stop_on_first=False
    )
    failing_here = [
        i + 1
        for i in range(30)
        if target.run(StreamChooser(11, i), max_steps=result.config.max_steps).is_failure
    ]
    assert failing_here  # the program has the bug: some schedules show it
    assert list(result.failing) == failing_here


def test_a_run_log_from_before_the_stream_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    explore(
        "classic:lost-update",
        chooser="random",
        schedules=20,
        resume=log,
        stop_on_first=False,
        shrink=False,
    )
    lines = log.read_text().splitlines()
    header = json.loads(lines[0])
    del header["stream"]  # what an older odp_async wrote
    log.write_text("\n".join([json.dumps(header, sort_keys=True), *lines[1:]]) + "\n")
    with pytest.raises(InvalidArgument, match=r"log of another run: its stream is None"):
        explore("classic:lost-update", chooser="random", schedules=20, resume=log)
