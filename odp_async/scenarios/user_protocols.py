"""Checks on your own protocol class before it is explored (the CLI, files, the matrix).

Contract
    `check_protocol_class(cls, ref)` raises `InvalidArgument` (one line naming `ref`, the
    ``module:Class`` it was given as) for a class that cannot stand for a protocol in a
    report: one with no ``name`` (a non-empty string) set in the class itself (one
    inherited, even from a class that is not a built-in, would show another protocol's
    name for it: refused, naming the class it comes from), one still abstract (hooks of
    `OdpProtocol` not implemented: it cannot be built), and one whose ``name`` is a
    built-in protocol's (every report, token and ``--json`` row would show the built-in
    as the one that failed).  A built-in class passes.  Sync; imports nothing new.

See also
    `odp_async.odp.protocols` (`PROTOCOLS`, `resolve_protocol`).
"""

from __future__ import annotations

import inspect

from ..errors import InvalidArgument
from ..odp.protocols import PROTOCOLS, OdpProtocol

__all__ = ["check_protocol_class", "protocol_ref"]


def protocol_ref(cls: type[OdpProtocol]) -> str:
    """``module:Class``, the reference that names `cls`."""
    return f"{cls.__module__}:{cls.__qualname__}"


def check_protocol_class(cls: type[OdpProtocol], ref: str | None = None) -> None:
    """Refuse a protocol class a report could not name truly (see the module docstring).
    Raises `InvalidArgument`."""
    shown = ref or protocol_ref(cls)
    if PROTOCOLS.get(getattr(cls, "name", None)) is cls:  # type: ignore[arg-type]
        return
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidArgument(
            f"protocol {shown!r} has no name: expected a class attribute name = '...' "
            f"(a non-empty string), got {name!r}"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise InvalidArgument(
            f"protocol {shown!r} cannot be built: it does not implement {missing} "
            "(abstract methods of OdpProtocol); expected a subclass that implements every "
            "hook, e.g. of TreeProtocol or a built-in protocol"
        )
    builtin = PROTOCOLS.get(name)
    if builtin is not None:
        raise InvalidArgument(
            f"protocol {shown!r} is named {name!r}, the name of the built-in protocol "
            f"{name} ({protocol_ref(builtin)}); expected a name of its own "
            f"(name = '...'), so that no report shows the built-in for it"
        )
    if "name" not in vars(cls):
        owner = next((k for k in cls.__mro__ if "name" in vars(k)), None)
        raise InvalidArgument(
            f"protocol {shown!r} has no name of its own: it inherits name = {name!r} from "
            f"{getattr(owner, '__qualname__', '?')}; expected a class attribute name = '...' "
            f"in {cls.__qualname__}, so that no report shows another protocol's name for it"
        )
