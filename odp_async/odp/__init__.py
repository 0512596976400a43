"""The ODP core: contexts, regions, the fault path, and the pluggable protocols.

See also
    `odp_async.odp.ucontext`, `odp_async.odp.umem`, `odp_async.odp.protocols`.
"""

from __future__ import annotations

from .protocols import PROTOCOLS, FaultAborted, OdpProtocol, TreeProtocol, resolve_protocol
from .ucontext import OdpSubscription, UContext
from .umem import Umem, UmemState

__all__ = [
    "PROTOCOLS",
    "FaultAborted",
    "OdpProtocol",
    "OdpSubscription",
    "TreeProtocol",
    "UContext",
    "Umem",
    "UmemState",
    "resolve_protocol",
]
