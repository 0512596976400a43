"""The fault/invalidation protocols, by name.

Contract
    `PROTOCOLS` maps each built-in name to its class; `resolve_protocol` accepts a name or
    a class (your own `OdpProtocol` subclass) and refuses anything else with
    `InvalidArgument` listing the known names.  There is no registry to mutate: pass your
    class where a name is accepted.

See also
    `odp_async.odp.protocols.base` (how to write one); DESIGN section 2.
"""

from __future__ import annotations

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
    """The protocol class for a built-in name, or `protocol` itself if it is a class."""
    if isinstance(protocol, type) and issubclass(protocol, OdpProtocol):
        return protocol
    if isinstance(protocol, str) and protocol in PROTOCOLS:
        return PROTOCOLS[protocol]
    raise InvalidArgument(
        f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)} "
        "or an OdpProtocol subclass"
    )
