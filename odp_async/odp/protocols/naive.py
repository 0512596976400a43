"""``naive``: no synchronization between faults and invalidations (a control).

Contract
    Invalidations zap the translations they overlap; faults install whatever
    get_user_pages returned, never retrying.  Any fault that gup'd a page before an
    invalidation removed it and commits after the zap installs a stale translation::

        fault F                              munmap M
        -------                              --------
        gup(P) -> X
                                             start: zap U (nothing there yet)
                                             pte(P) cleared, X freed (F holds a ref)
        commit: U[P] = X      <-- stale
        put(X)  -> X freed while translated

    Its registry is the 2014 patch's (`TreeProtocol`, ``LAST_MR_UNREGISTER = "2014"``),
    so it deadlocks on ``lastdereg-vs-register`` as odp2014 does.

See also
    `odp_async.odp.protocols.odp2014` (what the 2014 patch adds).
"""

from __future__ import annotations

from typing import ClassVar

from ...tracked import tracked
from ..umem import Umem
from .base import TreeProtocol

__all__ = ["Naive"]


@tracked
class Naive(TreeProtocol):
    name: ClassVar[str] = "naive"
    summary: ClassVar[str] = "no synchronization between faults and invalidations (a control)"

    async def release_account(self, umem: Umem) -> None:
        umem.touch("release")  # zapped by the caller; faults are not told anything
