"""The explorer's checks of what a caller passes: one `InvalidArgument` per bad value.

Contract
    Each ``require_*`` returns None for a good value and raises `InvalidArgument` for a
    bad one, with a one-line message naming the keyword and the value (``shrink must be
    a bool, got 'no' (str)``): what the CLI's options reject, the Python API rejects too,
    at its boundary (`check`, `explore`, `explore_target`, `replay`, `shrink`, the
    `ExploreConfig` fields), never a `TypeError` or an `AttributeError` from deep inside,
    and never a wrong-typed value silently taken for what it is truthy as.

Concurrency
    None: pure checks.

See also
    `odp_async.explore.config` (the config's fields), `odp_async.explore.runner`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..errors import InvalidArgument

__all__ = [
    "require_bool",
    "require_callable",
    "require_instance",
    "require_int",
    "require_mapping",
    "require_path",
    "require_schedule",
    "show",
]


def show(value: object) -> str:
    """`value` for a message: its repr and type (an int of hundreds of digits by its size,
    a long repr cut)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an int of {value.bit_length()} bits"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def require_bool(name: str, value: object) -> None:
    """`value` is True or False (not 1, not ``"no"``, not None)."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a bool, got {show(value)}")


def require_callable(name: str, value: object, *, optional: bool = True) -> None:
    """`value` is callable (or None, when `optional`)."""
    if value is None and optional:
        return
    if not callable(value):
        what = "None or a callable" if optional else "a callable"
        raise InvalidArgument(f"{name} must be {what}, got {show(value)}")


def require_path(name: str, value: object) -> None:
    """`value` is None or a file path (a non-empty str or an `os.PathLike`)."""
    if value is None or isinstance(value, os.PathLike):
        return
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{name} must be None or a file path (str), got {show(value)}")


def require_mapping(name: str, value: object) -> None:
    """`value` is None or a mapping with str keys."""
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidArgument(f"{name} must be None or a dict with str keys, got {show(value)}")


def require_instance(name: str, value: object, cls: type, what: str) -> None:
    """`value` is None or an instance of `cls` (`what` names it for the message)."""
    if value is not None and not isinstance(value, cls):
        raise InvalidArgument(f"{name} must be None or {what}, got {show(value)}")


def require_int(name: str, value: object, minimum: int, maximum: int) -> None:
    """`value` is an int (not a bool) within ``[minimum, maximum]``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an int, got {show(value)}")
    if not minimum <= value <= maximum:
        raise InvalidArgument(
            f"{name} must be an int from {minimum} to {maximum}, got {show(value)}"
        )


def require_schedule(name: str, value: object) -> None:
    """`value` is a schedule: a list or tuple of non-negative ints (a chooser's answers)."""
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise InvalidArgument(f"{name} must be a list of non-negative ints, got {show(value)}")
    for answer in value:
        if not isinstance(answer, int) or isinstance(answer, bool) or answer < 0:
            raise InvalidArgument(
                f"{name} must be a list of non-negative ints, got {show(answer)} in it"
            )
