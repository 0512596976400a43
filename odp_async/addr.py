"""Addresses and ranges: pages, half-open byte ranges, and the one conversion to closed ones.

Contract
    Byte addresses are ints; pages are `PAGE_SIZE` bytes; a virtual page number (vpn) is
    ``address >> PAGE_SHIFT``.  `AddrRange` is half-open ``[start, end)`` like
    ``struct mmu_notifier_range``, page-aligned and non-empty; constructing a bad one raises
    `InvalidArgument` naming the value.  The interval tree speaks closed ``[start, last]``;
    `AddrRange.closed` is the only place that converts.

See also
    `odp_async.intervals` (closed intervals), `odp_async.mm`.
"""

from __future__ import annotations

from typing import Final

import attrs

from .errors import InvalidArgument

__all__ = ["PAGE_SHIFT", "PAGE_SIZE", "AddrRange", "page_align_check"]

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT


def page_align_check(what: str, value: object) -> int:
    """`value` as an int address, or `InvalidArgument` if it is not a page-aligned int >= 0."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{what} must be an int address, got {value!r}")
    if value < 0:
        raise InvalidArgument(f"{what} must not be negative, got {value:#x}")
    if value % PAGE_SIZE:
        raise InvalidArgument(
            f"{what} must be page-aligned ({PAGE_SIZE:#x}), got {value:#x} "
            f"({value % PAGE_SIZE:#x} bytes into a page)"
        )
    return value


@attrs.frozen(order=True)
class AddrRange:
    """A non-empty, page-aligned, half-open byte range ``[start, end)``."""

    start: int
    end: int

    def __attrs_post_init__(self) -> None:
        page_align_check("range start", self.start)
        page_align_check("range end", self.end)
        if self.end <= self.start:
            raise InvalidArgument(
                f"range [{self.start:#x}, {self.end:#x}) is empty or reversed: "
                "end must be greater than start"
            )

    @classmethod
    def of(cls, start: int, length: int) -> AddrRange:
        """``[start, start + length)``; `length` must be a positive multiple of a page."""
        page_align_check("start", start)
        if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
            raise InvalidArgument(f"length must be a positive int, got {length!r}")
        page_align_check("length", length)
        return cls(start, start + length)

    @classmethod
    def pages(cls, first_vpn: int, npages: int) -> AddrRange:
        """The range of `npages` pages starting at virtual page `first_vpn`."""
        return cls((first_vpn) << PAGE_SHIFT, (first_vpn + npages) << PAGE_SHIFT)

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def npages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    @property
    def first_vpn(self) -> int:
        return self.start >> PAGE_SHIFT

    def vpns(self) -> range:
        """The virtual page numbers the range covers, in order."""
        return range(self.start >> PAGE_SHIFT, self.end >> PAGE_SHIFT)

    def closed(self) -> tuple[int, int]:
        """``(start, last)`` for the interval tree: the only half-open -> closed conversion."""
        return self.start, self.end - 1

    def overlaps(self, other: AddrRange) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: AddrRange) -> bool:
        return self.start <= other.start and other.end <= self.end

    def intersection(self, other: AddrRange) -> AddrRange | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return AddrRange(start, end) if start < end else None

    def __str__(self) -> str:
        return f"[{self.start:#x}, {self.end:#x})"
