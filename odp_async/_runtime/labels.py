"""A checkpoint label as a reader sees it: ``('fault', 'B', 32768, 'commit')`` is
``fault(B, 0x8000, commit)``.

Contract
    `label_text(label)` is the text every report shows for a label (the run step by
    step, the timeline, the README); `page_addresses` rewrites a label whose argument
    is a page number (``('dma', 'B', 20)``) to the page's address, as the timeline shows
    it.  Pure functions, here below both the script chooser (whose ``until`` text is
    matched against a label as shown) and the reports, which import them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

__all__ = ["label_text", "page_addresses"]


def label_text(label: object, normalize: Callable[[object], object] | None = None) -> str:
    """A trace label as text: strings as they are, ``('fault', 'B', 81920)`` as
    ``fault(B, 0x14000)`` (ints from 0x1000 up are addresses, shown in hex).

    `normalize`, if given, rewrites the label and each part of a tuple label before it
    is shown (the timeline's page numbers to addresses)."""
    if normalize is not None:
        label = normalize(label)
    if label is None:
        return "checkpoint"
    if isinstance(label, str):
        return label
    if isinstance(label, bool):
        return str(label)
    if isinstance(label, int):
        return f"{label:#x}" if label >= 0x1000 else str(label)
    if isinstance(label, float):
        return f"{label:g}"
    if isinstance(label, tuple):
        parts = [label_text(p, normalize) for p in label]
        if parts and isinstance(label[0], str):
            return f"{parts[0]}({', '.join(parts[1:])})"
        return f"({', '.join(parts)})"
    return repr(label)


#: Trace labels whose argument at this index is a virtual page number, not an address:
#: shown as the page's address, so that one run names a place one way.
_PAGE_INDEX_ARGS: Final = {"dma": 2, "migrate": 2}
_PAGE_SHIFT: Final = 12


def page_addresses(label: object) -> object:
    """`label` with a page number argument (``('dma', 'B', 20)``) made its address
    (``('dma', 'B', 0x14000)``); any other label as it is."""
    if (
        isinstance(label, tuple)
        and label
        and isinstance(label[0], str)
        and label[0] in _PAGE_INDEX_ARGS
    ):
        at = _PAGE_INDEX_ARGS[label[0]]
        if len(label) > at and isinstance(label[at], int) and not isinstance(label[at], bool):
            return (*label[:at], label[at] << _PAGE_SHIFT, *label[at + 1 :])
    return label
