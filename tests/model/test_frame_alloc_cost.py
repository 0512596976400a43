"""Trial 21c f3: populating N pages cost O(N^2) (each `alloc` scanned every frame in use
from frame 0), so a scenario of 32,000 pages took minutes per schedule and one of a
million never finished.  In runs that keep no footprints `alloc` now takes the lowest
free frame off a heap; in runs that do, it still notes every frame it looks at."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from odp_async.check import Checker
from odp_async.mm import Frame, PhysicalMemory


class _CountingFrames:
    """Stands in for `PhysicalMemory._frames`, counting the frames its scans yield."""

    def __init__(self, frames: Any) -> None:
        self.frames = frames
        self.yielded = 0

    def values(self) -> Iterator[Frame]:
        for frame in self.frames.values():
            self.yielded += 1
            yield frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self.frames, name)

    def __getitem__(self, key: int) -> Frame:
        return self.frames[key]

    def __setitem__(self, key: int, value: Frame) -> None:
        self.frames[key] = value

    def __len__(self) -> int:
        return len(self.frames)


def test_allocating_n_frames_looks_at_no_frame_outside_a_tracking_run() -> None:
    memory = PhysicalMemory(Checker())
    counting = _CountingFrames(memory._frames)
    object.__setattr__(memory, "_frames", counting)
    frames = [memory.alloc() for _ in range(3000)]
    assert [f.pfn for f in frames] == list(range(3000))
    assert counting.yielded == 0  # was 3000 * 2999 / 2


def test_the_lowest_free_frame_is_still_the_one_taken() -> None:
    memory = PhysicalMemory(Checker())
    frames = [memory.alloc() for _ in range(10)]
    for pfn in (7, 2, 5):
        memory.put(frames[pfn], "test")
    taken = [memory.alloc().pfn for _ in range(4)]
    assert taken == [2, 5, 7, 10]
    memory.put(frames[3], "test")
    again = memory.alloc()
    assert (again.pfn, again.gen) == (3, 2)
