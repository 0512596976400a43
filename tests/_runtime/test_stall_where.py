"""Where a stalled step is: the innermost frame of the user's own code, past odp_async,
the standard library and generated code (a stall inside an attrs record's generated
``__eq__`` named ``<attrs generated methods ...>:29 in __eq__``: new-user report)."""

from __future__ import annotations

import sys
from types import FrameType

import attrs

from odp_async._runtime.stall import where

CAUGHT: list[FrameType] = []


class Spy:
    def __eq__(self, other: object) -> bool:
        frame = sys._getframe(1)  # the attrs-generated __eq__ that compares us
        CAUGHT.append(frame)
        return True

    __hash__ = object.__hash__


@attrs.define(eq=True)
class Record:
    value: object


def compare() -> bool:
    return Record(Spy()) == Record(Spy())  # the user's line


def test_generated_code_is_passed_over() -> None:
    CAUGHT.clear()
    assert compare()
    generated = CAUGHT[0]
    assert generated.f_code.co_filename.startswith("<attrs generated")
    said = where(generated)
    assert said.endswith(" in compare"), said
    assert said.startswith(__file__.removesuffix("c")), said
