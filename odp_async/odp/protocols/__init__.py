"""The fault/invalidation protocols, by name.

Contract
    `PROTOCOLS` maps each built-in name to its class; `resolve_protocol` accepts a name, a
    class (your own `OdpProtocol` subclass) or a ``"module:Class"`` reference to one
    (imported on the spot), and refuses anything else with one line of `InvalidArgument`:
    an unknown name (listing the known ones), a module that does not import, a name the
    module lacks, an object that is not an `OdpProtocol` subclass.  There is no registry
    to mutate: pass your class, or its reference, where a name is accepted.

See also
    `odp_async.odp.protocols.base` (how to write one); DESIGN section 2.
"""

from __future__ import annotations

import importlib
import sys

from ...errors import InvalidArgument
from .base import FaultAborted, OdpProtocol, TreeProtocol
from .hmm_pool import HmmPool
from .interval_seq import IntervalSeq
from .kvm_seq import KvmSeq
from .naive import Naive
from .odp2014 import Odp2014
from .odp2014_ctx import Odp2014Ctx
from .range_list import RangeList

__all__ = [
    "PROTOCOLS",
    "FaultAborted",
    "OdpProtocol",
    "TreeProtocol",
    "resolve_protocol",
]

PROTOCOLS: dict[str, type[OdpProtocol]] = {
    cls.name: cls for cls in (Naive, Odp2014, Odp2014Ctx, RangeList, HmmPool, KvmSeq, IntervalSeq)
}


def resolve_protocol(protocol: str | type[OdpProtocol]) -> type[OdpProtocol]:
    """The protocol class for a built-in name, a ``"module:Class"`` reference, or
    `protocol` itself if it is a class.  Raises `InvalidArgument` (one line)."""
    if isinstance(protocol, type) and issubclass(protocol, OdpProtocol):
        return protocol
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return PROTOCOLS[protocol]
    if isinstance(protocol, str) and ":" in protocol:
        found = _import(protocol)
        if not (isinstance(found, type) and issubclass(found, OdpProtocol)):
            shown = repr(found)
            if len(shown) > 100:  # a module's table of functions: not the whole of it
                shown = f"{shown[:97]}... (a {type(found).__name__})"
            raise InvalidArgument(
                f"protocol {protocol!r} names {shown}, which is not an OdpProtocol subclass"
            )
        return found
    raise InvalidArgument(
        f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}, "
        "'module:Class' or an OdpProtocol subclass"
    )


def _import(ref: str) -> object:
    """The object ``module:qualname`` names (the module imported, or ``__main__`` when it
    runs as that module)."""
    module, _, qualname = ref.partition(":")
    if not module or not qualname:
        raise InvalidArgument(f"protocol reference {ref!r} is not of the form 'module:Class'")
    main = sys.modules.get("__main__")
    root: object
    if module == getattr(getattr(main, "__spec__", None), "name", None):
        root = main
    else:
        try:
            root = importlib.import_module(module)
        except ImportError as e:
            raise InvalidArgument(
                f"cannot import module {module!r} of protocol {ref!r}: {e} "
                "(is it on sys.path / PYTHONPATH?)"
            ) from None
        except Exception as e:
            raise InvalidArgument(
                f"importing module {module!r} of protocol {ref!r} raised {type(e).__name__}: {e}"
            ) from None
    found = root
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise InvalidArgument(f"module {module!r} has no {qualname!r} (protocol {ref!r})")
    return found
