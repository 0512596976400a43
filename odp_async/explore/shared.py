"""`SharedCell`, re-exported where explorer users look for it (it lives in
`odp_async.shared`, below the scenarios that use it)."""

from __future__ import annotations

from ..shared import SharedCell

__all__ = ["SharedCell"]
